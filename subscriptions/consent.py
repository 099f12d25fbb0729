"""Consent records, a person's data on request (GDPR access), and erasure.

`erase(address)` removes every trace of the person: their contacts and leads,
memberships, sign-ups, consent records, queue items with their hits and log
entries, bounce events and held reports, webhook events naming them (pending or
delivered) and the address itself, and keeps only a Suppression
(a SHA-256 of the address) so that no import or admin action brings the address
back mailable without the person's own confirmed sign-up.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from bounces.models import BounceEvent, HeldReport
from campaigns.models import CampaignLogRecord
from massmail.models import OutboundSettings, QueueItem
from subscriptions.models import ConsentRecord, SignUp, SubscriptionForm
from targets.models import (
    Contact,
    EmailAddress,
    Lead,
    RecordEmailAddress,
    Suppression,
    TargetList,
    TargetListMember,
    address_hash,
    normalize_address,
)
from tracking.models import Hit
from tracking.rules import client_ip, truncate_ip
from webhooks.models import WebhookEvent


@dataclass(frozen=True)
class Visit:
    """Who made a request, as far as consent records keep it."""

    ip: str | None
    user_agent: str
    at: datetime

    @classmethod
    def from_request(cls, request: HttpRequest) -> Visit:
        agent = request.META.get("HTTP_USER_AGENT", "")[:500]
        return cls(client_ip(request), agent, timezone.now())

    @property
    def short_ip(self) -> str | None:
        """The IP as the privacy setting allows keeping it (the hits' setting)."""
        return truncate_ip(self.ip) if OutboundSettings.load().truncate_ip else self.ip


def record_consent(
    action: str,
    address: str,
    visit: Visit,
    *,
    form: SubscriptionForm | None = None,
    text: str = "",
    lists: Iterable[TargetList] = (),
) -> ConsentRecord:
    return ConsentRecord.objects.create(
        address=normalize_address(address),
        action=action,
        at=visit.at,
        ip=visit.short_ip,
        user_agent=visit.user_agent,
        form=form,
        target_lists=", ".join(t.name for t in lists)[:1000],
        text=text,
    )


# ---------------------------------------------------------------- access requests

CONSENT_COLUMNS = ["at", "action", "ip", "user_agent", "form", "target_lists", "text"]


def _records(email: EmailAddress | None, *, primary_only: bool = False) -> list[Contact | Lead]:
    """The contacts and leads using the address (as their primary one only, if asked)."""
    if email is None:
        return []
    found = []
    for model in (Contact, Lead):
        links = RecordEmailAddress.objects.filter(
            email_address=email, content_type=ContentType.objects.get_for_model(model)
        )
        if primary_only:
            links = links.filter(primary=True)
        found += list(model.objects.filter(pk__in=links.values("object_id")))
    return found


def _consent_rows(address: str) -> list[dict]:
    return [
        {
            "at": record.at.isoformat(),
            "action": record.action,
            "ip": record.ip or "",
            "user_agent": record.user_agent,
            "form": record.form.name if record.form else "",
            "target_lists": record.target_lists,
            "text": record.text,
        }
        for record in ConsentRecord.objects.filter(address=address).select_related("form")
    ]


def person_data(address: str) -> dict:
    """Everything kept about the address's person, for a GDPR access request."""
    address = normalize_address(address)
    email = EmailAddress.objects.filter(address=address).first()
    records = _records(email)
    memberships = TargetListMember.objects.filter(_members_of(records)).select_related(
        "target_list"
    )
    return {
        "address": address,
        "opted_out": email.opt_out if email else None,
        "invalid": email.invalid if email else None,
        "records": [
            {
                "type": type(r).__name__,
                "first_name": r.first_name,
                "last_name": r.last_name,
                "title": r.title,
                "phone": r.phone,
                "city": r.city,
                "country": r.country,
                "created_at": r.created_at.isoformat(),
            }
            for r in records
        ],
        "lists": [
            {"list": m.target_list.name, "opted_out": m.opted_out, "added": m.added_at.isoformat()}
            for m in memberships
        ],
        "sign_ups": [
            {
                "form": s.form.name,
                "status": s.status,
                "created_at": s.created_at.isoformat(),
                "confirmed_at": s.confirmed_at.isoformat() if s.confirmed_at else None,
                "ip": s.ip,
                "user_agent": s.user_agent,
            }
            for s in SignUp.objects.filter(address=address).select_related("form")
        ],
        "consent": _consent_rows(address),
        "messages_sent": QueueItem.objects.filter(
            email_address=email, status=QueueItem.Status.SENT, is_test=False
        ).count()
        if email
        else 0,
    }


def consent_csv(address: str) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CONSENT_COLUMNS)
    writer.writeheader()
    writer.writerows(_consent_rows(normalize_address(address)))
    return out.getvalue()


