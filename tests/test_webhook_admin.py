"""Administrators register webhook endpoints in the admin and see each one's last status;
marketers see none of it (the URLs and secrets are the administrator's)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.api_client import make_marketer
from webhooks.models import WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db


def test_an_administrator_registers_an_endpoint_with_event_types(admin_client):
    response = admin_client.post(
        "/admin/webhooks/webhookendpoint/add/",
        {
            "name": "CRM",
            "url": "crm.example.com/hooks/",
            "event_types": ["sent", "clicked", "mass_email_finished"],
            "secret": "s3cret-shared-with-the-receiver",
            "active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.url == "https://crm.example.com/hooks/"
    assert endpoint.event_types == ["sent", "clicked", "mass_email_finished"]
    form = admin_client.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/")
    checked = form.context["adminform"].form["event_types"].value()
    assert checked == ["sent", "clicked", "mass_email_finished"]
    assert "Mass email finished" in form.content.decode()


def test_the_list_shows_last_status_and_pending_events(admin_client):
    endpoint = WebhookEndpoint.objects.create(
        name="CRM", url="https://crm.example.com/", event_types=["sent"]
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(last_status="HTTP 503", failures=2)

    for _ in range(3):
        WebhookEvent.objects.create(
            endpoint=endpoint,
            event_type="sent",
            occurred_at=timezone.now(),
            created_at=timezone.now(),
        )
    page = admin_client.get("/admin/webhooks/webhookendpoint/").content.decode()
    assert "HTTP 503" in page and '<td class="field-pending">3</td>' in page
    events = admin_client.get("/admin/webhooks/webhookevent/")
    assert events.status_code == 200


def test_marketers_cannot_see_or_register_webhooks(client):
    client.force_login(make_marketer())
    assert client.get("/admin/webhooks/webhookendpoint/").status_code == 403
    add = client.post("/admin/webhooks/webhookendpoint/add/", {"name": "x", "url": "x"})
    assert add.status_code == 403
    assert not WebhookEndpoint.objects.exists()
