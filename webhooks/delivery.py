"""Delivering the outbox: each endpoint's pending events in batches, signed, retried with backoff.

One process at a time delivers to an endpoint (a lease on its row, taken by a
conditional UPDATE and committed before any HTTP request), in event id order.
A batch is one POST of `{"events": [...]}`; a 2xx answer marks its events
delivered. Anything else (an error status, a refused connection, a timeout)
leaves them pending and puts the endpoint off for a backoff that doubles with
each failure in a row, up to an hour: a receiver that is down loses nothing and
gets everything once it is back. Delivery is at least once (an answer lost on
the way back means the batch comes again): receivers de-duplicate by event id.

Signature: header `Massmail-Signature: t=<unix time>,v1=<hex>` where the hex is
HMAC-SHA256 of `<unix time>.<body>` under the endpoint's secret (Stripe's scheme),
so a receiver can refuse old replays as well as forgeries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Q
from django.utils import timezone

from targets.registry import target_type_for
from webhooks.models import EventType, WebhookEndpoint, WebhookEvent

BATCH = 100
# Batches per endpoint per run: a backlog drains over several runs, without
# one endpoint keeping the worker from the others for long.
MAX_BATCHES = 50
LEASE = timedelta(minutes=2)
TIMEOUT_SECONDS = 10
FIRST_BACKOFF = timedelta(seconds=10)
MAX_BACKOFF = timedelta(hours=1)
KEEP_DELIVERED = timedelta(days=7)
SIGNATURE_HEADER = "Massmail-Signature"
HIT_TYPES = (EventType.OPENED, EventType.CLICKED)


@dataclass
class DeliveryResult:
    delivered: int = 0
    batches: int = 0
    failures: int = 0


def backoff(failures: int) -> timedelta:
    """How long an endpoint is put off after this many failures in a row."""
    return min(FIRST_BACKOFF * 2 ** max(failures - 1, 0), MAX_BACKOFF)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(secret: str, header: str, body: bytes, *, tolerance: int = 300, now=None) -> bool:
    """What a receiver does: the header's signature matches and is recent enough."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), parts.get("v1", ""))


def deliver_due(now: datetime | None = None) -> DeliveryResult:
    """Deliver what is pending for every active endpoint that is due; safe to run at once."""
    result = DeliveryResult()
    now = now or timezone.now()
    due = WebhookEndpoint.objects.filter(active=True).filter(
        Q(retry_at__isnull=True) | Q(retry_at__lte=now)
    )
    for endpoint_id in due.values_list("pk", flat=True):
        if _take_lease(endpoint_id, now):
            try:
                deliver_endpoint(WebhookEndpoint.objects.get(pk=endpoint_id), result)
            finally:
                WebhookEndpoint.objects.filter(pk=endpoint_id).update(lease_until=None)
    discard_delivered(now)
    return result


def _take_lease(endpoint_id: int, now: datetime) -> bool:
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    return bool(
        WebhookEndpoint.objects.filter(free, pk=endpoint_id).update(lease_until=now + LEASE)
    )


def deliver_endpoint(endpoint: WebhookEndpoint, result: DeliveryResult) -> None:
    pending = WebhookEvent.objects.filter(endpoint=endpoint, delivered_at__isnull=True)
    for _ in range(MAX_BATCHES):
        events = list(_with_sources(pending.order_by("id")[:BATCH]))
        if not events:
            return
        ids = [event.pk for event in events]
        status = post(endpoint, {"events": [payload(event) for event in events]})
        now = timezone.now()
        WebhookEvent.objects.filter(pk__in=ids).update(attempts=F("attempts") + 1)
        if status.ok:
            WebhookEvent.objects.filter(pk__in=ids, delivered_at__isnull=True).update(
                delivered_at=now
            )
            _record(endpoint, status.text, now, failures=0, retry_at=None, last_success_at=now)
            result.delivered += len(ids)
            result.batches += 1
        else:
            failures = endpoint.failures + 1
            _record(endpoint, status.text, now, failures=failures, retry_at=now + backoff(failures))
            result.failures += 1
            return


def _record(endpoint: WebhookEndpoint, status: str, now: datetime, **state) -> None:
    state.update(last_status=status[:300], last_attempt_at=now, lease_until=now + LEASE)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(**state)
    for name, value in state.items():
        setattr(endpoint, name, value)


def _with_sources(events):
    return events.select_related("queue_item", "tracking_url", "hit", "subscription_form")


def payload(event: WebhookEvent) -> dict:
    """The event as its receiver reads it."""
    target_type = target_type_for(event.content_type_id) if event.content_type_id else None
    data = {
        "id": str(event.uid),
        "type": event.event_type,
        "occurred_at": event.occurred_at.isoformat(),
        "test": event.is_test,
        "campaign": event.campaign_id,
        "mass_email": event.mass_email_id,
        "queue_item": str(event.queue_item.uid) if event.queue_item else None,
        "recipient": {
            "email": event.email_address,
            "type": target_type.key if target_type else None,
            "id": event.object_id,
        },
    }
    if event.event_type == EventType.CLICKED:
        url = event.tracking_url
        data["link"] = {"id": event.tracking_url_id, "url": url.url if url else None}
    if event.event_type in HIT_TYPES:
        # Read when delivered: the minutely burst check may have marked the hit since.
        hit = event.hit
        data["machine"] = hit.is_machine if hit else None
        data["machine_reason"] = hit.machine_reason if hit else ""
    if event.event_type == EventType.SUBSCRIBED:
        form = event.subscription_form
        data["form"] = {"id": event.subscription_form_id, "name": form.name if form else None}
        data["lists"] = event.target_lists or []
    return data


@dataclass(frozen=True)
class Status:
    ok: bool
    text: str


def post(endpoint: WebhookEndpoint, document: dict) -> Status:
    body = json.dumps(document, separators=(",", ":")).encode()
    timestamp = int(time.time())
    request = urllib.request.Request(
        endpoint.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "massmail-webhooks/1",
            SIGNATURE_HEADER: f"t={timestamp},v1={sign(endpoint.secret, timestamp, body)}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return Status(200 <= response.status < 300, f"HTTP {response.status}")
    except urllib.error.HTTPError as error:
        return Status(False, f"HTTP {error.code}")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Status(False, f"not delivered: {reason}")


def discard_delivered(now: datetime) -> int:
    """Delivered events are kept a week for the admin to look at, then deleted."""
    old = WebhookEvent.objects.filter(delivered_at__lt=now - KEEP_DELIVERED)
    return old.delete()[0]