def _members_of(records: list[Contact | Lead]) -> Q:
    """Rows naming one of the records by content type and id (memberships, log entries)."""
    who = Q(pk__in=[])
    for record in records:
        who |= Q(content_type=ContentType.objects.get_for_model(record), object_id=record.pk)
    return who


# ---------------------------------------------------------------- erasure


@transaction.atomic
def erase(address: str) -> Suppression:
    """Remove the person's data everywhere; only the address's hash stays, as a suppression.

    Contacts and leads whose primary address it is are deleted with their
    memberships and log; other records using it as a further address keep the rest.
    """
    address = normalize_address(address)
    email = EmailAddress.objects.filter(address=address).first()
    # A record with another primary address is someone else's: it only loses this one.
    records = _records(email, primary_only=True)
    _forget_webhook_events(address, email, records)
    if records:
        TargetListMember.objects.filter(_members_of(records)).delete()
        CampaignLogRecord.objects.filter(_members_of(records)).delete()
        for record in records:
            _forget_admin_history(record)
            RecordEmailAddress.objects.filter(
                content_type=ContentType.objects.get_for_model(record), object_id=record.pk
            ).delete()
            record.delete()
    BounceEvent.objects.filter(address__iexact=address).delete()
    HeldReport.objects.filter(address__iexact=address).delete()
    if email is not None:
        BounceEvent.objects.filter(email_address=email).delete()
        items = QueueItem.objects.filter(email_address=email)
        Hit.objects.filter(queue_item__in=items).delete()
        CampaignLogRecord.objects.filter(queue_item__in=items).delete()
        items.delete()
        RecordEmailAddress.objects.filter(email_address=email).delete()
        _forget_admin_history(email)
        email.delete()
    CampaignLogRecord.objects.filter(email_address=address).delete()
    SignUp.objects.filter(address=address).delete()
    ConsentRecord.objects.filter(address=address).delete()
    suppression, _ = Suppression.objects.get_or_create(address_hash=address_hash(address))
    return suppression


def _forget_webhook_events(
    address: str, email: EmailAddress | None, records: list[Contact | Lead]
) -> None:
    # Before the queue items go: the events' references to them are cleared on delete.
    about = Q(email_address__iexact=address) | _members_of(records)
    if email is not None:
        about |= Q(queue_item__email_address=email)
    WebhookEvent.objects.filter(about).delete()


def _forget_admin_history(obj) -> None:
    # The admin's history names the object as it was shown ("ann@example.com").
    LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk)
    ).delete()


def record_unsubscribe(
    address: str, visit: Visit, lists: Iterable[TargetList], *, entirely: bool, again: bool = False
) -> ConsentRecord:
    """The consent record of an opt-out (or of its undoing) on the unsubscribe page."""
    if entirely:
        what = "all marketing email"
    else:
        what = "the lists named"
    action = ConsentRecord.Action.RE_SUBSCRIPTION if again else ConsentRecord.Action.OPT_OUT
    text = f"{'Subscribed again to' if again else 'Unsubscribed from'} {what}."
    return record_consent(action, address, visit, text=text, lists=lists)
