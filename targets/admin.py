from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import Count, Model, Q, QuerySet
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from targets import history, importing, tasks
from targets.export import display_name, export_response
from targets.forms import ENCODINGS, ChooseTargetListForm, MappingForm, UploadForm
from targets.membership import add_selection, remove_selection, set_opted_out
from targets.models import (
    Account,
    Contact,
    EmailAddress,
    ImportRun,
    Lead,
    RecordEmailAddress,
    Segment,
    SegmentCondition,
    TargetList,
    TargetListMember,
    set_email_addresses,
    validate_address,
)
from targets.registry import target_type_by_key, target_type_for, target_types
from targets.segments import segment_queryset, sync_segment

logger = logging.getLogger(__name__)


def address_search(search_term: str, through: str = "email_address__") -> Q | None:
    """The addresses a search term names: a whole address or its start, or "@domain".

    Addresses are stored lower-case, so a prefix search can use the unique index;
    a domain search reads the addresses' ends.
    """
    term = search_term.strip().lower()
    if not term:
        return None
    if term.startswith("@"):
        return Q(**{f"{through}address__endswith": term})
    return Q(**{f"{through}address__startswith": term})


@admin.register(EmailAddress)
class EmailAddressAdmin(admin.ModelAdmin):
    list_display = ["address", "opt_out", "invalid", "created_at"]
    list_filter = ["opt_out", "invalid"]
    search_fields = ["address"]
    show_full_result_count = False
    actions = ["mark_opted_out", "mark_opted_in", "mark_invalid", "mark_valid"]

    def get_search_results(self, request, queryset, search_term):
        addresses = address_search(search_term, through="")
        return (queryset if addresses is None else queryset.filter(addresses)), False

    def _flag(self, request, queryset, **values) -> None:
        count = queryset.update(**values)
        self.message_user(request, f"{count} address(es) updated.")

    @admin.action(description="Opt out (applies to every record using the address)")
    def mark_opted_out(self, request, queryset):
        self._flag(request, queryset, opt_out=True)

    @admin.action(description="Opt back in")
    def mark_opted_in(self, request, queryset):
        self._flag(request, queryset, opt_out=False)

    @admin.action(description="Mark invalid")
    def mark_invalid(self, request, queryset):
        self._flag(request, queryset, invalid=True)

    @admin.action(description="Mark valid")
    def mark_valid(self, request, queryset):
        self._flag(request, queryset, invalid=False)


class TargetForm(forms.ModelForm):
    """A target's addresses: one primary plus any others, each shared with other records."""

    email = forms.CharField(label="Email address", required=False, max_length=254)
    other_emails = forms.CharField(
        label="Other email addresses",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            links = RecordEmailAddress.objects.filter(
                content_type=ContentType.objects.get_for_model(self.instance),
                object_id=self.instance.pk,
            ).select_related("email_address")
            self.fields["email"].initial = next(
                (link.email_address.address for link in links if link.primary), ""
            )
            self.fields["other_emails"].initial = "\n".join(
                link.email_address.address for link in links if not link.primary
            )

    def clean_email(self) -> str:
        value = self.cleaned_data["email"].strip()
        return validate_address(value) if value else ""

    def clean_other_emails(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["other_emails"].splitlines()]
        errors, addresses = [], []
        for line in filter(None, lines):
            try:
                addresses.append(validate_address(line))
            except forms.ValidationError as error:
                errors.extend(error.messages)
        if errors:
            raise forms.ValidationError(errors)
        return addresses


class TargetChangeList(ChangeList):
    """Reads the primary addresses of the shown page in one query after paging.

    An address subquery in the list's SELECT would be evaluated for every row
    skipped by OFFSET too: 0.4 s for page 1,000 of 100,000 contacts.
    """

    def get_results(self, request) -> None:
        super().get_results(request)
        rows = list(self.result_list)
        addresses = dict(
            RecordEmailAddress.objects.filter(
                content_type=ContentType.objects.get_for_model(self.model),
                object_id__in=[row.pk for row in rows],
                primary=True,
            ).values_list("object_id", "email_address__address")
        )
        for row in rows:
            row.primary_email_address = addresses.get(row.pk, "")
        self.result_list = rows


class TargetListActionsMixin:
    """Add to / Remove from target list actions for a target type's change list.

    Works on Django's "select all N results" too: the action then receives the whole
    filtered queryset, which membership.add_selection turns into one INSERT ... SELECT.
    """

    actions = ["add_to_target_list", "remove_from_target_list"]

    @admin.action(description="Add to target list")
    def add_to_target_list(self, request, queryset):
        return self._target_list_action(request, queryset, remove=False)

    @admin.action(description="Remove from target list")
    def remove_from_target_list(self, request, queryset):
        return self._target_list_action(request, queryset, remove=True)

    def _target_list_action(self, request, queryset, *, remove: bool):
        data = request.POST if "apply" in request.POST else None
        form = ChooseTargetListForm(data, allow_new=not remove)
        if form.is_valid():
            target_list = form.get_target_list()
            change = remove_selection if remove else add_selection
            count = change(target_list, queryset)
            verb = "removed from" if remove else "added to"
            self.message_user(request, f"{count} record(s) {verb} {target_list}.")
            return None
        return TemplateResponse(
            request,
            "admin/targets/choose_target_list.html",
            {
                **self.admin_site.each_context(request),
                "title": "Remove from target list" if remove else "Add to target list",
                "opts": self.model._meta,
                "form": form,
                "action": request.POST.get("action"),
                "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across", "0"),
                "count": queryset.count(),
            },
        )


