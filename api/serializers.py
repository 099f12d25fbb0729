"""What the API reads and writes: the models' own fields, checked by the models' own rules."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns.models import Campaign, CampaignLogRecord, EmailTemplate
from massmail.models import MassEmail, SplitTest
from massmail.splittests import variant_figures
from targets.models import Contact, Lead, TargetList, validate_address
from targets.registry import target_type_by_key


class ModelRulesMixin:
    """Runs the model's clean() on the values to be saved, as the admin's forms do."""

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        model = self.Meta.model
        plain = {k: v for k, v in attrs.items() if not model._meta.get_field(k).many_to_many}
        instance = model(**{**self._current_values(), **plain})
        if self.instance is not None:
            instance.pk = self.instance.pk
        try:
            instance.clean()
        except DjangoValidationError as error:
            raise serializers.ValidationError(serializers.as_serializer_error(error)) from None
        return attrs

    def _current_values(self) -> dict:
        if self.instance is None:
            return {}
        return {
            field.attname: getattr(self.instance, field.attname)
            for field in self.Meta.model._meta.concrete_fields
        }


class TargetListSerializer(serializers.ModelSerializer):
    entry_count = serializers.IntegerField(read_only=True)
    opted_out_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = TargetList
        fields = ["id", "name", "description", "created_at", "entry_count", "opted_out_count"]


class MemberSerializer(serializers.Serializer):
    """A member of a target list: the record's type and id, its primary address."""

    type = serializers.CharField(source="target_type_key")
    id = serializers.IntegerField(source="object_id")
    email = serializers.CharField(allow_blank=True)
    opted_out = serializers.BooleanField()
    added_at = serializers.DateTimeField()


class RecordRefSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="A target type: Account, Contact, Lead, User, ...")
    id = serializers.IntegerField()

    def validate_type(self, value: str):
        target_type = target_type_by_key(value)
        if target_type is None:
            raise serializers.ValidationError(f"{value!r} is not a target type.")
        return target_type


class MembersChangeSerializer(serializers.Serializer):
    addresses = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, max_length=100_000
    )
    records = RecordRefSerializer(many=True, required=False, default=list)
    type = serializers.CharField(
        required=False,
        help_text="Only records of this target type have their address matched; "
        "without it, every type's.",
    )

    def validate_type(self, value: str):
        return RecordRefSerializer().validate_type(value)


class MembersChangedSerializer(serializers.Serializer):
    added = serializers.IntegerField(required=False)
    removed = serializers.IntegerField(required=False)
    addresses_not_found = serializers.ListField(child=serializers.CharField())
    records_not_found = serializers.ListField(child=serializers.DictField())


class PersonSerializer(serializers.ModelSerializer):
    """Contacts and leads with their primary address, `email`, read and written here."""

    email = serializers.CharField(
        source="primary_address", required=False, allow_blank=True, max_length=254
    )

    def validate_email(self, value: str) -> str:
        if not value:
            return ""
        try:
            return validate_address(value)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages) from None

    @transaction.atomic
    def create(self, validated_data: dict):
        address = validated_data.pop("primary_address", "")
        record = super().create(validated_data)
        record.set_email_addresses(address or None)
        record.primary_address = address
        return record

    @transaction.atomic
    def update(self, instance, validated_data: dict):
        changed = "primary_address" in validated_data
        address = validated_data.pop("primary_address", "")
        record = super().update(instance, validated_data)
        if changed:
            others = [
                link.email_address.address
                for link in record.email_address_links.select_related("email_address")
                if not link.primary and link.email_address.address != address
            ]
            record.set_email_addresses(address or None, others)
            record.primary_address = address
        return record


PERSON_FIELDS = [
    "id",
    "email",
    "salutation",
    "first_name",
    "last_name",
    "title",
    "phone",
    "city",
    "country",
    "created_at",
]


class ContactSerializer(PersonSerializer):
    class Meta:
        model = Contact
        fields = [*PERSON_FIELDS, "account"]


class LeadSerializer(PersonSerializer):
    class Meta:
        model = Lead
        fields = [*PERSON_FIELDS, "account_name", "status", "source", "campaign"]


class UpsertSerializer(serializers.Serializer):
    records = serializers.ListField(
        child=serializers.DictField(),
        max_length=10_000,
        help_text='Each with "email" and any text fields of the type; empty values keep '
        "what is stored.",
    )
    target_list = serializers.PrimaryKeyRelatedField(
        queryset=TargetList.objects.all(),
        required=False,
        help_text="Every record written also joins this list.",
    )


class UpsertOutcomeSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    email = serializers.CharField(required=False)
    id = serializers.IntegerField(required=False)
    result = serializers.ChoiceField(["created", "updated", "unchanged"], required=False)
    error = serializers.CharField(required=False)


class UpsertResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    errors = serializers.IntegerField()
    records = UpsertOutcomeSerializer(many=True)


class EmailTemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = EmailTemplate
        fields = ["id", "name", "subject", "body_html", "body_text", "created_at", "updated_at"]


class CampaignSerializer(ModelRulesMixin, serializers.ModelSerializer):
    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "type",
            "status",
            "start_date",
            "end_date",
            "budget",
            "description",
            "target_lists",
            "excluding_target_lists",
            "created_at",
        ]


