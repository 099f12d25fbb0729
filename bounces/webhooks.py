"""Bounces, rejections, complaints and unsubscribes reported by ESP webhooks.

django-anymail validates each provider's webhook (basic auth with
ANYMAIL["WEBHOOK_SECRET"]) and normalises its events; this receiver turns them
into verdicts for the same effects as mailbox bounces. The queue item comes from
the metadata the sending engine attaches ("queue_item_id": QueueItem.uid), else
from the message id.

Event semantics (the reason and hard/soft come from bounces.reasons, as for mail):
- bounced / rejected: the provider's own hard/soft flag decides where its payload
  has one (Brevo's hard_bounce/soft_bounce event names, MailerSend's hard_bounced/
  soft_bounced, Mailjet's hard_bounce, Postmark's Type; SES's bounceType, Mailgun's
  severity and SendGrid's "blocked" only say when it is temporary); otherwise the
  status and text decide, precision first.
- failed from Postal (MessageDeliveryFailed, status HardFail): a permanent failure.
- complained, and rejected for an earlier spam report: complaint (opt out).
- unsubscribed, and rejected because the address unsubscribed: opt out too.
- deferred: not a bounce. The provider is still retrying; a final failure arrives
  later as "bounced" (RFC 3464: a delayed action is never final).

Postal and MailerSend send no metadata back: their events find the queue item by
the provider's message id, which the send recorded as QueueItem.message_id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from functools import wraps

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent, EventType, RejectReason
from anymail.utils import get_anymail_setting
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import URLPattern
from django.views.decorators.csrf import csrf_exempt

from bounces.classify import COMPLAINT, HARD, SOFT, Report, Verdict
from bounces.effects import apply_report
from bounces.reasons import Reason, reason_for, status_in

log = logging.getLogger(__name__)

SMTP_CODE_RE = re.compile(r"(?<![\d.])([45]\d\d)(?![\d.])")
# anymail's reject reasons that say the provider refused the address before sending.
REJECT_REASONS = {
    RejectReason.INVALID: Reason.USER_UNKNOWN,
    RejectReason.BLOCKED: Reason.POLICY,
    RejectReason.TIMED_OUT: Reason.EXPIRED,
}
OPT_OUT_REASONS = {
    RejectReason.SPAM: Reason.COMPLAINT,
    RejectReason.UNSUBSCRIBED: Reason.UNSUBSCRIBED,
}


# What anymail's parsers raise on a body that is not the provider's format: bad JSON
# or encoding (ValueError), missing or mistyped fields.
MALFORMED_BODY_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError)


def webhook_urls() -> list[URLPattern]:
    """anymail's webhook URLs, each view guarded against malformed bodies."""
    from anymail import urls

    return [
        URLPattern(p.pattern, refusing_malformed(p.callback), p.default_args, p.name)
        for p in urls.urlpatterns
    ]


def refusing_malformed(view: Callable) -> Callable:
    """A malformed body answers 400 and writes nothing (anymail would answer 500).

    The whole request is one transaction, so events already applied from a body that
    later turns out malformed are rolled back with it.
    """

    @wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            with transaction.atomic():
                return view(request, *args, **kwargs)
        except MALFORMED_BODY_ERRORS as error:
            log.warning("malformed webhook body at %s: %r", request.path, error)
            return HttpResponseBadRequest("Malformed webhook body.")

    return csrf_exempt(guarded)


