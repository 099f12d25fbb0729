"""What a bounce or complaint does, whichever way it arrived (mailbox, SMTP reply, ESP).

hard      -> the address is invalid; Bounced (Hard) logged once per queue item.
soft      -> Bounced (Soft) logged; an address whose messages bounced soft
             `soft_bounce_threshold` times (counted per message) within
             `soft_bounce_window_days` becomes invalid too.
complaint -> the address is opted out; Opted Out logged once per queue item.
delayed   -> not a bounce: delivery is still being retried (RFC 3464). No log row,
             the address stays valid; only the queue item notes the delay.

Every call records BounceEvent rows; (source, event_key, address) is unique, so a
message read twice or a webhook delivered twice changes nothing the second time.

Anyone can mail the bounce address, so a mailed report (a DSN, an ARF complaint)
changes an address only when it names a message we sent: a VERP token whose HMAC
verifies, or our X-Queue-Item-Id or Message-ID in the returned headers. Otherwise
it is a HeldReport, applied only by an administrator (`apply_held`).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from bounces.classify import COMPLAINT, DELAYED, HARD, SOFT, Report, Verdict
from bounces.models import BounceEvent, HeldReport
from bounces.reasons import normalise
from campaigns.models import CampaignLogRecord
from massmail.models import OutboundSettings, QueueItem
from massmail.verp import read_verp_token
from targets.models import EmailAddress, normalize_address

log = logging.getLogger(__name__)

# When several verdicts must collapse onto one queue item, the strongest wins.
_SEVERITY = {COMPLAINT: 3, HARD: 2, SOFT: 1}
# Sources whose reports anyone can forge. An ESP's webhook is authenticated by its
# secret and an SMTP reply comes over our own connection: those are taken as they are.
MAILED_SOURCES = frozenset({"imap"})


def apply_report(
    report: Report,
    *,
    source: str,
    queue_item: QueueItem | None = None,
    event_key: str | None = None,
) -> list[BounceEvent]:
    """Apply a classified report; the BounceEvents created (empty when already applied)."""
    if not report.recipients:
        return []
    try:
        # Everything in one savepoint: any database error leaves a caller's transaction usable.
        with transaction.atomic():
            queue_item = queue_item or find_queue_item(report)
            if queue_item is None and source in MAILED_SOURCES:
                return _hold(report.recipients, source, event_key or "")
            pairs = _targets(report.recipients, queue_item)
            events = [
                _record(verdict, address, source, event_key or "", queue_item)
                for verdict, address in pairs
            ]
            for event in events:
                _apply(event)
    except IntegrityError:
        # The same (source, event_key) was applied before, or concurrently.
        log.info("bounce %s/%s already applied", source, event_key)
        return []
    return events


def _hold(verdicts: list[Verdict], source: str, event_key: str) -> list[BounceEvent]:
    """Keep unattributed verdicts on known addresses for review; unknown ones as before."""
    events = []
    for verdict in verdicts:
        address = normalize_address(verdict.address)
        email_address = EmailAddress.objects.filter(address=address).first()
        if email_address is None:
            events.append(_record(verdict, address, source, event_key, None))
            continue
        log.info("unattributed %s report for %s held for review", verdict.verdict, address)
        fields = _report_fields(verdict, address, source, event_key)
        HeldReport.objects.create(email_address=email_address, **fields)
    return events


def apply_held(held: HeldReport) -> BounceEvent | None:
    """Apply a held report, as an administrator decided; None when it was applied before."""
    with transaction.atomic():
        pending = HeldReport.objects.select_for_update().filter(pk=held.pk, applied_at=None)
        held = pending.select_related("email_address").first()
        if held is None:
            return None
        fields = {name: getattr(held, name) for name in REPORT_FIELDS}
        event = BounceEvent.objects.create(email_address=held.email_address, **fields)
        _apply(event)
        held.applied_at = timezone.now()
        held.save(update_fields=["applied_at"])
    return event


def find_queue_item(report: Report) -> QueueItem | None:
    """By the X-Queue-Item-Id header, else the HMAC-checked VERP token, else Message-ID."""
    items = QueueItem.objects.select_related("email_address", "mass_email")
    uid = _as_uuid(report.queue_item_id)
    if uid and (item := items.filter(uid=uid).first()):
        return item
    verp_uid = read_verp_token(report.verp_token) if report.verp_token else None
    if verp_uid and (item := items.filter(uid=verp_uid).first()):
        return item
    if report.message_id:
        bare = report.message_id.strip().strip("<>")
        if bare:
            return items.filter(message_id__in=[bare, f"<{bare}>"]).first()
    return None


def _as_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip()) if value else None
    except ValueError:
        return None


def _targets(verdicts: list[Verdict], item: QueueItem | None) -> list[tuple[Verdict, str]]:
    """Pair verdicts with the address they are about.

    We send one message to one address, so with a queue item the bounce is about
    that item's address even when the verdict names a forwarding target or a
    redacted complainant: verdicts naming the item's address, else the strongest one.
    """
    if item is None:
        return [(v, normalize_address(v.address)) for v in verdicts]
    own = item.email_address.address
    matching = [v for v in verdicts if normalize_address(v.address) == own]
    chosen = matching or [max(verdicts, key=lambda v: _SEVERITY.get(v.verdict, 0))]
    return [(v, own) for v in chosen]


def _record(
    verdict: Verdict, address: str, source: str, event_key: str, item: QueueItem | None
) -> BounceEvent:
    email_address = (
        item.email_address if item else EmailAddress.objects.filter(address=address).first()
    )
    fields = _report_fields(verdict, address, source, event_key)
    return BounceEvent.objects.create(email_address=email_address, queue_item=item, **fields)


# What a BounceEvent and a HeldReport both say about one address.
REPORT_FIELDS = ("source", "event_key", "address", "verdict", "status", "reason", "diagnostic")


def _report_fields(verdict: Verdict, address: str, source: str, event_key: str) -> dict:
    return {
        "source": _clean(source, 50),
        "event_key": _clean(event_key, 255),
        "address": _clean(address, 254),
        "verdict": verdict.verdict,
        "status": _clean(verdict.status, 20),
        "reason": normalise(_clean(verdict.reason, 100)),  # one vocabulary, whoever reported it
        "diagnostic": _clean(verdict.diagnostic, 2000),
    }


def _clean(text: str | None, limit: int) -> str:
    # Bounce text is arbitrary bytes from strangers: PostgreSQL refuses NUL in text.
    return (text or "").replace("\x00", "")[:limit]


def _apply(event: BounceEvent) -> None:
    if event.email_address_id is None:
        log.info("bounce for unknown address %s kept for review", event.address)
        return
    addresses = EmailAddress.objects.filter(pk=event.email_address_id)
    now = timezone.now()
    if event.verdict == HARD:
        addresses.update(invalid=True, updated_at=now)
        _log(event, CampaignLogRecord.Action.BOUNCED, CampaignLogRecord.Bounce.HARD)
    elif event.verdict == SOFT:
        _log(event, CampaignLogRecord.Action.BOUNCED, CampaignLogRecord.Bounce.SOFT)
        if _soft_threshold_reached(event.email_address_id):
            addresses.update(invalid=True, updated_at=now)
    elif event.verdict == COMPLAINT:
        addresses.update(opt_out=True, updated_at=now)
        _log(event, CampaignLogRecord.Action.OPTED_OUT, "")
    elif event.verdict == DELAYED and event.queue_item_id:
        note = f"delivery delayed ({event.status or 'no status'}): {event.diagnostic}"
        QueueItem.objects.filter(pk=event.queue_item_id).update(last_error=note[:1000])


def _soft_threshold_reached(email_address_id: int) -> bool:
    """Soft bounces of that many different messages within the window.

    One message can come back soft several times (a delay warning after 4 hours,
    another after a day, then the final expiry): that is one slow delivery, not
    an address that keeps bouncing. Reports tied to a queue item count once per
    item; those without one (an ESP event with no metadata) count one each.
    """
    settings = OutboundSettings.load()
    if not settings.soft_bounce_threshold:
        return False
    since = timezone.now() - timedelta(days=settings.soft_bounce_window_days)
    counts = BounceEvent.objects.filter(
        email_address_id=email_address_id, verdict=SOFT, occurred_at__gte=since
    ).aggregate(
        messages=Count("queue_item", distinct=True),
        unattributed=Count("id", filter=Q(queue_item__isnull=True)),
    )
    return counts["messages"] + counts["unattributed"] >= settings.soft_bounce_threshold


def _log(event: BounceEvent, action: str, bounce_type: str) -> None:
    """One log row per queue item and kind; a bounce without a queue item has no campaign."""
    item = event.queue_item
    if item is None:
        return
    record = CampaignLogRecord.of_item(item, action, at=event.occurred_at, bounce_type=bounce_type)
    CampaignLogRecord.objects.write([record])
