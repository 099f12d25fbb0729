"""What unsubscribing (and subscribing again) does, for a queue item or for an address.

By queue item (the link in a mass email and its List-Unsubscribe header):
- opt-out entirely: the address's `opt_out` is set;
- always: the recipient's memberships in each of the mass email's target lists
  (the campaign's lists when the mass email names none) are `opted_out`;
- one Opted Out log entry per queue item.
Subscribing again reverses both and removes that log entry.

Memberships are those of the queue item's record and of every other record
sharing its address in those lists: the queue keeps one message per address,
so leaving a contact's membership out but a lead's with the same address in
would mail the person again through the lead.

By address plus HMAC (templates outside mass emails): only `opt_out`, no log.
These always commit synchronously: an unsubscribe must never be lost.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from campaigns.models import CampaignLogRecord
from massmail.models import MassEmail, QueueItem
from targets.models import EmailAddress, RecordEmailAddress, TargetList, TargetListMember


@dataclass(frozen=True)
class Subscription:
    """A recipient's standing with respect to one message they received."""

    item: QueueItem
    target_lists: list[TargetList]

    @property
    def mass_email(self) -> MassEmail:
        return self.item.mass_email

    @property
    def entirely(self) -> bool:
        return self.mass_email.opt_out_entirely

    @property
    def address(self) -> EmailAddress:
        return self.item.email_address

    def memberships(self, target_lists: list[TargetList] | None = None):
        """The recipient's memberships in the lists, through its record or its address."""
        shares_address = Exists(
            RecordEmailAddress.objects.filter(
                email_address_id=self.address.pk,
                content_type_id=OuterRef("content_type_id"),
                object_id=OuterRef("object_id"),
            )
        )
        who = Q(shares_address)
        if self.item.content_type_id:
            who |= Q(content_type_id=self.item.content_type_id, object_id=self.item.object_id)
        lists = self.target_lists if target_lists is None else target_lists
        return TargetListMember.objects.filter(who, target_list__in=lists)

    def topics(self) -> list[Topic]:
        """The preference centre: this message's lists and the topics the person is in."""
        mine = self.memberships(TargetList.objects.filter(is_topic=True)).values("target_list")
        lists = TargetList.objects.filter(
            Q(pk__in=[t.pk for t in self.target_lists]) | Q(pk__in=mine)
        )
        states: dict[int, set[bool]] = {}
        for list_id, opted_out in self.memberships(list(lists)).values_list(
            "target_list", "opted_out"
        ):
            states.setdefault(list_id, set()).add(opted_out)
        return [
            Topic(target_list, subscribed=False in states.get(target_list.pk, set()))
            for target_list in lists.order_by("name")
        ]

    def is_unsubscribed(self) -> bool:
        if self.entirely and self.address.opt_out:
            return True
        if _opted_out_log(self.item).exists():
            return True
        states = set(self.memberships().values_list("opted_out", flat=True))
        return states == {True}


@dataclass(frozen=True)
class Topic:
    target_list: TargetList
    subscribed: bool


@dataclass(frozen=True)
class Choices:
    left: list[TargetList]
    rejoined: list[TargetList]


@transaction.atomic
def set_topics(subscription: Subscription, keep: set[int]) -> Choices:
    """Leave the shown lists not in `keep`, rejoin the kept ones the person had left.

    Only memberships that exist change: the page adds nobody to a list. Leaving
    one of the message's own lists is an opt-out from it (logged once); being in
    all of them again removes that log entry, as Subscribe again does.
    """
    topics = subscription.topics()
    left = [t.target_list for t in topics if t.subscribed and t.target_list.pk not in keep]
    rejoined = [t.target_list for t in topics if not t.subscribed and t.target_list.pk in keep]
    subscription.memberships(left).update(opted_out=True)
    subscription.memberships(rejoined).update(opted_out=False)
    own = {t.pk for t in subscription.target_lists}
    if any(t.pk in own for t in left):
        _log_opted_out(subscription.item)
    elif rejoined and not subscription.memberships().filter(opted_out=True).exists():
        _opted_out_log(subscription.item).delete()
    return Choices(left, rejoined)


def _opted_out_log(item: QueueItem):
    return CampaignLogRecord.objects.filter(
        queue_item=item, action=CampaignLogRecord.Action.OPTED_OUT
    )


def find_subscription(uid: uuid.UUID) -> Subscription | None:
    """The subscription a link names; None for unknown items and informational campaigns."""
    item = (
        QueueItem.objects.select_related("mass_email__campaign", "email_address")
        .filter(uid=uid)
        .first()
    )
    if item is None or item.mass_email.campaign.is_informational:
        return None
    mass_email = item.mass_email
    lists = list(mass_email.target_lists.all()) or list(mass_email.campaign.target_lists.all())
    return Subscription(item, lists)


@transaction.atomic
def unsubscribe(subscription: Subscription) -> bool:
    """Apply the opt-out; True when something changed (repeating it changes nothing)."""
    changed = 0
    if subscription.entirely:
        changed += EmailAddress.objects.filter(pk=subscription.address.pk, opt_out=False).update(
            opt_out=True
        )
    changed += subscription.memberships().filter(opted_out=False).update(opted_out=True)
    changed += _log_opted_out(subscription.item)
    return changed > 0


def _log_opted_out(item: QueueItem) -> bool:
    """Insert the Opted Out entry unless it exists; True when it did not exist before."""
    if _opted_out_log(item).exists():
        return False
    # A concurrent request (a double click, the mail client's one-click POST) may
    # insert it first; the unique constraint keeps one.
    CampaignLogRecord.objects.write(
        [CampaignLogRecord.of_item(item, CampaignLogRecord.Action.OPTED_OUT)]
    )
    return True


@transaction.atomic
def subscribe_again(subscription: Subscription) -> bool:
    """Reverse the opt-out and remove its log entry; True when something changed."""
    changed = 0
    if subscription.entirely:
        changed += EmailAddress.objects.filter(pk=subscription.address.pk, opt_out=True).update(
            opt_out=False
        )
    changed += subscription.memberships().filter(opted_out=True).update(opted_out=False)
    deleted, _ = _opted_out_log(subscription.item).delete()
    return changed + deleted > 0


def set_address_opt_out(address: str, opt_out: bool) -> EmailAddress:
    """The address form: only the address's opt_out, no log entry.

    An address not known yet is recorded opted out, so that it stays out when it
    is imported later.
    """
    email = EmailAddress.objects.for_address(address)
    EmailAddress.objects.filter(pk=email.pk).update(opt_out=opt_out)
    email.opt_out = opt_out
    return email
