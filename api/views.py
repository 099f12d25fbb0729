"""The REST API's views: thin, calling the same functions and model methods as the admin."""

from __future__ import annotations

from collections import defaultdict

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import OuterRef, QuerySet, Subquery
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from api import serializers as s
from api.pagination import NewestFirst
from campaigns.log import LOG_FILTERS, filtered_log
from campaigns.models import Campaign, EmailTemplate
from campaigns.statistics import campaign_statistics, link_clicks
from massmail.models import MassEmail, SplitTest
from massmail.send_test import send_test
from massmail.split_test_form import SplitTestForm
from massmail.splittests import LETTERS, create_split_test, pick_winner
from targets import membership
from targets.importing import upsert_records
from targets.models import Contact, Lead, RecordEmailAddress, TargetList
from targets.registry import target_type_for


def with_primary_address(queryset: QuerySet) -> QuerySet:
    """Each record annotated with its primary address (`primary_address`), in the same query."""
    links = RecordEmailAddress.objects.filter(
        content_type=ContentType.objects.get_for_model(queryset.model),
        object_id=OuterRef("pk"),
        primary=True,
    )
    return queryset.annotate(primary_address=Subquery(links.values("email_address__address")[:1]))


def records_by_type(refs: list[dict]) -> dict:
    ids = defaultdict(set)
    for ref in refs:
        ids[ref["type"]].add(ref["id"])
    return ids


def selections(refs: list[dict]) -> tuple[list[QuerySet], list[dict]]:
    """Querysets of the records referenced, one per type, and the references not found."""
    chosen, missing = [], []
    for target_type, ids in records_by_type(refs).items():
        queryset = target_type.model.objects.filter(pk__in=ids)
        found = set(queryset.values_list("pk", flat=True))
        missing += [{"type": target_type.key, "id": pk} for pk in sorted(ids - found)]
        chosen.append(queryset)
    return chosen, missing


class TargetListViewSet(viewsets.ModelViewSet):
    queryset = TargetList.objects.with_counts().order_by("name")
    serializer_class = s.TargetListSerializer
    action_permissions = {
        "members": ["targets.view_targetlist", "targets.view_targetlistmember"],
        "add_members": ["targets.change_targetlist", "targets.add_targetlistmember"],
        "remove_members": ["targets.change_targetlist", "targets.delete_targetlistmember"],
    }

    def perform_create(self, serializer) -> None:
        serializer.save()
        serializer.instance.entry_count = serializer.instance.opted_out_count = 0

    @extend_schema(responses=s.MemberSerializer(many=True))
    @action(detail=True, methods=["get"])
    def members(self, request, pk=None):
        """The list's members, oldest first, with each record's primary address."""
        target_list = self.get_object()
        members = target_list.members.annotate(
            email=Subquery(
                RecordEmailAddress.objects.filter(
                    content_type=OuterRef("content_type"),
                    object_id=OuterRef("object_id"),
                    primary=True,
                ).values("email_address__address")[:1]
            )
        ).order_by("id")
        page = self.paginate_queryset(members)
        for member in page:
            registered = target_type_for(member.content_type_id)
            member.target_type_key = registered.key if registered else member.content_type.model
            member.email = member.email or ""
        return self.get_paginated_response(s.MemberSerializer(page, many=True).data)

    @extend_schema(request=s.MembersChangeSerializer, responses=s.MembersChangedSerializer)
    @members.mapping.post
    def add_members(self, request, pk=None):
        """Add records by address (their primary one) or by type and id, set-based."""
        return self._change_members(
            request, "added", membership.add_records_with_addresses, membership.add_selection
        )

    @extend_schema(request=s.MembersChangeSerializer, responses=s.MembersChangedSerializer)
    @action(detail=True, methods=["post"], url_path="members/remove")
    def remove_members(self, request, pk=None):
        """Remove records by address (their primary one) or by type and id, set-based."""
        return self._change_members(
            request,
            "removed",
            membership.remove_records_with_addresses,
            membership.remove_selection,
        )

    def _change_members(self, request, verb: str, by_address, by_selection) -> Response:
        target_list = self.get_object()
        serializer = s.MembersChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        change = serializer.validated_data
        count, addresses_not_found = 0, []
        if change["addresses"]:
            model = change["type"].model if change.get("type") else None
            links = membership.records_with_addresses(change["addresses"], model)
            count += by_address(target_list, links)
            addresses_not_found = membership.unmatched_addresses(change["addresses"], links)
        chosen, records_not_found = selections(change["records"])
        for queryset in chosen:
            count += by_selection(target_list, queryset)
        return Response(
            {
                verb: count,
                "addresses_not_found": addresses_not_found,
                "records_not_found": records_not_found,
            }
        )