def handle_tracking_event(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    """Receiver for anymail's tracking signal."""
    verdict = verdict_for(event)
    if verdict is None:
        return
    _refuse_unauthenticated(esp_name)
    report = Report(
        recipients=[verdict],
        queue_item_id=_queue_item_id(event),
        # Postal's ids are integers; the send recorded them as text.
        message_id=str(event.message_id) if event.message_id not in (None, "") else None,
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
    # Mailjet names its reason ("user unknown", "quota exceeded") only in "error".
    text = str(event.mta_response or event.description or _raw(event).get("error") or "")[:500]
    status = _status(event, text)
    if event.event_type == EventType.COMPLAINED:
        return Verdict(address, COMPLAINT, status, Reason.COMPLAINT, text)
    if event.event_type == EventType.UNSUBSCRIBED:
        return Verdict(address, COMPLAINT, status, Reason.UNSUBSCRIBED, text)
    if not _is_failure(event):
        return None
    if event.reject_reason in OPT_OUT_REASONS:
        return Verdict(address, COMPLAINT, status, OPT_OUT_REASONS[event.reject_reason], text)
    reason, hard = _judge(event, status, text)
    return Verdict(address, HARD if hard else SOFT, status, reason, text)


def _is_failure(event: AnymailTrackingEvent) -> bool:
    if event.event_type in (EventType.BOUNCED, EventType.REJECTED):
        return True
    # Postal's MessageDeliveryFailed (status HardFail): the remote server refused for good.
    return event.event_type == EventType.FAILED and _raw(event).get("event") in POSTAL_FAILED


POSTAL_FAILED = frozenset({"MessageDeliveryFailed"})


def _judge(event: AnymailTrackingEvent, status: str, text: str) -> tuple[str, bool]:
    """Reason and hard/soft. The provider's own hard/soft flag wins where it has one;
    otherwise the status and text decide, precision first, as for mailbox bounces."""
    flag = _provider_flag(event)
    temporary = flag == SOFT or (status.startswith("4") and flag != HARD)
    judgement = reason_for(
        status if "." in status else "",
        text,
        "rcpt" if flag == HARD else "",  # the provider says the address was refused
        permanent=False if temporary else None,
    )
    reason = judgement.reason
    if reason == Reason.UNDEFINED:
        reason = REJECT_REASONS.get(event.reject_reason, reason)
    if flag is not None:
        return reason, flag == HARD
    if temporary or event.reject_reason in (RejectReason.BLOCKED, RejectReason.TIMED_OUT):
        return reason, False
    if judgement.reason != Reason.UNDEFINED:
        return reason, judgement.is_hard
    # Nothing in the text says why: the provider called it a bounce of the address,
    # or refused to send to an address that bounced before or is invalid.
    bounced = event.event_type == EventType.BOUNCED and event.reject_reason is None
    if bounced or event.reject_reason in (RejectReason.BOUNCED, RejectReason.INVALID):
        return Reason.USER_UNKNOWN, True
    return reason, False


def _raw(event: AnymailTrackingEvent) -> dict:
    return event.esp_event if isinstance(event.esp_event, dict) else {}


def _provider_flag(event: AnymailTrackingEvent) -> str | None:
    """HARD or SOFT where the provider's payload says which, else None."""
    raw = _raw(event)
    ses_bounce = raw.get("bounce") if isinstance(raw.get("bounce"), dict) else {}
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    payload = raw.get("payload") if isinstance(raw.get("payload"), dict) else {}
    soft = (
        ses_bounce.get("bounceType", "Permanent") != "Permanent"  # Amazon SES
        or raw.get("Type") in ("SoftBounce", "Transient", "DnsError")  # Postmark
        or raw.get("type") == "blocked"  # SendGrid: a block, not a bad address
        or raw.get("severity") == "temporary"  # Mailgun
        or raw.get("event") == "soft_bounce"  # Brevo
        or data.get("type") == "soft_bounced"  # MailerSend
        or raw.get("hard_bounce") is False  # Mailjet
    )
    if soft:
        return SOFT
    hard = (
        raw.get("event") == "hard_bounce"  # Brevo
        or data.get("type") == "hard_bounced"  # MailerSend
        or raw.get("hard_bounce") is True  # Mailjet
        or raw.get("Type") == "HardBounce"  # Postmark
        or payload.get("status") == "HardFail"  # Postal
    )
    return HARD if hard else None


def _status(event: AnymailTrackingEvent, text: str) -> str:
    """The RFC 3463 status: from the SMTP text, else the provider's own field."""
    found = status_in(text)
    if found:
        return found
    raw = _raw(event)
    provided = str(raw.get("status") or "")  # SendGrid
    for recipient in (raw.get("bounce") or {}).get("bouncedRecipients") or []:  # Amazon SES
        if isinstance(recipient, dict) and recipient.get("emailAddress") == event.recipient:
            provided = str(recipient.get("status") or provided)
    found = status_in(provided)
    if found:
        return found
    code = SMTP_CODE_RE.search(text)
    return code.group(1) if code else ""
