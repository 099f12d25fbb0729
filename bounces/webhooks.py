"""Bounces, rejections, complaints and unsubscribes reported by ESP webhooks.

django-anymail validates each provider's webhook (basic auth with
ANYMAIL["WEBHOOK_SECRET"]) and normalises its events; this receiver turns them
into verdicts for the same effects as mailbox bounces. The queue item comes from
the metadata the sending engine attaches ("queue_item_id": QueueItem.uid).

Event semantics:
- bounced / rejected: hard when the address is bad; soft when the provider says the
  failure is temporary or a policy block, or the SMTP status is not an address one.
- complained, and rejected for an earlier spam report: complaint (opt out).
- unsubscribed, and rejected because the address unsubscribed: opt out too.
- deferred: not a bounce. The provider is still retrying; a final failure arrives
  later as "bounced" (RFC 3464: a delayed action is never final).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent, EventType, RejectReason
from anymail.utils import get_anymail_setting

from bounces.classify import COMPLAINT, HARD, SOFT, Report, Verdict
from bounces.effects import apply_report

log = logging.getLogger(__name__)

ENHANCED_STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
SMTP_CODE_RE = re.compile(r"(?<![\d.])([45]\d\d)(?![\d.])")
# 5.1.x: the mailbox or domain does not exist; 5.2.1: the mailbox is disabled.
ADDRESS_STATUS_RE = re.compile(r"^5\.(?:1\.\d+|2\.1)$")
ADDRESS_WORDS_RE = re.compile(
    r"unknown (?:user|recipient|address|mailbox)|user unknown|no such (?:user|mailbox|address)"
    r"|does(?: not|n't) exist|invalid (?:recipient|address|mailbox)"
    r"|mailbox (?:not found|unavailable)|recipient not found|user not found|address rejected",
    re.IGNORECASE,
)
SOFT_REJECT_REASONS = frozenset({RejectReason.BLOCKED, RejectReason.TIMED_OUT})
OPT_OUT_REASONS = {RejectReason.SPAM: "complaint", RejectReason.UNSUBSCRIBED: "unsubscribed"}


def handle_tracking_event(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    """Receiver for anymail's tracking signal."""
    verdict = verdict_for(event)
    if verdict is None:
        return
    _refuse_unauthenticated(esp_name)
    report = Report(
        recipients=[verdict],
        queue_item_id=_queue_item_id(event),
        message_id=event.message_id if isinstance(event.message_id, str) else None,
    )
    source = "esp:" + esp_name.lower().replace(" ", "-")
    apply_report(report, source=source, event_key=_event_key(event))


def _event_key(event: AnymailTrackingEvent) -> str:
    """The provider's event id; for events without one, the payload itself.

    A redelivery repeats the payload byte for byte, so its digest is stable.
    """
    if event.event_id:
        return f"{event.event_id}:{event.event_type}"
    payload = json.dumps(event.esp_event, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


def _refuse_unauthenticated(esp_name: str) -> None:
    # Anymail only warns when no secret is set; a forged "bounce" could then
    # invalidate any address, so refuse (anymail answers 400).
    # Read the way anymail reads it (ANYMAIL["WEBHOOK_SECRET"] or ANYMAIL_WEBHOOK_SECRET).
    if not get_anymail_setting("webhook_secret", default=None):
        raise AnymailWebhookValidationFailure(
            f"{esp_name} webhook refused: set ANYMAIL['WEBHOOK_SECRET'] ('user:pass') "
            "and put those credentials in the provider's webhook URL."
        )


def _queue_item_id(event: AnymailTrackingEvent) -> str | None:
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    value = metadata.get("queue_item_id")
    return str(value) if value else None


def verdict_for(event: AnymailTrackingEvent) -> Verdict | None:
    """The verdict an event means for its recipient, or None when it is no failure."""
    address = event.recipient or ""
    text = str(event.mta_response or event.description or "")[:500]
    status = _status(event, text)
    if event.event_type == EventType.COMPLAINED:
        return Verdict(address, COMPLAINT, status, "complaint", text)
    if event.event_type == EventType.UNSUBSCRIBED:
        return Verdict(address, COMPLAINT, status, "unsubscribed", text)
    if event.event_type not in (EventType.BOUNCED, EventType.REJECTED):
        return None
    if event.reject_reason in OPT_OUT_REASONS:
        return Verdict(address, COMPLAINT, status, OPT_OUT_REASONS[event.reject_reason], text)
    hard = _is_hard(event, status, text)
    reason = "userunknown" if hard else (event.reject_reason or "other")
    return Verdict(address, HARD if hard else SOFT, status, reason, text)


def _is_hard(event: AnymailTrackingEvent, status: str, text: str) -> bool:
    """Only a bad address is hard: precision first, as for mailbox bounces."""
    if _provider_says_temporary(event) or event.reject_reason in SOFT_REJECT_REASONS:
        return False
    if status.startswith("4"):
        return False
    if ADDRESS_STATUS_RE.match(status):
        return True
    if status.count(".") == 2 and status != "5.0.0":
        return False  # full mailbox, policy, network, content: not the address's fault
    if ADDRESS_WORDS_RE.search(text):
        return True
    # The provider called it a bounce of the address (or rejected it as invalid).
    known_bad = (RejectReason.BOUNCED, RejectReason.INVALID)
    if event.event_type == EventType.BOUNCED:
        return event.reject_reason in (None, *known_bad)
    return event.reject_reason in known_bad


def _provider_says_temporary(event: AnymailTrackingEvent) -> bool:
    """The providers' own hard/soft split, where their payload has one."""
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    ses_bounce = raw.get("bounce") if isinstance(raw.get("bounce"), dict) else {}
    return (
        ses_bounce.get("bounceType", "Permanent") != "Permanent"  # Amazon SES
        or raw.get("Type") in ("SoftBounce", "Transient", "DnsError")  # Postmark
        or raw.get("type") == "blocked"  # SendGrid: a block, not a bad address
        or raw.get("severity") == "temporary"  # Mailgun
    )


def _status(event: AnymailTrackingEvent, text: str) -> str:
    """The RFC 3463 status: from the SMTP text, else the provider's own field."""
    found = ENHANCED_STATUS_RE.search(text)
    if found:
        return ".".join(found.groups())
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    provided = str(raw.get("status") or "")  # SendGrid
    for recipient in (raw.get("bounce") or {}).get("bouncedRecipients") or []:  # Amazon SES
        if isinstance(recipient, dict) and recipient.get("emailAddress") == event.recipient:
            provided = str(recipient.get("status") or provided)
    found = ENHANCED_STATUS_RE.search(provided)
    if found:
        return ".".join(found.groups())
    code = SMTP_CODE_RE.search(text)
    return code.group(1) if code else ""