class PersonViewSet(viewsets.ModelViewSet):
    """Contacts and leads; `upsert` creates or updates many by address in one call."""

    def get_queryset(self) -> QuerySet:
        return with_primary_address(self.queryset.order_by("id"))

    @extend_schema(request=s.UpsertSerializer, responses=s.UpsertResultSerializer)
    @action(detail=False, methods=["post"])
    def upsert(self, request):
        """Create or update records matched by primary address (up to 10,000 per call)."""
        serializer = s.UpsertSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        target_list = serializer.validated_data.get("target_list")
        if target_list and not request.user.has_perm("targets.add_targetlistmember"):
            self.permission_denied(request, "Adding to a target list needs that permission.")
        model = self.queryset.model
        result = upsert_records(
            target_type_for(model), serializer.validated_data["records"], target_list
        )
        counts = {name: result.count(name) for name in ("created", "updated", "unchanged")}
        errors = sum(1 for outcome in result.outcomes if "error" in outcome)
        return Response({**counts, "errors": errors, "records": result.outcomes})


class ContactViewSet(PersonViewSet):
    queryset = Contact.objects.all()
    serializer_class = s.ContactSerializer
    action_permissions = {"upsert": ["targets.add_contact", "targets.change_contact"]}


class LeadViewSet(PersonViewSet):
    queryset = Lead.objects.all()
    serializer_class = s.LeadSerializer
    action_permissions = {"upsert": ["targets.add_lead", "targets.change_lead"]}


class EmailTemplateViewSet(viewsets.ModelViewSet):
    queryset = EmailTemplate.objects.order_by("name", "id")
    serializer_class = s.EmailTemplateSerializer


LOG_PARAMETERS = [
    OpenApiParameter("action", str, enum=[k for k in LOG_FILTERS if k != "all"]),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="action_date on or after"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="action_date before"),
    OpenApiParameter("mass_email", int),
    OpenApiParameter("include_test", bool, description="also Send Test entries"),
    OpenApiParameter("page_size", int),
]


class CampaignViewSet(viewsets.ModelViewSet):
    queryset = Campaign.objects.order_by("-created_at", "-id")
    serializer_class = s.CampaignSerializer
    action_permissions = {
        "statistics": ["campaigns.view_campaign", "campaigns.view_campaignlogrecord"],
        "log": ["campaigns.view_campaign", "campaigns.view_campaignlogrecord"],
    }

    @extend_schema(responses=s.StatisticsSerializer)
    @action(detail=True, methods=["get"])
    def statistics(self, request, pk=None):
        """The statistics panel's figures (test sends left out), with clicks per link."""
        campaign = self.get_object()
        stats = campaign_statistics(campaign)
        stats.links = link_clicks(campaign)
        return Response(s.StatisticsSerializer(stats).data)

    @extend_schema(parameters=LOG_PARAMETERS, responses=s.LogRecordSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=NewestFirst)
    def log(self, request, pk=None):
        """The campaign log, newest first, by pages of a cursor (`next`)."""
        campaign = self.get_object()
        params = request.query_params
        log_filter = params.get("action", "all")
        if log_filter not in LOG_FILTERS:
            raise ValidationError({"action": f"Use one of {', '.join(LOG_FILTERS)}."})
        include_test = params.get("include_test", "").lower() in {"1", "true", "yes"}
        records = filtered_log(campaign, log_filter, include_test=include_test)
        records = records.select_related("content_type", "queue_item")
        records = self._in_time(records, params)
        if "mass_email" in params:
            records = records.filter(mass_email_id=self._number(params, "mass_email"))
        page = self.paginate_queryset(records)
        return self.get_paginated_response(s.LogRecordSerializer(page, many=True).data)

    def _in_time(self, records: QuerySet, params) -> QuerySet:
        field = s.serializers.DateTimeField()
        for name, lookup in (("since", "action_date__gte"), ("until", "action_date__lt")):
            if name in params:
                try:
                    records = records.filter(**{lookup: field.to_internal_value(params[name])})
                except ValidationError as error:
                    raise ValidationError({name: error.detail}) from None
        return records

    def _number(self, params, name: str) -> int:
        try:
            return int(params[name])
        except ValueError:
            raise ValidationError({name: "A number."}) from None


