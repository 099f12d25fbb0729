"""Small factory functions: make_contact(**overrides) and friends."""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from campaigns.models import Campaign, EmailTemplate
from massmail.models import MassEmail
from targets.models import Account, Contact, Lead, TargetList
from tracking.models import TrackingUrl

_seq = itertools.count(1)


def _n() -> int:
    return next(_seq)


def make_account(email: str | None = "", **overrides) -> Account:
    n = _n()
    account = Account.objects.create(**{"name": f"Account {n}", **overrides})
    account.set_email_addresses(email if email != "" else f"account{n}@example.com")
    return account


def make_contact(email: str | None = "", others=(), **overrides) -> Contact:
    n = _n()
    contact = Contact.objects.create(
        **{"first_name": f"First{n}", "last_name": f"Last{n}", **overrides}
    )
    contact.set_email_addresses(email if email != "" else f"contact{n}@example.com", others)
    return contact


def make_lead(email: str | None = "", **overrides) -> Lead:
    n = _n()
    lead = Lead.objects.create(**{"first_name": f"Lead{n}", "last_name": f"Person{n}", **overrides})
    lead.set_email_addresses(email if email != "" else f"lead{n}@example.com")
    return lead


def make_user(email: str | None = "", **overrides):
    n = _n()
    return get_user_model().objects.create_user(
        **{
            "username": f"user{n}",
            "email": email if email != "" else f"user{n}@example.com",
            "first_name": f"User{n}",
            "last_name": f"Staff{n}",
            **overrides,
        }
    )


def make_target_list(*records, **overrides) -> TargetList:
    target_list = TargetList.objects.create(**{"name": f"List {_n()}", **overrides})
    for record in records:
        target_list.add(record)
    return target_list


def make_campaign(target_lists=(), excluding=(), **overrides) -> Campaign:
    campaign = Campaign.objects.create(
        **{"name": f"Campaign {_n()}", "type": Campaign.Type.NEWSLETTER, **overrides}
    )
    add_in_order(campaign.target_lists, target_lists)
    campaign.excluding_target_lists.set(excluding)
    return campaign


def add_in_order(relation, target_lists) -> None:
    """One add() per list: the queue build's "first list wins" follows the order lists were
    added (their through rows' ids), and set() inserts them in the order of a Python set."""
    relation.clear()
    for target_list in target_lists:
        relation.add(target_list)


def make_template(**overrides) -> EmailTemplate:
    return EmailTemplate.objects.create(
        **{
            "name": f"Template {_n()}",
            "subject": "Hello {Person.firstName}",
            "body_html": "<p>Dear {Person.name},</p><p>News.</p>",
            **overrides,
        }
    )


def make_mass_email(campaign: Campaign | None = None, target_lists=None, **overrides) -> MassEmail:
    campaign = campaign or make_campaign()
    mass_email = MassEmail.objects.create(
        **{
            "campaign": campaign,
            "name": f"Mass email {_n()}",
            "start_at": timezone.now() - timedelta(minutes=1),
            "email_template": overrides.pop("email_template", None) or make_template(),
            "from_address": "news@example.com",
            "from_name": "Example News",
            **overrides,
        }
    )
    if target_lists is None:  # the campaign's, in the order they were added
        through = Campaign.target_lists.through.objects.filter(campaign=campaign)
        target_lists = [row.targetlist for row in through.order_by("id")]
    add_in_order(mass_email.target_lists, target_lists)
    return mass_email


def make_tracking_url(campaign: Campaign, **overrides) -> TrackingUrl:
    return TrackingUrl.objects.create(
        **{
            "campaign": campaign,
            "name": f"Link {_n()}",
            "url": "https://example.org/offer",
            **overrides,
        }
    )


def make_queue_item(record=None, mass_email: MassEmail | None = None, **overrides):
    """A sent queue item addressed to `record`'s primary address (a new contact by default)."""
    from django.contrib.contenttypes.models import ContentType

    from massmail.models import QueueItem

    record = record or make_contact()
    return QueueItem.objects.create(
        **{
            "mass_email": mass_email or make_mass_email(),
            "content_type": ContentType.objects.get_for_model(record),
            "object_id": record.pk,
            "email_address": record.primary_email,
            "status": QueueItem.Status.SENT,
            "sent_at": timezone.now(),
            **overrides,
        }
    )


def make_group_account(mailbox, **overrides):
    """A group email account reading a test mailbox (tests/fixtures/dovecot.py) in plain text."""
    from bounces.models import GroupEmailAccount

    return GroupEmailAccount.objects.create(
        **{
            "name": "Bounces",
            "email_address": "bounces@example.test",
            "imap_host": mailbox.host,
            "imap_port": mailbox.port,
            "imap_security": "none",
            "imap_username": mailbox.username,
            "imap_password": mailbox.password,
            **overrides,
        }
    )