class TargetAdmin(TargetListActionsMixin, admin.ModelAdmin):
    """Shared by every target type's admin, including custom ones (see register_target_admin)."""

    # Typed without a scheme, an address means https (Django 6's default, said now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    form = TargetForm
    show_full_result_count = False
    list_per_page = 50
    readonly_fields = ["address_status", "campaign_history"]

    def get_changelist(self, request, **kwargs):
        return TargetChangeList

    @admin.display(description="Email address")
    def email_address(self, obj) -> str:
        if hasattr(obj, "primary_email_address"):  # set by TargetChangeList for the page
            return obj.primary_email_address
        return obj.email

    def get_search_results(self, request, queryset, search_term):
        """Names as the admin searches them, or addresses: whole, a prefix, or @domain."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        addresses = address_search(search_term)
        if addresses is None:
            return found, may_have_duplicates
        ids = RecordEmailAddress.objects.filter(
            addresses, content_type=ContentType.objects.get_for_model(self.model)
        ).values("object_id")
        return found | queryset.filter(pk__in=ids), may_have_duplicates

    @admin.display(description="Address status")
    def address_status(self, obj) -> str:
        statuses = history.address_statuses(obj) if obj.pk else []
        if not statuses:
            return "-"
        rows = [
            (
                status.address + (" (primary)" if status.primary else ""),
                "opted out" if status.opt_out else "no",
                "invalid" if status.invalid else "no",
                _bounce_summary(status),
            )
            for status in statuses
        ]
        headers = ["Address", "Opted out", "Invalid", "Bounces"]
        return html_table(headers, rows, css_class="address-status")

    @admin.display(description="Campaign history")
    def campaign_history(self, obj) -> str:
        entries = history.campaign_history(obj) if obj.pk else []
        if not entries:
            return "No campaign has mailed this record yet."
        rows = [
            (
                date_format(localtime(entry.action_date), "SHORT_DATETIME_FORMAT"),
                format_html(
                    '<a href="{}">{}</a>',
                    reverse("admin:campaigns_campaign_change", args=[entry.campaign_id]),
                    entry.campaign,
                ),
                entry.mass_email or "",
                entry.get_action_display() + (" (test)" if entry.is_test else ""),
                entry.email_address,
                _log_detail(entry),
            )
            for entry in entries
        ]
        headers = ["Date", "Campaign", "Mass email", "Action", "Address", "Details"]
        footer = (
            f"The latest {len(entries)} entries." if len(entries) == history.HISTORY_SHOWN else ""
        )
        return html_table(headers, rows, css_class="campaign-history", footer=footer)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        set_email_addresses(
            obj, form.cleaned_data.get("email") or None, form.cleaned_data.get("other_emails", [])
        )


def html_table(
    headers: list[str], rows: Iterable[Iterable[object]], *, css_class: str = "", footer: str = ""
) -> str:
    """A read-only field's table; cells are escaped unless already safe HTML."""
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    if footer:
        body = format_html('{}<tr><td colspan="{}">{}</td></tr>', body, len(headers), footer)
    attributes = format_html(' class="{}"', css_class) if css_class else ""
    return format_html(
        "<table{}><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", attributes, head, body
    )


