"""The message as the SMTP server received it: personalised, tracked, with the right headers."""

from __future__ import annotations

import pytest

from massmail.models import QueueItem
from massmail.sending import tick
from massmail.verp import read_verp_token
from targets.models import Contact
from tests.factories import make_campaign, make_template, make_tracking_url
from tests.fixtures.sending import make_queued_mass_email, set_outbound
from tracking import links

pytestmark = pytest.mark.django_db


@pytest.fixture
def received(smtp_settings, smtp_sink):
    """(queue item, sink record) of one newsletter sent with VERP, tracking and Reply-To."""
    set_outbound(
        max_per_hour=1000,
        use_verp=True,
        bounce_address="bounces@mail.example.com",
        site_url="https://news.example.com",
        list_id="Acme News <news.example.com>",
        open_tracking=True,
    )
    campaign = make_campaign()
    offer = make_tracking_url(campaign, url="https://shop.example.org/offer")
    template = make_template(
        subject="Hello {Person.firstName}, news for {Contact.lastName}",
        body_html=(
            "<p>Dear {Person.name} &amp; co,</p>"
            f'<p><a href="{{trackingUrl:{offer.pk}}}">See the offer</a></p>'
        ),
    )
    mass_email = make_queued_mass_email(
        addresses=["ada@example.com"],
        campaign=campaign,
        email_template=template,
        reply_to_address="help@example.com",
    )
    Contact.objects.filter(email_address_links__email_address__address="ada@example.com").update(
        first_name="Ada", last_name="Lovelace <&>"
    )
    assert tick().sent == 1
    [record] = smtp_sink.received
    return mass_email.queue_items.get(), record, offer


def test_envelope_is_verp_naming_the_queue_item(received):
    item, record, _ = received
    assert record.rcpt_tos == ("ada@example.com",)
    assert record.mail_from.startswith("bounces+bounce-")
    assert record.mail_from.endswith("@mail.example.com")
    token = record.mail_from.split("@")[0].split("+", 1)[1]
    assert read_verp_token(token) == item.uid


def test_headers(received):
    item, record, _ = received
    message = record.message()
    assert message["Subject"] == "Hello Ada, news for Lovelace <&>"
    assert message["To"].addresses[0].addr_spec == "ada@example.com"
    assert message["From"].addresses[0].addr_spec == "news@example.com"
    assert message["Reply-To"].addresses[0].addr_spec == "help@example.com"
    assert message["X-Queue-Item-Id"] == str(item.uid)
    assert message["Message-ID"] == f"<{item.message_id}>"
    assert item.status == QueueItem.Status.SENT
    assert message["Precedence"] == "bulk"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Id"] == "Acme News <news.example.com>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = links.unsubscribe_url("https://news.example.com", item.uid)
    assert message["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert message["Feedback-ID"]


def test_bodies_are_personalised_and_tracked(received):
    item, record, offer = received
    message = record.message()
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "Dear Ada Lovelace &lt;&amp;&gt; &amp; co" in html
    click = links.click_url("https://news.example.com", item.uid, offer.pk)
    assert f'href="{click}"' in html
    assert "shop.example.org" not in html
    assert links.unsubscribe_url("https://news.example.com", item.uid) in html
    assert links.unsubscribe_url("https://news.example.com", item.uid) in text
    assert links.open_pixel_url("https://news.example.com", item.uid) in html
    assert "Ada" in text
