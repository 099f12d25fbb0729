"""Queue building rules, one by one (run on SQLite and on PostgreSQL)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign
from massmail.models import MassEmail, QueueItem
from massmail.queue import build_due_queues, build_queue
from targets.models import EmailAddress, TargetListMember
from tests.factories import (
    make_account,
    make_campaign,
    make_contact,
    make_lead,
    make_mass_email,
    make_target_list,
    make_user,
)
from tests.services import require_postgres
from tests.testapp.models import Volunteer

pytestmark = pytest.mark.django_db


def queued(mass_email: MassEmail) -> list[tuple[str, str]]:
    """(model name, address) of every queue item, by address."""
    items = mass_email.queue_items.select_related("email_address", "content_type")
    return sorted((item.content_type.model, item.email_address.address) for item in items)


def build(*records, campaign_type=Campaign.Type.NEWSLETTER, excluding=(), **list_kwargs):
    campaign = make_campaign(type=campaign_type)
    lists = [make_target_list(*records)]
    mass_email = make_mass_email(campaign, target_lists=lists)
    mass_email.excluding_target_lists.set(excluding)
    build_queue(mass_email.pk)
    mass_email.refresh_from_db()
    return mass_email


def test_one_item_per_member_of_every_target_type():
    lead = make_lead("lead@example.com")
    contact = make_contact("contact@example.com")
    account = make_account("account@example.com")
    user = make_user("user@example.com")
    mass_email = build(lead, contact, user, account)
    assert queued(mass_email) == [
        ("account", "account@example.com"),
        ("contact", "contact@example.com"),
        ("lead", "lead@example.com"),
        ("user", "user@example.com"),
    ]
    assert mass_email.status == MassEmail.Status.IN_PROCESS
    assert mass_email.queue_built_at is not None


def test_custom_types_come_after_users():
    volunteer = Volunteer.objects.create(last_name="Helper")
    volunteer.set_email_addresses("shared@example.com")
    alone = Volunteer.objects.create(last_name="Alone")
    alone.set_email_addresses("alone@example.com")
    mass_email = build(volunteer, alone, make_user("shared@example.com"))
    assert queued(mass_email) == [
        ("user", "shared@example.com"),
        ("volunteer", "alone@example.com"),
    ]


def test_first_record_by_type_order_wins_a_shared_address():
    lead = make_lead("shared@example.com")
    contact = make_contact("SHARED@example.com")
    campaign = make_campaign()
    # The lead's list comes first, yet contacts come before leads.
    mass_email = make_mass_email(
        campaign, target_lists=[make_target_list(lead), make_target_list(contact)]
    )
    build_queue(mass_email.pk)
    item = mass_email.queue_items.get()
    assert (item.content_type.model, item.object_id) == ("contact", contact.pk)


def test_within_a_type_the_first_list_wins():
    first = make_contact("shared@example.com")
    second = make_contact("other@example.com")
    second.set_email_addresses("shared@example.com")
    mass_email = make_mass_email(
        make_campaign(), target_lists=[make_target_list(second), make_target_list(first)]
    )
    build_queue(mass_email.pk)
    assert mass_email.queue_items.get().object_id == second.pk


def test_only_the_primary_address_is_used():
    contact = make_contact("primary@example.com", others=["other@example.com"])
    no_address = make_contact(None)
    mass_email = build(contact, no_address)
    assert queued(mass_email) == [("contact", "primary@example.com")]


def test_members_opted_out_in_the_list_are_skipped_unless_informational():
    kept = make_contact("kept@example.com")
    out = make_contact("out@example.com")
    target_list = make_target_list(kept, out)
    TargetListMember.objects.filter(target_list=target_list, object_id=out.pk).update(
        opted_out=True
    )
    for campaign_type, expected in [
        (Campaign.Type.NEWSLETTER, ["kept@example.com"]),
        (Campaign.Type.INFORMATIONAL, ["kept@example.com", "out@example.com"]),
    ]:
        mass_email = make_mass_email(make_campaign(type=campaign_type), target_lists=[target_list])
        build_queue(mass_email.pk)
        assert [address for _, address in queued(mass_email)] == expected


def test_opted_out_addresses_are_skipped_unless_informational():
    make_contact("out@example.com")
    EmailAddress.objects.filter(address="out@example.com").update(opt_out=True)
    contact = make_contact(None)
    contact.set_email_addresses("out@example.com")
    assert queued(build(contact)) == []
    assert queued(build(contact, campaign_type=Campaign.Type.INFORMATIONAL)) == [
        ("contact", "out@example.com")
    ]


def test_invalid_addresses_are_always_skipped():
    contact = make_contact("bad@example.com")
    EmailAddress.objects.filter(address="bad@example.com").update(invalid=True)
    assert queued(build(contact)) == []
    assert queued(build(contact, campaign_type=Campaign.Type.INFORMATIONAL)) == []


def test_records_in_an_excluding_list_are_skipped():
    kept, excluded = make_contact(), make_contact()
    mass_email = build(kept, excluded, excluding=[make_target_list(excluded)])
    assert [
        object_id for object_id in mass_email.queue_items.values_list("object_id", flat=True)
    ] == [kept.pk]


def test_a_record_sharing_an_address_with_an_excluded_record_is_skipped():
    lead = make_lead("shared@example.com")
    excluded_contact = make_contact("x@example.com", others=["shared@example.com"])
    kept = make_lead("kept@example.com")
    mass_email = build(lead, kept, excluding=[make_target_list(excluded_contact)])
    assert queued(mass_email) == [("lead", "kept@example.com")]


def test_an_empty_queue_completes_at_once():
    contact = make_contact("bad@example.com")
    EmailAddress.objects.filter(address="bad@example.com").update(invalid=True)
    mass_email = build(contact)
    assert mass_email.status == MassEmail.Status.COMPLETE


def test_an_inactive_campaign_stays_pending():
    campaign = make_campaign([make_target_list(make_contact())], status=Campaign.Status.INACTIVE)
    mass_email = make_mass_email(campaign)
    assert build_due_queues() == []
    assert build_queue(mass_email.pk) is None
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.PENDING
    assert not mass_email.queue_items.exists()


def test_only_due_pending_mass_emails_are_built():
    campaign = make_campaign([make_target_list(make_contact())])
    due = make_mass_email(campaign)
    later = make_mass_email(campaign, start_at=timezone.now() + timedelta(hours=1))
    draft = make_mass_email(campaign, status=MassEmail.Status.DRAFT)
    assert build_due_queues() == [due.pk]
    assert not later.queue_items.exists() and not draft.queue_items.exists()


def test_target_lists_default_to_the_campaigns():
    contact = make_contact()
    campaign = make_campaign([make_target_list(contact)])
    mass_email = make_mass_email(campaign, target_lists=[])
    assert build_queue(mass_email.pk) == 1


def test_building_twice_queues_once_with_random_uids():
    mass_email = build(*[make_contact() for _ in range(5)])
    assert build_queue(mass_email.pk) is None
    uids = list(mass_email.queue_items.values_list("uid", flat=True))
    assert len(uids) == 5 == len(set(uids))
    assert all(isinstance(uid, uuid.UUID) for uid in uids)
    # A uid read back finds its item (the SQLite char(32) form round-trips).
    assert QueueItem.objects.get(uid=uids[0]).mass_email_id == mass_email.pk


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_builds_queue_once():
    require_postgres()  # SQLite ignores row locks
    campaign = make_campaign([make_target_list(*[make_contact() for _ in range(50)])])
    mass_email = make_mass_email(campaign)
    barrier = threading.Barrier(2)
    counts = []

    def run() -> None:
        barrier.wait()
        try:
            counts.append(build_queue(mass_email.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts, key=str) == [50, None]
    assert mass_email.queue_items.count() == 50
