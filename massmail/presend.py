"""Pre-send checks: what would hurt delivery or compliance, shown on the mass email page.

Warnings, not blockers: the marketer decides. Each check reads the same settings
and the same composition code the sender uses, so what it says is what will go out.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Count
from django.db.models.expressions import RawSQL
from django.utils import timezone

from massmail.composition import prepare
from massmail.dkim import configured_signer
from massmail.models import MassEmail, OutboundSettings, QueueItem
from massmail.placeholders import (
    EVERY_RECORD,
    OPT_OUT_KEYS,
    CompositionError,
    empty_condition,
    keys_in,
    validate_mass_email,
    without_fallback,
)
from massmail.queue import recently_mailed_count, recipient_count, recipients_sql
from massmail.schedule import next_tick_at
from targets.registry import TargetType, target_type_for

WARNING = "warning"  # likely to hurt delivery, compliance or the message itself
NOTICE = "notice"  # what the system will do for you; worth knowing, nothing to fix

LOCAL_HOSTS = {"localhost", "localhost.localdomain", "0.0.0.0", ""}
# A start this far in the past is worth a word (and a confirmation in the form);
# "now, give or take the time it took to fill in the form" is not.
PAST_START_GRACE = timedelta(minutes=10)
# Statuses in which nothing more will be sent: their audience is history.
FINISHED = (MassEmail.Status.COMPLETE, MassEmail.Status.FAILED, MassEmail.Status.CANCELED)


@dataclass(frozen=True)
class PresendWarning:
    code: str
    message: str
    level: str = WARNING


def presend_warnings(
    mass_email: MassEmail, outbound: OutboundSettings | None = None, now: datetime | None = None
) -> list[PresendWarning]:
    outbound = outbound or OutboundSettings.load()
    template_errors = validate_mass_email(mass_email)
    warnings = [
        *audience_warnings(mass_email, outbound),
        *start_warnings(mass_email, now or timezone.now()),
        *site_url_warnings(outbound.effective_site_url),
        *unsubscribe_warnings(mass_email, outbound),
        *text_part_warnings(mass_email),
        *[PresendWarning("placeholder", error) for error in template_errors],
        *dkim_warnings(),
    ]
    if not template_errors:
        warnings += empty_value_warnings(mass_email)
        warnings += sender_domain_warnings(mass_email, outbound)
    return warnings


def audience_warnings(mass_email: MassEmail, outbound: OutboundSettings) -> list[PresendWarning]:
    """Nobody to send to, or recipients the campaign mailed only days ago."""
    if mass_email.status in FINISHED:
        return []
    if mass_email.queue_built_at is None:
        count = recipient_count(mass_email)
        if not count:
            return [
                PresendWarning(
                    "empty_queue",
                    "Nobody will receive this mass email: its target lists have no member "
                    "with a usable address (after excluded lists, opt-outs and invalid "
                    "addresses). When it starts, it goes straight to Complete.",
                )
            ]
    warnings = []
    days = outbound.recently_mailed_days
    if days:
        since = timezone.now() - timedelta(days=days)
        recent = recently_mailed_count(mass_email, since)
        if recent:
            warnings.append(
                PresendWarning(
                    "recently_mailed",
                    f"{recent} recipient(s) received another mass email of this campaign "
                    f"in the last {days} day(s).",
                )
            )
    return warnings


def start_warnings(mass_email: MassEmail, now: datetime) -> list[PresendWarning]:
    """A Pending start in the past sends at the next tick, which may surprise."""
    if mass_email.queue_built_at is not None or mass_email.status != MassEmail.Status.PENDING:
        return []
    if mass_email.start_at >= now - PAST_START_GRACE:
        return []
    tick_at = next_tick_at(now)
    when = f"at about {timezone.localtime(tick_at):%H:%M}" if tick_at else "at the next send tick"
    start = timezone.localtime(mass_email.start_at)
    return [
        PresendWarning(
            "start_in_past",
            f"The start date {start:%Y-%m-%d %H:%M} is in the past: sending begins {when}, "
            "not at that date.",
        )
    ]


def _is_local(host: str) -> bool:
    if host in LOCAL_HOSTS or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


def site_url_warnings(site_url: str) -> list[PresendWarning]:
    parts = urlsplit(site_url)
    host = (parts.hostname or "").lower()
    warnings = []
    if _is_local(host):
        warnings.append(
            PresendWarning(
                "site_url_local",
                f"Links in the message point to {site_url}, which recipients cannot reach. "
                "Set the public site URL (Outbound email settings, or SITE_URL).",
            )
        )
    if parts.scheme != "https":
        warnings.append(
            PresendWarning(
                "site_url_not_https",
                f"Links use {parts.scheme or 'no scheme'}://, not https://: mail clients flag "
                "them, and one-click unsubscribe (RFC 8058) requires HTTPS, so messages go "
                "out without the List-Unsubscribe-Post header (Gmail and Yahoo require it "
                "from bulk senders).",
            )
        )
    return warnings


def _template_keys(mass_email: MassEmail) -> set[str]:
    template = mass_email.email_template
    return set(keys_in(template.body_html or "")) | set(keys_in(template.body_text or ""))


def unsubscribe_warnings(mass_email: MassEmail, outbound: OutboundSettings) -> list[PresendWarning]:
    if mass_email.campaign.is_informational:
        return [
            PresendWarning(
                "informational",
                "Informational campaign: no unsubscribe link, no one-click unsubscribe, and "
                "opted-out addresses still receive it. Use it only for transactional notices.",
            )
        ]
    has_link = bool(_template_keys(mass_email) & OPT_OUT_KEYS)
    if outbound.disable_mandatory_opt_out_link:
        warnings = [
            PresendWarning(
                "one_click_off",
                "One-click unsubscribe (List-Unsubscribe headers) is off because the mandatory "
                "opt-out link is disabled: Gmail and Yahoo require it from bulk senders.",
            )
        ]
        if not has_link:
            warnings.append(
                PresendWarning(
                    "no_unsubscribe_link",
                    "The template has no {optOutUrl} or {optOutLink} and none will be added: "
                    "recipients have no visible way to unsubscribe.",
                )
            )
        return warnings
    if not has_link:
        return [
            PresendWarning(
                "unsubscribe_appended",
                "The template has no visible unsubscribe link ({optOutUrl} or {optOutLink}): "
                "one will be appended at the end of the message.",
                NOTICE,
            )
        ]
    return []


def empty_value_warnings(mass_email: MassEmail) -> list[PresendWarning]:
    """Placeholders that some recipients would get as nothing ("Hello ,"), with counts."""
    template = mass_email.email_template
    keys = {
        key: None
        for text in (template.subject, template.body_html, template.body_text)
        for key in keys_in(text or "")
    }
    recipients = _recipients_by_type(mass_email)
    warnings = []
    for key in keys:
        empty = sum(
            _count_empty(key, target_type, ids, total)
            for target_type, (ids, total) in recipients.items()
        )
        if empty:
            name = without_fallback(key)
            warnings.append(
                PresendWarning(
                    "empty_value",
                    f"{{{key}}} is empty for {empty} recipient(s): they get nothing in its "
                    f"place. Give it a fallback, as in {{{name}|there}}.",
                )
            )
    return warnings


def _recipients_by_type(mass_email: MassEmail) -> dict[TargetType, tuple[object, int]]:
    """Per target type: a subquery of the recipients' record ids, and how many there are.

    Once the queue is built, its items still to send; before, the rows the queue
    build would insert now.
    """
    if mass_email.queue_built_at is not None:
        items = mass_email.queue_items.filter(
            status=QueueItem.Status.PENDING, is_test=False, content_type__isnull=False
        )
        totals = items.values_list("content_type_id").annotate(n=Count("id")).order_by()
        ids = {ct: items.filter(content_type_id=ct).values("object_id") for ct, _ in totals}
    else:
        found = recipients_sql(mass_email)
        if found is None:
            return {}
        sql, params = found
        totals = _grouped_counts(sql, params)
        ids = {
            ct: RawSQL(
                f"SELECT r.object_id FROM ({sql}) r WHERE r.content_type_id = %s", [*params, ct]
            )
            for ct, _ in totals
        }
    by_type = {}
    for content_type_id, total in totals:
        target_type = target_type_for(content_type_id)
        if target_type is not None:
            by_type[target_type] = (ids[content_type_id], total)
    return by_type


def _grouped_counts(sql: str, params: list) -> list[tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.content_type_id, COUNT(*) FROM ({sql}) r GROUP BY r.content_type_id",
            params,
        )
        return cursor.fetchall()


def _count_empty(key: str, target_type: TargetType, ids: object, total: int) -> int:
    condition = empty_condition(key, target_type)
    if condition is None:
        return 0
    records = target_type.model._default_manager.filter(pk__in=ids)
    if condition is EVERY_RECORD:
        return total
    return records.filter(condition).count()


def text_part_warnings(mass_email: MassEmail) -> list[PresendWarning]:
    if (mass_email.email_template.body_text or "").strip():
        return []
    return [
        PresendWarning(
            "text_generated",
            "The template has no text part: one will be generated from the HTML. "
            "Check it in the preview.",
            NOTICE,
        )
    ]


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def _aligned(one: str, other: str) -> bool:
    """DMARC's relaxed alignment, approximately: one domain is the other or under it."""
    return one == other or one.endswith("." + other) or other.endswith("." + one)


