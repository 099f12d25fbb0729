"""Mass emails through the API: created as drafts, scheduled, paused, resumed, canceled,
tested, each through the same model methods and Send Test as the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Campaign
from massmail.models import MassEmail, QueueItem
from tests.api_client import make_marketer, token_client
from tests.factories import make_campaign, make_contact, make_mass_email, make_template
from tests.fixtures.sending import make_queued_mass_email

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return token_client(make_marketer())


def test_created_as_draft_then_scheduled(api):
    campaign, template = make_campaign(), make_template()
    created = api.post(
        "/api/mass-emails/",
        {
            "campaign": campaign.pk,
            "name": "Spring",
            "start_at": "2030-01-01T09:00:00Z",
            "email_template": template.pk,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    mass_email = MassEmail.objects.get(pk=created.json()["id"])
    assert mass_email.status == MassEmail.Status.DRAFT
    start = timezone.now() + timedelta(hours=2)
    scheduled = api.post(f"/api/mass-emails/{mass_email.pk}/schedule/", {"start_at": start})
    assert scheduled.status_code == 200 and scheduled.json()["status"] == "pending"
    mass_email.refresh_from_db()
    assert (mass_email.status, mass_email.start_at) == (MassEmail.Status.PENDING, start)
    # The status moves only by the actions.
    api.patch(f"/api/mass-emails/{mass_email.pk}/", {"status": "draft"}, format="json")
    assert MassEmail.objects.get(pk=mass_email.pk).status == MassEmail.Status.PENDING


def test_the_models_rules_refuse_what_the_admin_refuses(api):
    def create(campaign, template):
        body = {"campaign": campaign.pk, "name": "No", "start_at": "2030-01-01T09:00:00Z"}
        body["email_template"] = template.pk
        return api.post("/api/mass-emails/", body, format="json")

    web = create(make_campaign(type=Campaign.Type.WEB), make_template())
    assert web.status_code == 400 and "campaign" in web.json()
    unknown = create(make_campaign(), make_template(subject="Hi {Person.nosuchfield}"))
    assert unknown.status_code == 400 and "email_template" in unknown.json()
    assert not MassEmail.objects.exists()
    campaign = make_campaign()
    end_before_start = api.post(
        "/api/campaigns/",
        {"name": "C", "start_date": "2030-02-01", "end_date": "2030-01-01"},
        format="json",
    )
    assert end_before_start.status_code == 400 and "end_date" in end_before_start.json()
    make_mass_email(campaign)
    locked = api.patch(f"/api/campaigns/{campaign.pk}/", {"type": "web"}, format="json")
    assert locked.status_code == 400 and "type" in locked.json()


def test_pause_resume_cancel_use_the_lifecycle(api):
    mass_email = make_queued_mass_email(3)
    assert mass_email.status == MassEmail.Status.IN_PROCESS
    url = f"/api/mass-emails/{mass_email.pk}"
    assert api.post(f"{url}/pause/").json()["status"] == "paused"
    assert api.post(f"{url}/pause/").status_code == 409
    assert api.post(f"{url}/resume/").json()["status"] == "in_process"
    assert api.post(f"{url}/schedule/", {"start_at": timezone.now()}).status_code == 409
    assert api.post(f"{url}/cancel/").json()["status"] == "canceled"
    statuses = set(mass_email.queue_items.values_list("status", flat=True))
    assert statuses == {QueueItem.Status.CANCELED}
    refused = api.post(f"{url}/send-test/", {"addresses": ["t@example.com"]}, format="json")
    assert refused.status_code == 409
    assert refused.json()["detail"] == "A mass email cannot send a test while Canceled."


def test_send_test_to_addresses_and_records(api, smtp_settings, smtp_sink):
    mass_email = make_mass_email(status=MassEmail.Status.DRAFT)
    contact = make_contact("ada@example.com", first_name="Ada")
    response = api.post(
        f"/api/mass-emails/{mass_email.pk}/send-test/",
        {"addresses": ["Typed@Example.com"], "records": [{"type": "Contact", "id": contact.pk}]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert sorted(response.json()["sent"]) == ["ada@example.com", "typed@example.com"]
    assert sorted(smtp_sink.recipients()) == ["ada@example.com", "typed@example.com"]
    assert set(mass_email.queue_items.values_list("is_test", flat=True)) == {True}
    bad = api.post(
        f"/api/mass-emails/{mass_email.pk}/send-test/", {"addresses": ["nope"]}, format="json"
    )
    assert bad.status_code == 400 and "addresses" in bad.json()
    missing = api.post(
        f"/api/mass-emails/{mass_email.pk}/send-test/",
        {"records": [{"type": "Contact", "id": 424242}]},
        format="json",
    )
    assert missing.status_code == 400
    assert api.post(f"/api/mass-emails/{mass_email.pk}/send-test/", {}).status_code == 400


def test_a_new_mass_email_is_draft_or_pending_only(api):
    body = {
        "campaign": make_campaign().pk,
        "name": "Sent already?",
        "start_at": "2030-01-01T09:00:00Z",
        "email_template": make_template().pk,
        "status": "complete",
    }
    refused = api.post("/api/mass-emails/", body, format="json")
    assert refused.status_code == 400 and "status" in refused.json()
    body["status"] = "pending"
    assert api.post("/api/mass-emails/", body, format="json").json()["status"] == "pending"
