"""No unintended send: an empty audience, a past start and recently mailed recipients are
said before sending; Cancel asks first and is final; the status is not a free select."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from massmail.models import MassEmail, QueueItem
from massmail.presend import presend_warnings
from massmail.preview import candidates
from massmail.queue import build_queue
from massmail.sending import tick
from targets.models import primary_email_of
from tests.factories import make_campaign, make_contact, make_mass_email, make_target_list
from tests.fixtures.sending import make_queued_mass_email, set_outbound

pytestmark = pytest.mark.django_db


def codes(mass_email) -> list[str]:
    return [warning.code for warning in presend_warnings(mass_email)]


def test_an_audience_of_nobody_is_said_before_the_start():
    opted_out, excluded = make_contact(), make_contact()
    address = primary_email_of(opted_out)
    address.opt_out = True
    address.save()
    mass_email = make_mass_email(
        target_lists=[make_target_list(opted_out, excluded)],
        start_at=timezone.now() + timedelta(hours=1),
    )
    mass_email.excluding_target_lists.set([make_target_list(excluded)])
    assert "empty_queue" in codes(mass_email)
    # With one real recipient the warning goes.
    mass_email.target_lists.add(make_target_list(make_contact()))
    assert "empty_queue" not in codes(mass_email)


def test_the_page_warns_of_an_empty_queue_instead_of_only_no_queue(admin_client):
    mass_email = make_mass_email(target_lists=[make_target_list()])
    page = admin_client.get(reverse("admin:massmail_massemail_change", args=[mass_email.pk]))
    assert 'data-check="empty_queue"' in page.content.decode()


def test_a_start_in_the_past_is_said_and_goes_at_the_next_tick():
    mass_email = make_mass_email(
        target_lists=[make_target_list(make_contact())],
        start_at=timezone.now() - timedelta(days=2),
    )
    warning = next(w for w in presend_warnings(mass_email) if w.code == "start_in_past")
    assert "is in the past" in warning.message
    MassEmail.objects.filter(pk=mass_email.pk).update(start_at=timezone.now())
    mass_email.refresh_from_db()
    assert "start_in_past" not in codes(mass_email)


def test_recipients_mailed_by_the_campaign_recently_are_counted(
    smtp_settings, smtp_sink, outbound_unlimited
):
    campaign = make_campaign()
    first = make_queued_mass_email(addresses=["a@example.com", "b@example.com"], campaign=campaign)
    assert tick().sent == 2
    again = make_mass_email(campaign, target_lists=list(first.target_lists.all()))
    other_campaign = make_mass_email(target_lists=list(first.target_lists.all()))
    warning = next(w for w in presend_warnings(again) if w.code == "recently_mailed")
    assert warning.message.startswith("2 recipient(s)") and "last 7 day(s)" in warning.message
    assert "recently_mailed" not in codes(other_campaign)
    # Once its queue is built, the pending items are what counts.
    build_queue(again.pk)
    again.refresh_from_db()
    assert "2 recipient(s)" in next(w.message for w in presend_warnings(again))
    QueueItem.objects.filter(mass_email=first).update(sent_at=timezone.now() - timedelta(days=8))
    assert "recently_mailed" not in codes(again)
    set_outbound(recently_mailed_days=30)
    assert "recently_mailed" in codes(again)
    set_outbound(recently_mailed_days=0)
    assert "recently_mailed" not in codes(again)


def test_the_form_asks_before_saving_a_start_in_the_past(admin_client):
    campaign = make_campaign()
    from tests.test_admin_forms import mass_email_form

    past = timezone.localtime() - timedelta(days=1)
    form = mass_email_form(
        campaign, start_at_0=past.strftime("%Y-%m-%d"), start_at_1=past.strftime("%H:%M:%S")
    )
    response = admin_client.post("/admin/massmail/massemail/add/", form)
    assert response.status_code == 200
    assert "is in the past" in response.content.decode()
    assert not MassEmail.objects.exists()
    response = admin_client.post(
        "/admin/massmail/massemail/add/", {**form, "start_passed_ok": "on"}
    )
    assert response.status_code == 302 and MassEmail.objects.count() == 1
    # A draft is not sent whatever its start: nothing to confirm.
    response = admin_client.post(
        "/admin/massmail/massemail/add/", {**form, "name": "Draft", "status": "draft"}
    )
    assert response.status_code == 302


def test_cancel_asks_first_and_says_what_will_not_be_sent(admin_client, outbound_unlimited):
    mass_email = make_queued_mass_email(3)
    url = reverse("admin:massmail_massemail_status", args=[mass_email.pk, "cancel"])
    page = admin_client.post(url)
    assert page.status_code == 200
    assert "<strong>3</strong> messages will not be sent" in page.content.decode()
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.IN_PROCESS
    admin_client.post(url, {"confirm": "yes"})
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.CANCELED


def test_the_cancel_action_asks_first_too(admin_client, outbound_unlimited):
    one, two = make_queued_mass_email(2), make_queued_mass_email(1)
    action = {"action": "cancel_action", "_selected_action": [one.pk, two.pk]}
    changelist = reverse("admin:massmail_massemail_changelist")
    page = admin_client.post(changelist, action)
    assert "<strong>3</strong> messages will not be sent" in page.content.decode()
    assert MassEmail.objects.filter(status=MassEmail.Status.CANCELED).count() == 0
    admin_client.post(changelist, {**action, "confirm": "yes"})
    assert MassEmail.objects.filter(status=MassEmail.Status.CANCELED).count() == 2


def test_after_cancel_the_status_cannot_be_set_back_by_hand(admin_client, outbound_unlimited):
    mass_email = make_queued_mass_email(2)
    mass_email.cancel()
    url = reverse("admin:massmail_massemail_change", args=[mass_email.pk])
    html = admin_client.get(url).content.decode()
    assert 'name="status"' not in html and "Cancel sending" not in html
    start = timezone.localtime(mass_email.start_at)
    admin_client.post(
        url,
        {
            "campaign": mass_email.campaign_id,
            "name": mass_email.name,
            "status": "pending",
            "start_at_0": start.strftime("%Y-%m-%d"),
            "start_at_1": start.strftime("%H:%M:%S"),
            "email_template": mass_email.email_template_id,
            "from_address": "news@example.com",
        },
    )
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.CANCELED
    add = admin_client.get("/admin/massmail/massemail/add/").content.decode()
    assert 'value="draft"' in add and 'value="pending"' in add
    assert 'value="canceled"' not in add and 'value="complete"' not in add


def test_a_draft_is_scheduled_by_its_button(admin_client):
    mass_email = make_mass_email(status=MassEmail.Status.DRAFT)
    html = admin_client.get(
        reverse("admin:massmail_massemail_change", args=[mass_email.pk])
    ).content.decode()
    assert ">Schedule sending</button>" in html
    admin_client.post(reverse("admin:massmail_massemail_status", args=[mass_email.pk, "schedule"]))
    mass_email.refresh_from_db()
    assert mass_email.status == MassEmail.Status.PENDING


def test_the_preview_offers_only_people_who_will_get_the_message():
    keep, excluded, opted_out, invalid = (make_contact() for _ in range(4))
    for contact, flag in [(opted_out, "opt_out"), (invalid, "invalid")]:
        address = primary_email_of(contact)
        setattr(address, flag, True)
        address.save()
    mass_email = make_mass_email(
        target_lists=[make_target_list(keep, excluded, opted_out, invalid)]
    )
    mass_email.excluding_target_lists.set([make_target_list(excluded)])
    offered = [choice.label for choice in candidates(mass_email)]
    assert len(offered) == 1 and offered[0].startswith(str(primary_email_of(keep)))
