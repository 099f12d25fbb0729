"""Send Test: the real message to chosen records and addresses, now, whatever the schedule.

The test items go through the same sending session as a tick's portions (same
composition, transport and outcome recording), marked test: left out of statistics
and of the queue's progress, never retried, never counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from massmail.models import MassEmail, OutboundSettings, QueueItem
from massmail.sending import SendingSession, TickResult, claimed_items, worker_name
from targets.models import EmailAddress, primary_email_of, validate_address

Status = QueueItem.Status


@dataclass
class SendTestResult:
    sent: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (who, why)
    failed: list[tuple[str, str]] = field(default_factory=list)


def send_test(
    mass_email: MassEmail, *, records: Iterable[Any] = (), addresses: Iterable[str] = ()
) -> SendTestResult:
    """Send the real message to chosen records and addresses now, whatever the schedule.

    Items and log rows are marked test (left out of statistics and of the queue's
    progress); opted-out (unless Informational) and invalid addresses are skipped.
    """
    result = SendTestResult()
    recipients = _test_recipients(mass_email, records, addresses, result)
    if not recipients:
        return result
    worker = worker_name()
    now = timezone.now()
    QueueItem.objects.bulk_create(
        [
            QueueItem(
                mass_email=mass_email,
                content_type_id=content_type_id,
                object_id=object_id,
                email_address=address,
                status=Status.SENDING,
                claimed_at=now,
                claimed_by=worker,
                is_test=True,
            )
            for content_type_id, object_id, address in recipients
        ]
    )
    ids = list(QueueItem.objects.filter(claimed_by=worker).values_list("pk", flat=True))
    session = SendingSession(worker, OutboundSettings.load(), is_test=True)
    try:
        session.send(claimed_items(ids), TickResult())
    finally:
        session.close()
    for item in QueueItem.objects.filter(is_test=True, claimed_by=worker).select_related(
        "email_address"
    ):
        if item.status == Status.SENT:
            result.sent.append(item.email_address.address)
        else:
            result.failed.append((item.email_address.address, item.last_error))
    return result


def _test_recipients(
    mass_email: MassEmail, records: Iterable[Any], addresses: Iterable[str], result: SendTestResult
) -> list[tuple[int | None, int | None, EmailAddress]]:
    informational = mass_email.campaign.is_informational
    chosen: dict[int, tuple[int | None, int | None, EmailAddress]] = {}
    candidates: list[tuple[str, int | None, int | None, EmailAddress | None]] = []
    for record in records:
        content_type = ContentType.objects.get_for_model(record)
        candidates.append((str(record), content_type.pk, record.pk, primary_email_of(record)))
    for address in addresses:
        normalized = validate_address(address)
        candidates.append((normalized, None, None, EmailAddress.objects.for_address(normalized)))
    for who, content_type_id, object_id, address in candidates:
        if address is None:
            result.skipped.append((who, "no primary email address"))
        elif address.invalid:
            result.skipped.append((who, f"{address} is invalid"))
        elif address.opt_out and not informational:
            result.skipped.append((who, f"{address} opted out"))
        else:
            chosen.setdefault(address.pk, (content_type_id, object_id, address))
    return list(chosen.values())