def _bounce_summary(status) -> str:
    if not status.bounces:
        return "none"
    counts = ", ".join(f"{count} {label.lower()}" for label, count in status.bounces.items())
    last = date_format(localtime(status.last_bounce_at), "SHORT_DATETIME_FORMAT")
    return f"{counts} (last {last})"


def _log_detail(entry) -> str:
    if entry.tracking_url_id and entry.tracking_url:
        return f"{entry.tracking_url.name}: {entry.tracking_url.url}"
    return entry.get_bounce_type_display() if entry.bounce_type else ""


@admin.register(Account)
class AccountAdmin(TargetAdmin):
    list_display = ["name", "email_address", "industry", "city", "country", "created_at"]
    list_filter = ["industry", "country"]
    search_fields = ["name"]


@admin.register(Contact)
class ContactAdmin(TargetAdmin):
    list_display = ["name", "email_address", "account", "title", "city", "country", "created_at"]
    list_filter = ["country", "created_at"]
    list_select_related = ["account"]
    search_fields = ["last_name", "first_name"]
    autocomplete_fields = ["account"]
    ordering = ["last_name", "first_name"]


@admin.register(Lead)
class LeadAdmin(TargetAdmin):
    list_display = ["name", "email_address", "account_name", "status", "source", "created_at"]
    list_filter = ["status", "source", "created_at"]
    search_fields = ["last_name", "first_name", "account_name"]
    raw_id_fields = ["campaign"]
    ordering = ["last_name", "first_name"]


def register_target_admin(
    model: type[Model], *, base: type[admin.ModelAdmin] = TargetAdmin, site=admin.site, **options
) -> type[admin.ModelAdmin]:
    """Register a deployment's custom target type with the list actions and address fields.

    `options` become ModelAdmin attributes (list_display, search_fields, ...).
    """
    bases = (base,) if issubclass(base, TargetListActionsMixin) else (TargetListActionsMixin, base)
    admin_class = type(f"{model.__name__}Admin", bases, {"__module__": model.__module__, **options})
    site.register(model, admin_class)
    return admin_class


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class TargetUserAdmin(TargetListActionsMixin, UserAdmin):
    """Django's user admin plus the target-list actions (users are targets too).

    Only a superuser grants rights: for anyone else who may change users, the fields
    that make staff, superusers, group members or permissions are read-only.
    """

    privileged_fields = ("is_staff", "is_superuser", "groups", "user_permissions")

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += [name for name in self.privileged_fields if name not in readonly]
        return readonly


class MemberTypeFilter(admin.SimpleListFilter):
    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return [(str(t.content_type.pk), t.label) for t in target_types()]

    def queryset(self, request, queryset) -> QuerySet:
        return queryset.filter(content_type_id=self.value()) if self.value() else queryset


