"""Administrators edit the unsubscribe page's texts and read raw hits (never edit them)."""

import pytest
from django.test import Client

from tests.factories import make_campaign, make_contact, make_mass_email, make_target_list
from tests.fixtures.tracking import BROWSER_AGENT, make_sent_item
from tracking import links
from tracking.models import Hit, TrackingUrl, UnsubscribePageText

pytestmark = pytest.mark.django_db


def test_texts_saved_in_the_admin_appear_on_the_page(admin_client):
    response = admin_client.post(
        "/admin/tracking/unsubscribepagetext/add/",
        {"language": "", "heading": "Sorry to see you go", "unsubscribed_text": "Done."},
    )
    assert response.status_code == 302, response.content
    assert UnsubscribePageText.objects.get().heading == "Sorry to see you go"
    contact = make_contact()
    item = make_sent_item(make_mass_email(make_campaign([make_target_list(contact)])), contact)
    page = Client().get(links.unsubscribe_url("", item.uid)).content.decode()
    assert "<h1>Sorry to see you go</h1>" in page
    # A second row for the same language is refused.
    again = admin_client.post("/admin/tracking/unsubscribepagetext/add/", {"language": ""})
    assert again.status_code == 200 and UnsubscribePageText.objects.count() == 1


def test_hits_are_listed_read_only(admin_client):
    contact = make_contact()
    item = make_sent_item(make_mass_email(make_campaign([make_target_list(contact)])), contact)
    Client().get(links.unsubscribe_url("", item.uid), HTTP_USER_AGENT=BROWSER_AGENT)
    hit = Hit.objects.get()
    listing = admin_client.get("/admin/tracking/hit/")
    assert listing.status_code == 200 and "Unsubscribe page" in listing.content.decode()
    assert admin_client.get(f"/admin/tracking/hit/{hit.pk}/change/").status_code == 200
    assert admin_client.get("/admin/tracking/hit/add/").status_code == 403
    admin_client.post(f"/admin/tracking/hit/{hit.pk}/change/", {"is_machine": "on"})
    hit.refresh_from_db()
    assert not hit.is_machine


def test_a_tracking_url_typed_without_a_scheme_is_https(admin_client):
    campaign = make_campaign([make_target_list(make_contact())])
    response = admin_client.post(
        "/admin/tracking/trackingurl/add/",
        {"campaign": campaign.pk, "name": "Offer", "url": "example.org/o", "action": "redirect"},
    )
    assert response.status_code == 302, response.content
    assert TrackingUrl.objects.get().url == "https://example.org/o"
