"""The campaign page's panels: statistics, activity chart, best links, the log and retargeting.

A mixin for CampaignAdmin so that admin.py stays a list of fields; the figures
come from campaigns.statistics and campaigns.log, the views only call them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.http import urlencode

from campaigns.chart import activity_chart
from campaigns.log import FILTER_LABELS, LOG_FILTERS, create_target_list_from_log, csv_response
from campaigns.log import filtered_log as log_for_filter
from campaigns.models import Campaign, CampaignLogRecord
from campaigns.statistics import (
    activity_series,
    campaign_statistics,
    counts_by_people,
    hit_model,
    link_clicks,
    log_of,
    log_summary,
    percent_of,
)

LOG_PAGE_SIZE = 25
Action = CampaignLogRecord.Action


class TargetListFromLogForm(forms.Form):
    including = forms.MultipleChoiceField(
        label="Including actions",
        choices=Action.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Records with at least one of these (test entries never count).",
    )
    excluding = forms.MultipleChoiceField(
        label="Excluding actions",
        choices=Action.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Records with any of these are left out.",
    )
    name = forms.CharField(label="Target list name", max_length=200)

    def clean(self) -> dict:
        data = super().clean()
        both = set(data.get("including", [])) & set(data.get("excluding", []))
        if both:
            labels = ", ".join(str(Action(action).label) for action in sorted(both))
            raise ValidationError(f"An action cannot be both included and excluded: {labels}.")
        return data


@dataclass(frozen=True)
class LogRow:
    record: CampaignLogRecord
    target_label: str
    target_url: str | None


@dataclass(frozen=True)
class LogPage:
    log_filter: str
    include_test: bool
    rows: list[LogRow]
    number: int
    previous_query: str  # empty on the first page
    next_query: str  # empty on the last page
    error: str = ""


class CampaignPanels:
    """Mixed into CampaignAdmin (a ModelAdmin)."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/log.csv",
                view(self.log_csv_view),
                name="campaigns_campaign_log_csv",
            ),
            path(
                "<path:object_id>/people.json",
                view(self.people_view),
                name="campaigns_campaign_people",
            ),
            path(
                "<path:object_id>/target-list-from-log/",
                view(self.target_list_from_log_view),
                name="campaigns_campaign_target_list_from_log",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        campaign = self.get_object(request, unquote(object_id))
        if campaign is not None:
            extra_context = {**(extra_context or {}), **self.panels_context(request, campaign)}
        return super().change_view(request, object_id, form_url, extra_context)

    # -- context -----------------------------------------------------------

    def panels_context(self, request: HttpRequest, campaign: Campaign) -> dict:
        summary = log_summary(campaign)  # one scan shared by the figures and the chart
        # Figures by people read every raw hit: people_view serves them to the page.
        statistics = campaign_statistics(campaign, summary=summary, with_people=False)
        log_page = self.log_page(request, campaign)
        return {
            "statistics": statistics,
            "chart": activity_chart(activity_series(campaign, summary)),
            "links": link_clicks(campaign, with_hits=False) if campaign.allows_mass_email else [],
            "people_url": reverse("admin:campaigns_campaign_people", args=[campaign.pk])
            if hit_model() is not None and campaign.allows_mass_email
            else "",
            "log_page": log_page,
            "log_filters": [
                (key, label, self.log_query(key, log_page.include_test))
                for key, label in FILTER_LABELS.items()
            ],
            "log_test_toggle": self.log_query(log_page.log_filter, not log_page.include_test),
            "log_csv_url": reverse("admin:campaigns_campaign_log_csv", args=[campaign.pk])
            + "?"
            + urlencode(self.log_params(log_page.log_filter, log_page.include_test)),
            "target_list_form": TargetListFromLogForm(),
            "target_list_url": reverse(
                "admin:campaigns_campaign_target_list_from_log", args=[campaign.pk]
            ),
            "can_create_target_list": request.user.has_perm("targets.add_targetlist"),
        }

    @staticmethod
    def log_params(log_filter: str, include_test: bool, page: int = 1) -> dict:
        params = {"log": log_filter}
        if include_test:
            params["test"] = "1"
        if page > 1:
            params["log_page"] = str(page)
        return params

    def log_query(self, log_filter: str, include_test: bool, page: int = 1) -> str:
        return "?" + urlencode(self.log_params(log_filter, include_test, page)) + "#log"

    def log_page(self, request: HttpRequest, campaign: Campaign) -> LogPage:
        log_filter = request.GET.get("log", "all")
        include_test = request.GET.get("test") == "1"
        error = ""
        if log_filter not in LOG_FILTERS:
            error = f"Unknown log filter {log_filter!r}: showing all entries."
            log_filter = "all"
        try:
            number = max(1, int(request.GET.get("log_page", "1")))
        except ValueError:
            number = 1
        # No COUNT(*) over a million rows: fetch one row more than a page to know
        # whether there is a next one.
        start = (number - 1) * LOG_PAGE_SIZE
        records = list(
            log_for_filter(campaign, log_filter, include_test=include_test)
            .select_related("tracking_url", "mass_email", "content_type")
            .prefetch_related("target")[start : start + LOG_PAGE_SIZE + 1]
        )
        return LogPage(
            log_filter=log_filter,
            include_test=include_test,
            rows=[self.log_row(record) for record in records[:LOG_PAGE_SIZE]],
            number=number,
            previous_query=self.log_query(log_filter, include_test, number - 1)
            if number > 1
            else "",
            next_query=self.log_query(log_filter, include_test, number + 1)
            if len(records) > LOG_PAGE_SIZE
            else "",
            error=error,
        )

    @staticmethod
    def log_row(record: CampaignLogRecord) -> LogRow:
        if record.content_type_id is None:
            return LogRow(record, "", None)
        target = record.target
        if target is None:
            return LogRow(
                record, f"{record.content_type.model} #{record.object_id} (deleted)", None
            )
        meta = target._meta
        try:
            url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[target.pk])
        except NoReverseMatch:
            url = None
        return LogRow(record, f"{meta.verbose_name.capitalize()}: {target}", url)

    # -- views -------------------------------------------------------------

    def _campaign_or_404(self, request: HttpRequest, object_id: str) -> Campaign:
        campaign = self.get_object(request, unquote(object_id))
        if campaign is None:
            raise Http404("No such campaign.")
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        return campaign

    def log_csv_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        campaign = self._campaign_or_404(request, object_id)
        log_filter = request.GET.get("log", "all")
        try:
            records = log_for_filter(
                campaign, log_filter, include_test=request.GET.get("test") == "1"
            )
        except ValueError as error:
            return HttpResponseBadRequest(str(error))
        return csv_response(campaign, records, log_filter)

    def people_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """Opens and clicks by people (not scanners or mail proxies), from the raw hits."""
        campaign = self._campaign_or_404(request, object_id)
        people = counts_by_people(campaign)
        if people is None:
            return JsonResponse({"available": False})
        sent = log_of(campaign).filter(action=CampaignLogRecord.Action.SENT).count()
        links = link_clicks(campaign)
        return JsonResponse(
            {
                "available": True,
                "figures": {
                    key: {"count": count, "percent": str(percent_of(count, sent))}
                    for key, count in people.items()
                },
                "links": {
                    str(link.tracking_url_id): {"hits": link.hits, "people": link.clicked_by_people}
                    for link in links
                },
            }
        )

    def target_list_from_log_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        campaign = self._campaign_or_404(request, object_id)
        if not request.user.has_perm("targets.add_targetlist"):
            raise PermissionDenied
        form = TargetListFromLogForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                target_list, added = create_target_list_from_log(
                    campaign,
                    form.cleaned_data["including"],
                    form.cleaned_data["excluding"],
                    name=form.cleaned_data["name"],
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(
                    request, f"Target list “{target_list.name}” created with {added} member(s)."
                )
                return redirect("admin:targets_targetlist_change", target_list.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": campaign,
            "title": "Create target list from log",
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(
            request, "admin/campaigns/campaign/target_list_from_log.html", context
        )
