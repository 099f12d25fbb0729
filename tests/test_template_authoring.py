"""The template editor: the codes its picker offers, and the preview view the page asks
while the marketer types (the draft in the form, rendered for a sample recipient)."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from campaigns.models import EmailTemplate
from massmail.placeholders import picker_codes, validate_template
from massmail.preview import sample_recipients
from tests.factories import make_account, make_campaign, make_contact, make_tracking_url
from tracking.models import TrackingUrl

pytestmark = pytest.mark.django_db

PREVIEW = "admin:campaigns_emailtemplate_preview"


def test_every_code_the_picker_offers_renders():
    groups = dict(picker_codes())
    assert {"General", "Person", "Account", "Contact", "Lead", "User"} <= set(groups)
    assert (
        "{Person.firstName}" in groups["Person"] and "{Contact.account.name}" in groups["Contact"]
    )
    codes = [code for group in groups.values() for code in group]
    template = EmailTemplate(subject="News", body_html=" ".join(codes))
    assert validate_template(template) == []


def test_samples_are_records_with_an_address_of_each_type():
    make_contact("ada@example.org", first_name="Ada")
    make_account("acme@example.org", name="Acme")
    make_contact(None)  # no address: no use for a preview
    labels = [sample.label for sample in sample_recipients()]
    assert len(labels) == 2
    assert any("ada@example.org" in label and "(Contact)" in label for label in labels)
    assert any("acme@example.org" in label and "(Account)" in label for label in labels)


def preview(client, recipient, **fields):
    data = {"subject": "", "body_html": "", "body_text": "", "recipient": recipient, **fields}
    return client.post(reverse(PREVIEW), data)


def key_of(record) -> str:
    return f"record:{ContentType.objects.get_for_model(record).pk}:{record.pk}"


def test_the_preview_renders_the_draft_not_the_saved_template(admin_client):
    ada = make_contact("ada@example.org", first_name="Ada")
    shared = TrackingUrl.objects.create(name="Shop", url="https://shop.example.com/")
    own = make_tracking_url(make_campaign())
    body = f'<p>Hello {{Person.firstName|there}}!</p><a href="{shared.code}">a</a>{own.code}'
    response = preview(admin_client, key_of(ada), subject="{Person.firstName}, hi", body_html=body)
    assert response.status_code == 200
    result = response.json()
    assert result["subject"] == "Ada, hi" and result["errors"] == []
    assert "<p>Hello Ada!</p>" in result["html"] and "/c/" in result["html"]
    response = preview(admin_client, key_of(make_account(name="Acme")), body_html=body)
    assert "<p>Hello there!</p>" in response.json()["html"]


def test_the_preview_defuses_the_open_pixel(admin_client, settings):
    ada = make_contact("ada@example.org")
    result = preview(admin_client, key_of(ada), subject="s", body_html="<p>x</p>").json()
    assert "/o/" not in result["html"] and "about:blank" in result["html"]


def test_the_preview_says_what_is_wrong(admin_client):
    ada = make_contact("ada@example.org")
    result = preview(admin_client, key_of(ada), subject="s", body_html="{Contact.shoeSize}")
    assert result.status_code == 200
    assert result.json()["html"] == ""
    assert any("Contact has no shoe_size" in error for error in result.json()["errors"])
    assert preview(admin_client, "record:999999:1", body_html="x").status_code == 400


def test_the_preview_is_post_only_and_for_template_editors(admin_client, client):
    assert admin_client.get(reverse(PREVIEW)).status_code == 405
    response = client.post(reverse(PREVIEW), {"recipient": "x"})
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_editor_page_offers_the_picker_and_the_preview(admin_client):
    make_contact("ada@example.org", first_name="Ada")
    shared = TrackingUrl.objects.create(name="Shop", url="https://shop.example.com/")
    page = admin_client.get(reverse("admin:campaigns_emailtemplate_add")).content.decode()
    assert 'data-code="{Person.firstName}"' in page
    assert f'<option value="{shared.code}">Shop (shared) {shared.code}</option>' in page
    assert reverse(PREVIEW) in page and 'id="mm-preview-frame"' in page
