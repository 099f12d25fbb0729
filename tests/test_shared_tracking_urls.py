"""A tracking URL without a campaign is shared: the templates of every campaign may use
it, its clicks count for the campaign of the message clicked, and a campaign's own URL
is still refused (at save, at send and at click) in another campaign's messages."""

from __future__ import annotations

import pytest
from django.test import Client

from campaigns.forms import EmailTemplateForm
from campaigns.models import CampaignLogRecord
from campaigns.statistics import link_clicks
from massmail.composition import prepare
from massmail.placeholders import validate_mass_email
from massmail.recipients import recipient_contexts
from tests.factories import make_campaign, make_contact, make_mass_email, make_template
from tests.fixtures.tracking import BROWSER_AGENT, make_sent_item
from tracking import links
from tracking.models import Hit, TrackingUrl

pytestmark = pytest.mark.django_db


@pytest.fixture
def shared() -> TrackingUrl:
    return TrackingUrl.objects.create(name="Shop", url="https://shop.example.com/")


def two_campaigns_with(code: str):
    template = make_template(body_html=f'<p><a href="{code}">Shop</a></p>')
    return [make_mass_email(make_campaign(), email_template=template) for _ in range(2)]


def test_templates_of_several_campaigns_use_a_shared_url(shared):
    mass_emails = two_campaigns_with(shared.code)
    for mass_email in mass_emails:
        assert validate_mass_email(mass_email) == []
        contact = make_contact()
        item = make_sent_item(mass_email, contact)
        rendered = prepare(mass_email).render(item, recipient_contexts([item])[item.id])
        assert links.click_url("", item.uid, shared.pk).split("/c/")[1] in rendered.html


def test_the_template_form_accepts_a_shared_url_and_refuses_another_campaigns(shared):
    template = two_campaigns_with(shared.code)[0].email_template
    data = {"name": template.name, "subject": template.subject, "body_text": ""}
    form = EmailTemplateForm({**data, "body_html": template.body_html}, instance=template)
    assert form.is_valid(), form.errors
    own = TrackingUrl.objects.create(campaign=make_campaign(), name="Own", url="https://x.org/")
    form = EmailTemplateForm(
        {**data, "body_html": f"<a href='{own.code}'>x</a>"}, instance=template
    )
    assert not form.is_valid()
    assert "tracking URL of another campaign" in str(form.errors)


@pytest.mark.usefixtures("hit_writer")
def test_clicks_on_a_shared_url_count_for_the_campaign_clicked(shared):
    items = [
        make_sent_item(mass_email, make_contact()) for mass_email in two_campaigns_with(shared.code)
    ]
    client = Client(HTTP_USER_AGENT=BROWSER_AGENT)
    for item in items:
        response = client.get(links.click_url("", item.uid, shared.pk))
        assert response.status_code == 302 and response["Location"] == shared.url
    response = client.get(links.click_url("", items[0].uid, shared.pk))  # again: one log row
    clicked = CampaignLogRecord.objects.filter(action="clicked", tracking_url=shared)
    assert sorted(clicked.values_list("campaign_id", flat=True)) == sorted(
        item.mass_email.campaign_id for item in items
    )
    assert Hit.objects.filter(tracking_url=shared).count() == 3
    first, second = (link_clicks(item.mass_email.campaign) for item in items)
    assert [(link.name, link.clicked_items, link.hits) for link in first] == [("Shop", 1, 2)]
    assert [(link.name, link.clicked_items, link.hits) for link in second] == [("Shop", 1, 1)]


@pytest.mark.usefixtures("hit_writer")
def test_a_url_of_another_campaign_is_still_not_found():
    item = make_sent_item(make_mass_email(), make_contact())
    own = TrackingUrl.objects.create(campaign=make_campaign(), name="Own", url="https://x.org/")
    assert Client().get(links.click_url("", item.uid, own.pk)).status_code == 404
    assert not Hit.objects.exists() and not CampaignLogRecord.objects.exists()


def test_the_admin_adds_a_shared_url_and_lists_it_as_shared(admin_client):
    response = admin_client.post(
        "/admin/tracking/trackingurl/add/",
        {"campaign": "", "name": "Shop", "url": "https://shop.example.com/", "action": "redirect"},
    )
    assert response.status_code == 302, response.content
    assert TrackingUrl.objects.get().campaign is None
    page = admin_client.get("/admin/tracking/trackingurl/").content.decode()
    assert "Shared (every campaign)" in page