@admin.register(TargetList)
class TargetListAdmin(admin.ModelAdmin):
    list_display = ["name", "is_topic", "entry_count", "opted_out_count", "created_at"]
    search_fields = ["name"]
    actions = ["duplicate", "export_csv"]

    def get_queryset(self, request) -> QuerySet:
        queryset = super().get_queryset(request)
        # Counting every list's members is for the change list only, not for edits/actions.
        url_name = getattr(request.resolver_match, "url_name", None) or ""
        on_changelist = url_name.endswith("changelist")
        return queryset.with_counts() if on_changelist else queryset

    @admin.display(description="Entries", ordering="entry_count")
    def entry_count(self, obj) -> int:
        return obj.entry_count

    @admin.display(description="Opted out", ordering="opted_out_count")
    def opted_out_count(self, obj) -> int:
        return obj.opted_out_count

    @admin.action(description="Duplicate (copies members not opted out)")
    def duplicate(self, request, queryset) -> None:
        for target_list in queryset:
            copy = target_list.duplicate(free_list_name(f"{target_list.name} (copy)"))
            self.message_user(request, f"Created {copy} with {copy.entry_count()} member(s).")

    @admin.action(description="Export as CSV")
    def export_csv(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Export one list at a time.", messages.WARNING)
            return None
        return export_response(queryset.get())

    def get_urls(self):
        views = [
            path("import/", self.admin_site.admin_view(self.import_upload), name="targets_import"),
            path(
                "import/<int:run_id>/",
                self.admin_site.admin_view(self.import_mapping),
                name="targets_import_mapping",
            ),
            path(
                "import/<int:run_id>/preview/",
                self.admin_site.admin_view(self.import_preview_progress),
                name="targets_import_preview",
            ),
            path(
                "<int:list_id>/export/",
                self.admin_site.admin_view(self.export_view),
                name="targets_targetlist_export",
            ),
        ]
        return views + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "member_types": member_type_counts(object_id)}
        return super().change_view(request, object_id, form_url, extra_context)

    def export_view(self, request, list_id: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return export_response(get_object_or_404(TargetList, pk=list_id))

    def import_upload(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            run = start_upload(form)
            if run is not None:
                return redirect("admin:targets_import_mapping", run_id=run.pk)
        return self._render_import(request, "admin/targets/import_upload.html", form=form)

    def import_mapping(self, request, run_id: int):
        if not self.has_add_permission(request):
            raise PermissionDenied
        run = get_object_or_404(ImportRun, pk=run_id)
        if run.status == ImportRun.Status.DONE:
            self.message_user(request, f"{run} is finished.")
            return redirect("admin:targets_targetlist_change", run.target_list_id)
        target_type = target_type_for(run.target_type_id)
        csv_file = importing.open_upload(run)
        fields = importing.importable_fields(target_type)
        form = MappingForm(
            request.POST or None,
            initial={**run.preview.get("mapping", run.mapping), "encoding": chosen_encoding(run)},
            fields=fields,
            headers=csv_file.headers,
        )
        report = None
        if run.preview.get("state") == "done":
            report = importing.ImportReport.from_json(run.preview["report"])
        if request.method == "POST" and form.is_valid():
            try:
                csv_file = self._reencode(run, csv_file, form.cleaned_data["encoding"])
                importing.check_mapping(csv_file, fields, form.mapping())
            except importing.CsvFileError as error:
                form.add_error(None, str(error))
            else:
                if "_import" in request.POST:
                    return self._import(request, run, csv_file, form.mapping())
                lines = csv_file.line_count()
                if lines > importing.INLINE_IMPORT_LINES:
                    key = importing.queue_preview(run, form.mapping(), lines - 1)
                    transaction.on_commit(lambda: tasks.preview_upload.delay(run.pk, key))
                    return redirect("admin:targets_import_mapping", run_id=run.pk)
                ImportRun.objects.filter(pk=run.pk).update(preview={})
                run.preview = {}
                report = importing.Importer(
                    csv_file, target_type, form.mapping(), dry_run=True
                ).run_import()
        return self._render_import(
            request,
            "admin/targets/import_mapping.html",
            form=form,
            run=run,
            report=report,
            preview=run.preview,
            preview_waiting=run.preview.get("state") in ("queued", "running"),
        )

    def import_preview_progress(self, request, run_id: int) -> JsonResponse:
        """What the mapping page polls while a preview runs in the background."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        preview = get_object_or_404(ImportRun, pk=run_id).preview
        fields = ("state", "rows", "total", "failure")
        return JsonResponse({name: preview[name] for name in fields if name in preview})

    def _reencode(self, run: ImportRun, csv_file, encoding: str):
        """The file read in the encoding chosen on the page (a partly imported run keeps its)."""
        if encoding == chosen_encoding(run):
            return csv_file
        if run.line_done:
            raise importing.CsvFileError("This run is partly imported: keep its encoding.")
        run.encoding = encoding
        csv_file = importing.open_upload(run)
        ImportRun.objects.filter(pk=run.pk).update(encoding=csv_file.encoding)
        run.encoding = csv_file.encoding
        return csv_file

    def _import(self, request, run, csv_file, mapping: dict[str, str]):
        if run.line_done and mapping != run.mapping:
            self.message_user(
                request, "This run is partly imported: keep its mapping.", messages.ERROR
            )
            return redirect("admin:targets_import_mapping", run_id=run.pk)
        ImportRun.objects.filter(pk=run.pk).update(mapping=mapping)
        run.mapping = mapping
        importing.start_target_list(run)
        if csv_file.line_count() > importing.INLINE_IMPORT_LINES:
            ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.RUNNING)
            transaction.on_commit(lambda: tasks.import_upload.delay(run.pk))
            self.message_user(
                request, "The file is importing in the background: reload this page for progress."
            )
            return redirect("admin:targets_importrun_change", run.pk)
        try:
            report = importing.import_stored_upload(run)
        except importing.ImportBusy as busy:
            self.message_user(request, str(busy), messages.WARNING)
            return redirect("admin:targets_importrun_change", run.pk)
        except Exception as error:  # the run is FAILED and resumable; say so instead of a 500
            logger.exception("Import run %s failed", run.pk)
            run.refresh_from_db()
            self.message_user(
                request,
                f"Import stopped after line {run.line_done} ({error}). "
                "Everything up to there is saved; press Import to resume.",
                messages.ERROR,
            )
            return redirect("admin:targets_import_mapping", run_id=run.pk)
        self.message_user(
            request,
            f"Imported {report.imported} row(s) into {run.target_list}: {report.created} new, "
            f"{report.updated} updated, {report.unchanged} unchanged; "
            f"{report.error_count} row(s) with errors (listed on the import run).",
            messages.WARNING if report.error_count else messages.SUCCESS,
        )
        return redirect("admin:targets_importrun_change", run.pk)

    def _render_import(self, request, template: str, **context):
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Import a CSV file into a target list",
                **context,
            },
        )


def free_list_name(name: str) -> str:
    candidate, number = name, 1
    while TargetList.objects.filter(name=candidate).exists():
        number += 1
        candidate = f"{name} {number}"
    return candidate


def member_type_counts(list_id) -> list[dict]:
    """Members per type of one list, with links to the member list filtered by type."""
    counts = (
        TargetListMember.objects.filter(target_list_id=list_id)
        .values("content_type_id")
        .annotate(total=Count("pk"), opted_out=Count("pk", filter=Q(opted_out=True)))
    )
    base = reverse("admin:targets_targetlistmember_changelist")
    rows = []
    for row in counts.order_by("content_type_id"):
        target_type = target_type_for(row["content_type_id"])
        rows.append(
            {
                "label": target_type.label if target_type else row["content_type_id"],
                "total": row["total"],
                "opted_out": row["opted_out"],
                "url": f"{base}?target_list__id__exact={list_id}&type={row['content_type_id']}",
            }
        )
    return rows


def chosen_encoding(run: ImportRun) -> str:
    """The page's encoding choice for a run: "" (detect) unless one was chosen."""
    return run.encoding if run.encoding in dict(ENCODINGS) else ""


def start_upload(form: UploadForm) -> ImportRun | None:
    """Store the upload and create its run; on a file error, say so and write nothing."""
    upload = form.cleaned_data["file"]
    directory = importing.uploads_directory()
    directory.mkdir(parents=True, exist_ok=True)
    stored = directory / f"{uuid.uuid4().hex}.csv"
    with open(stored, "wb") as destination:
        for chunk in upload.chunks():
            destination.write(chunk)
    target_type = target_type_by_key(form.cleaned_data["target_type"])
    try:
        csv_file = importing.open_csv(
            stored,
            form.cleaned_data["encoding"] or None,
            name=upload.name,
            hints=importing.ADMIN_PAGE,
        )
        fields = importing.importable_fields(target_type)
    except importing.CsvFileError as error:
        stored.unlink()
        form.add_error("file", str(error))
        return None
    chosen = form.cleaned_data["target_list"]
    return ImportRun.objects.create(
        target_list=chosen,
        new_list_name="" if chosen else form.cleaned_data["new_list_name"].strip(),
        target_type=target_type.content_type,
        file_name=upload.name,
        file_path=str(stored),
        checksum=csv_file.checksum,
        encoding=csv_file.encoding,
        mapping=importing.default_mapping(csv_file.headers, fields),
    )


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = [
        "file_name",
        "target_list",
        "target_type",
        "status",
        "line_done",
        "created_count",
        "updated_count",
        "unchanged_count",
        "error_count",
        "created_at",
    ]
    list_filter = ["status"]
    list_select_related = ["target_list", "target_type"]
    readonly_fields = [
        *(
            f.name
            for f in ImportRun._meta.fields
            if f.name not in ("id", "mapping", "errors", "preview")
        ),
        "column_mapping",
        "row_errors",
    ]
    exclude = ["errors", "mapping"]

    def has_add_permission(self, request) -> bool:
        return False  # runs start from the target list's Import CSV page

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # status, mapping and progress belong to the importer

    @admin.display(description="Columns")
    def column_mapping(self, obj) -> str:
        if not obj.mapping:
            return "-"
        return html_table(["Field", "CSV column"], sorted(obj.mapping.items()))

    @admin.display(description="Row errors")
    def row_errors(self, obj) -> str:
        if not obj.errors:
            return "-"
        more = obj.error_count - len(obj.errors)
        footer = f"... and {more} more" if more > 0 else ""
        return html_table(["Line", "Error"], obj.errors, footer=footer)


class MemberChangeList(ChangeList):
    """Reads the shown page's primary addresses after paging, one query per type.

    A subquery in the SELECT would also run for every member skipped by OFFSET,
    which on a deep page of a million-member list is most of them.
    """

    def get_results(self, request) -> None:
        super().get_results(request)
        page = list(self.result_list)
        ids_by_type: dict[int, list[int]] = {}
        for member in page:
            ids_by_type.setdefault(member.content_type_id, []).append(member.object_id)
        addresses = {}
        for content_type_id, ids in ids_by_type.items():
            links = RecordEmailAddress.objects.filter(
                content_type_id=content_type_id, object_id__in=ids, primary=True
            ).values_list("object_id", "email_address__address")
            addresses.update({(content_type_id, pk): address for pk, address in links})
        for member in page:
            member.primary_email_address = addresses.get(
                (member.content_type_id, member.object_id), ""
            )
        self.result_list = page


@admin.register(TargetListMember)
class TargetListMemberAdmin(admin.ModelAdmin):
    list_display = ["record_name", "record_type", "email_address", "opted_out", "added_at"]
    list_filter = [MemberTypeFilter, "opted_out", "target_list"]
    list_select_related = ["target_list", "content_type"]
    show_full_result_count = False
    raw_id_fields = ["target_list"]
    actions = ["mark_opted_out", "unmark_opted_out"]

    def get_queryset(self, request) -> QuerySet:
        # prefetch_related("record") resolves only the shown page: one query per type.
        return super().get_queryset(request).prefetch_related("record")

    def get_changelist(self, request, **kwargs):
        return MemberChangeList

    @admin.display(description="Name")
    def record_name(self, obj) -> str:
        return display_name(obj.record) if obj.record is not None else f"#{obj.object_id} (gone)"

    @admin.display(description="Type", ordering="content_type")
    def record_type(self, obj) -> str:
        target_type = target_type_for(obj.content_type)
        return target_type.key if target_type else obj.content_type.model

    @admin.display(description="Email address")
    def email_address(self, obj) -> str:
        return obj.primary_email_address or ""

    @admin.action(description="Mark opted out")
    def mark_opted_out(self, request, queryset) -> None:
        count = set_opted_out(queryset, True)
        self.message_user(request, f"{count} member(s) marked opted out.")

    @admin.action(description="Unmark opted out")
    def unmark_opted_out(self, request, queryset) -> None:
        count = set_opted_out(queryset, False)
        self.message_user(request, f"{count} member(s) no longer opted out.")


class SegmentConditionInline(admin.TabularInline):
    model = SegmentCondition
    extra = 1


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["name", "target_type", "match", "target_list", "sync_mode", "schedule"]
    list_select_related = ["target_type", "target_list", "schedule"]
    inlines = [SegmentConditionInline]
    readonly_fields = [
        "matching_records",
        "last_synced_at",
        "last_sync_added",
        "last_sync_removed",
        "periodic_task",
    ]
    actions = ["sync_now"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "target_type":
            kwargs["queryset"] = ContentType.objects.filter(
                pk__in=[t.content_type.pk for t in target_types()]
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Matching records (preview)")
    def matching_records(self, obj) -> str:
        if obj.pk is None:
            return "Save to see how many records match."
        try:
            return f"{segment_queryset(obj).count():,}"
        except ValidationError as error:
            return "; ".join(error.messages)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        segment = form.instance  # its schedule was updated on save (targets.signals)
        self.message_user(
            request, f"{segment}: {segment_queryset(segment).count():,} matching record(s)."
        )

    @admin.action(description="Sync into the target list now")
    def sync_now(self, request, queryset) -> None:
        for segment in queryset.select_related("target_list", "target_type"):
            try:
                result = sync_segment(segment)
            except ValidationError as error:
                self.message_user(request, "; ".join(error.messages), messages.ERROR)
                continue
            self.message_user(
                request,
                f"{segment}: {result.added} added to {segment.target_list}, "
                f"{result.removed} removed.",
            )