class MassEmailSerializer(ModelRulesMixin, serializers.ModelSerializer):
    status = serializers.ChoiceField(
        MassEmail.Status.choices,
        default=MassEmail.Status.DRAFT,
        help_text="Given on creation only, draft (the default) or pending (due at start_at); "
        "afterwards it moves by the schedule, pause, resume and cancel actions.",
    )

    def validate_status(self, value: str) -> str:
        creatable = (MassEmail.Status.DRAFT, MassEmail.Status.PENDING)
        if self.instance is None and value not in creatable:
            raise serializers.ValidationError("A new mass email is draft or pending.")
        return value

    class Meta:
        model = MassEmail
        fields = [
            "id",
            "campaign",
            "name",
            "status",
            "start_at",
            "email_template",
            "from_address",
            "from_name",
            "reply_to_address",
            "reply_to_name",
            "opt_out_entirely",
            "target_lists",
            "excluding_target_lists",
            "queue_built_at",
            "created_at",
        ]
        read_only_fields = ["queue_built_at", "created_at"]

    def update(self, instance, validated_data: dict):
        validated_data.pop("status", None)
        return super().update(instance, validated_data)


class ScheduleSerializer(serializers.Serializer):
    start_at = serializers.DateTimeField()


class SendTestSerializer(serializers.Serializer):
    addresses = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    records = RecordRefSerializer(many=True, required=False, default=list)

    def validate(self, attrs: dict) -> dict:
        if not attrs["addresses"] and not attrs["records"]:
            raise serializers.ValidationError("Name at least one address or record.")
        return attrs


class SendTestResultSerializer(serializers.Serializer):
    sent = serializers.ListField(child=serializers.CharField())
    skipped = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))
    failed = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))


class LogRecordSerializer(serializers.ModelSerializer):
    target_type = serializers.CharField(source="content_type.model", default=None)
    target_id = serializers.IntegerField(source="object_id")
    queue_item = serializers.UUIDField(source="queue_item.uid", default=None)

    class Meta:
        model = CampaignLogRecord
        fields = [
            "id",
            "action",
            "action_date",
            "bounce_type",
            "email_address",
            "mass_email",
            "queue_item",
            "target_type",
            "target_id",
            "tracking_url",
            "email_template",
            "is_test",
        ]


class FigureSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    count = serializers.IntegerField()
    percent = serializers.DecimalField(max_digits=6, decimal_places=2)
    by_people = serializers.IntegerField(allow_null=True)
    by_people_percent = serializers.DecimalField(max_digits=6, decimal_places=2, allow_null=True)


class LinkClicksSerializer(serializers.Serializer):
    tracking_url_id = serializers.IntegerField()
    name = serializers.CharField()
    url = serializers.CharField()
    clicked_items = serializers.IntegerField()
    hits = serializers.IntegerField(allow_null=True)
    clicked_by_people = serializers.IntegerField(allow_null=True)


class StatisticsSerializer(serializers.Serializer):
    campaign = serializers.IntegerField(source="campaign.pk")
    sent = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    opted_out = serializers.IntegerField()
    bounced_hard = serializers.IntegerField()
    bounced_soft = serializers.IntegerField()
    leads_created = serializers.IntegerField()
    opened_by_people = serializers.IntegerField(allow_null=True)
    clicked_by_people = serializers.IntegerField(allow_null=True)
    open_tracking = serializers.BooleanField()
    figures = FigureSerializer(many=True)
    links = LinkClicksSerializer(many=True)


class SplitVariantSerializer(serializers.Serializer):
    """A variant's figures (massmail.splittests.VariantFigures)."""

    letter = serializers.CharField(source="variant.letter")
    mass_email = serializers.IntegerField(source="variant.mass_email_id")
    sent = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    opened_percent = serializers.DecimalField(max_digits=6, decimal_places=2)
    clicked_percent = serializers.DecimalField(max_digits=6, decimal_places=2)


class SplitTestSerializer(serializers.ModelSerializer):
    """An A/B test with its variants' figures (people's opens and clicks)."""

    variants = serializers.SerializerMethodField()

    class Meta:
        model = SplitTest
        fields = [
            "id",
            "parent",
            "test_percent",
            "wait",
            "metric",
            "min_events",
            "tie_variant",
            "state",
            "split_at",
            "decided_at",
            "winner",
            "decision",
            "variants",
        ]
        read_only_fields = fields

    @extend_schema_field(SplitVariantSerializer(many=True))
    def get_variants(self, test: SplitTest) -> list[dict]:
        return [SplitVariantSerializer(f).data for f in variant_figures(test)]


class SplitTestVariantInput(serializers.Serializer):
    subject = serializers.CharField(max_length=400, required=False, allow_blank=True)
    from_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email_template = serializers.IntegerField(required=False, allow_null=True)


class SplitTestCreateSerializer(serializers.Serializer):
    """A new test, checked by the admin's own form (SplitTestForm): the parent not started,
    2 to 4 variants, the tie variant one of them."""

    parent = serializers.IntegerField()
    test_percent = serializers.IntegerField(required=False)
    wait = serializers.DurationField(required=False)
    metric = serializers.CharField(required=False)
    min_events = serializers.IntegerField(required=False)
    tie_variant = serializers.CharField(required=False)
    variants = SplitTestVariantInput(many=True)


class PickSerializer(serializers.Serializer):
    letter = serializers.CharField(max_length=1)