def sender_domain_warnings(
    mass_email: MassEmail, outbound: OutboundSettings
) -> list[PresendWarning]:
    try:
        prepared = prepare(mass_email, outbound=outbound)
    except (CompositionError, ImproperlyConfigured):
        return []  # reported by the placeholder and DKIM checks
    from_domain = _domain(prepared.from_address)
    bounce_domain = _domain(prepared.bounce_address)
    warnings = []
    if not _aligned(from_domain, bounce_domain):
        what = "VERP address" if prepared.use_verp else "Return-Path"
        warnings.append(
            PresendWarning(
                "return_path_domain",
                f"The From domain {from_domain} does not match the {what} domain "
                f"{bounce_domain} ({prepared.bounce_address}): SPF will not align for DMARC.",
            )
        )
    dkim_domain = settings.DKIM_DOMAIN.lower() if prepared.dkim else ""
    if dkim_domain and not _aligned(from_domain, dkim_domain):
        warnings.append(
            PresendWarning(
                "dkim_domain",
                f"Messages are signed for {dkim_domain} but sent from {from_domain}: "
                "DKIM will not align for DMARC.",
            )
        )
    return warnings


def dkim_warnings() -> list[PresendWarning]:
    try:
        signer = configured_signer()
    except ImproperlyConfigured as error:
        return [PresendWarning("dkim_broken", f"DKIM is misconfigured: {error}")]
    if signer is None:
        return [
            PresendWarning(
                "dkim_missing",
                "No DKIM key is configured (DKIM_PRIVATE_KEY_PATH, DKIM_SELECTOR, DKIM_DOMAIN): "
                "unless your mail server signs, Gmail and Yahoo will reject or junk bulk mail.",
            )
        ]
    return []