class MassEmailViewSet(viewsets.ModelViewSet):
    queryset = MassEmail.objects.order_by("-start_at", "-id").prefetch_related(
        "target_lists", "excluding_target_lists"
    )
    serializer_class = s.MassEmailSerializer
    change = ["massmail.change_massemail"]
    action_permissions = {
        "schedule": change,
        "pause": change,
        "resume": change,
        "cancel": change,
        "send_test": change,
    }

    @extend_schema(request=s.ScheduleSerializer, responses=s.MassEmailSerializer)
    @action(detail=True, methods=["post"])
    def schedule(self, request, pk=None):
        """A draft (or a pending mass email) is due at start_at."""
        serializer = s.ScheduleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        mass_email = self.get_object()
        moved = mass_email.schedule(serializer.validated_data["start_at"])
        return self._moved(mass_email, moved, "be scheduled")

    @extend_schema(request=None, responses=s.MassEmailSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        mass_email = self.get_object()
        return self._moved(mass_email, mass_email.pause(), "pause")

    @extend_schema(request=None, responses=s.MassEmailSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        mass_email = self.get_object()
        return self._moved(mass_email, mass_email.resume(), "resume")

    @extend_schema(request=None, responses=s.MassEmailSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        mass_email = self.get_object()
        return self._moved(mass_email, mass_email.cancel(), "be canceled")

    @extend_schema(request=s.SendTestSerializer, responses=s.SendTestResultSerializer)
    @action(detail=True, methods=["post"], url_path="send-test")
    def send_test(self, request, pk=None):
        """The real message to these addresses and records now, marked test."""
        mass_email = self.get_object()
        serializer = s.SendTestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not mass_email.can_send_test():
            return self._conflict(mass_email, "send a test")
        chosen, missing = selections(serializer.validated_data["records"])
        if missing:
            raise ValidationError(
                {"records": [f"{m['type']} #{m['id']} not found" for m in missing]}
            )
        records = [record for queryset in chosen for record in queryset]
        try:
            result = send_test(
                mass_email, records=records, addresses=serializer.validated_data["addresses"]
            )
        except DjangoValidationError as error:
            raise ValidationError({"addresses": error.messages}) from None
        return Response(s.SendTestResultSerializer(result).data)

    def _moved(self, mass_email: MassEmail, moved: bool, verb: str) -> Response:
        if not moved:
            return self._conflict(mass_email, verb)
        return Response(self.get_serializer(mass_email).data)

    def _conflict(self, mass_email: MassEmail, verb: str) -> Response:
        mass_email.refresh_from_db(fields=["status"])
        detail = f"A mass email cannot {verb} while {mass_email.get_status_display()}."
        return Response({"detail": detail}, status=status.HTTP_409_CONFLICT)


class SplitTestViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """A/B tests: made as in the admin (its form checks the same rules), read with their
    variants' figures, and the winner picked by hand (any metric, while testing)."""

    queryset = SplitTest.objects.select_related("parent").order_by("-id")
    serializer_class = s.SplitTestSerializer
    action_permissions = {"pick": ["massmail.change_massemail"]}

    @extend_schema(request=s.SplitTestCreateSerializer, responses={201: s.SplitTestSerializer})
    def create(self, request, *args, **kwargs):
        given = s.SplitTestCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = dict(given.validated_data)
        variants = data.pop("variants")
        if len(variants) > len(LETTERS):
            raise ValidationError({"variants": [f"At most {len(LETTERS)} variants."]})
        # What the request leaves out is the model's default, as on the admin's form.
        form_data = {
            name: SplitTest._meta.get_field(name).get_default()
            for name in SplitTestForm.Meta.fields
            if name != "parent"
        }
        form_data.update(data)
        for letter, variant in zip(LETTERS, variants, strict=False):
            low = letter.lower()
            form_data[f"subject_{low}"] = variant.get("subject", "")
            form_data[f"from_name_{low}"] = variant.get("from_name", "")
            form_data[f"template_{low}"] = variant.get("email_template") or ""
        form = SplitTestForm(data=form_data)
        if not form.is_valid():
            raise ValidationError(_form_errors(form))
        fields = {name: form.cleaned_data[name] for name in SplitTestForm.Meta.fields}
        test = create_split_test(fields.pop("parent"), form.cleaned_data["variants"], **fields)
        return Response(self.get_serializer(test).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.PickSerializer, responses=s.SplitTestSerializer)
    @action(detail=True, methods=["post"])
    def pick(self, request, pk=None):
        """This variant wins: the rest of the parent's queue goes to it."""
        test = self.get_object()
        given = s.PickSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        letter = given.validated_data["letter"].upper()
        if not pick_winner(test.pk, letter, by=request.user.get_username()):
            test.refresh_from_db()
            if test.state != SplitTest.State.TESTING:
                detail = (
                    f"A winner can be picked only while testing, not {test.get_state_display()}."
                )
                return Response({"detail": detail}, status=status.HTTP_409_CONFLICT)
            raise ValidationError({"letter": f"No variant {letter} in this test."})
        test.refresh_from_db()
        return Response(self.get_serializer(test).data)


def _form_errors(form) -> dict:
    """The form's errors under the request's names: a variant's under "variants"."""
    errors: dict[str, list[str]] = {}
    for name, messages in form.errors.items():
        key, _, low = name.rpartition("_")
        if key in ("subject", "from_name", "template"):
            field = "email_template" if key == "template" else key
            messages = [f"Variant {low.upper()}, {field}: {m}" for m in messages]
            name = "variants"
        name = "non_field_errors" if name == "__all__" else name
        errors.setdefault(name, []).extend(messages)
    return errors
