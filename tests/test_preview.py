"""Preview: the message for a chosen recipient is the one the sender sends."""

import re

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.urls import reverse

from massmail.preview import candidates, key_for_address, preview
from massmail.sending import tick
from tests.factories import make_contact, make_mass_email, make_target_list, make_template
from tests.fixtures.sending import make_queued_mass_email, set_outbound

pytestmark = pytest.mark.django_db

TEMPLATE = {
    "subject": "Spring offers for {Person.firstName}",
    "body_html": "<p>Dear {Person.name},</p><p>Our spring offers.</p>",
    "body_text": "",
}
# Headers that differ on every render by design.
VOLATILE = {"Date", "Message-ID", "DKIM-Signature"}


def item_key(mass_email, address: str) -> str:
    return f"item:{mass_email.queue_items.get(email_address__address=address).pk}"


def test_preview_of_a_queued_item_is_what_the_sender_sends(
    smtp_settings, smtp_sink, outbound_unlimited
):
    set_outbound(site_url="https://news.example.com", open_tracking=True)
    mass_email = make_queued_mass_email(
        addresses=["ada@example.com"], email_template=make_template(**TEMPLATE)
    )
    shown = preview(mass_email, item_key(mass_email, "ada@example.com"))
    tick()
    [received] = smtp_sink.received
    sent = received.message()

    assert shown.queued and shown.rendered.rcpt_to == "ada@example.com"
    assert shown.rendered.subject == sent["Subject"]
    for name, value in shown.rendered.headers.items():
        if name not in VOLATILE:
            assert " ".join(str(sent[name]).split()) == " ".join(value.split()), name
    assert shown.rendered.mail_from == received.mail_from
    html_part = sent.get_body(("html",)).get_content()
    text_part = sent.get_body(("plain",)).get_content()
    assert shown.rendered.html.replace("\r\n", "\n") == html_part.replace("\r\n", "\n")
    assert shown.rendered.text.replace("\r\n", "\n") == text_part.replace("\r\n", "\n")
    assert "Dear " in text_part  # generated from the HTML


def test_preview_frame_cannot_record_an_open_or_a_trap_hit():
    set_outbound(site_url="https://news.example.com", open_tracking=True)
    mass_email = make_queued_mass_email(addresses=["bo@example.com"])
    shown = preview(mass_email, item_key(mass_email, "bo@example.com"))
    tracking_urls = re.findall(
        r'(?:src|href)="(https://news\.example\.com/[^"]+)"', shown.rendered.html
    )
    assert tracking_urls, "the message should carry its pixel and links"
    pixel_and_trap = [url for url in tracking_urls if url not in shown.html_for_frame]
    assert len(pixel_and_trap) == 2  # the open pixel and the hidden trap link
    assert shown.html_for_frame.count("about:blank") == 2
    # The visible unsubscribe link stays as it will be sent.
    assert shown.rendered.headers["List-Unsubscribe"].strip("<>") in shown.html_for_frame


def test_preview_of_a_list_member_before_the_queue_exists():
    ada = make_contact(email="ada@example.com", first_name="Ada", last_name="Lovelace")
    outsider = make_contact(email="out@example.com")
    no_address = make_contact(email=None)  # cannot receive it: not offered
    mass_email = make_mass_email(
        target_lists=[make_target_list(ada, no_address)], email_template=make_template(**TEMPLATE)
    )
    ct = ContentType.objects.get_for_model(ada).pk
    assert [c.key for c in candidates(mass_email)] == [f"record:{ct}:{ada.pk}"]
    shown = preview(mass_email, f"record:{ct}:{ada.pk}")
    assert not shown.queued
    assert shown.rendered.subject == "Spring offers for Ada"
    assert "Dear Ada Lovelace" in shown.rendered.html
    assert shown.rendered.headers["To"] == "Ada Lovelace <ada@example.com>"
    assert not mass_email.queue_items.exists()  # nothing saved
    assert key_for_address(mass_email, "ADA@example.com") == f"record:{ct}:{ada.pk}"
    assert key_for_address(mass_email, "out@example.com") is None
    with pytest.raises(ValidationError, match="not in this mass email's target lists"):
        preview(mass_email, f"record:{ct}:{outsider.pk}")
    with pytest.raises(ValidationError, match="no primary email address"):
        preview(mass_email, f"record:{ct}:{no_address.pk}")


@pytest.mark.parametrize("key", ["item:999999", "item:x", "record:1", "nobody", "record:1:2:3"])
def test_bad_recipient_keys_are_clear_errors(key):
    mass_email = make_mass_email()
    with pytest.raises(ValidationError):
        preview(mass_email, key)


def test_preview_page(admin_client):
    set_outbound(site_url="https://news.example.com")
    mass_email = make_queued_mass_email(
        addresses=["ada@example.com", "bob@example.com"], email_template=make_template(**TEMPLATE)
    )
    url = reverse("admin:massmail_massemail_preview", args=[mass_email.pk])
    page = admin_client.get(url, {"address": "bob@example.com"}).content.decode()
    assert 'sandbox="allow-same-origin"' in page and "srcdoc=" in page
    assert "allow-scripts" not in page
    assert "Spring offers for" in page and "bob@example.com" in page
    assert 'id="preview-text"' in page and "List-Unsubscribe" in page
    assert "&lt;p&gt;Dear" in page  # the HTML travels escaped inside srcdoc
    unknown = admin_client.get(url, {"address": "nobody@example.com"}).content.decode()
    assert "neither queued nor in this mass email" in unknown and 'id="preview-html"' not in unknown


def test_preview_page_shows_why_a_template_cannot_be_composed(admin_client):
    template = make_template(body_html="<p>{Contact.shoeSize}</p>")
    mass_email = make_queued_mass_email(addresses=["c@example.com"], email_template=template)
    url = reverse("admin:massmail_massemail_preview", args=[mass_email.pk])
    page = admin_client.get(url).content.decode()
    assert "cannot be composed" in page and "shoeSize" in page
