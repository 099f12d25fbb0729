"""Headers and envelope of composed messages: senders, list headers, ids, VERP."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

import pytest

from bounces.models import GroupEmailAccount
from campaigns.models import Campaign
from massmail import verp
from massmail.composition import prepare
from massmail.models import OutboundSettings
from massmail.recipients import recipient_contexts
from tests.factories import make_campaign, make_contact, make_mass_email
from tests.fixtures.composition import make_item, parse

pytestmark = pytest.mark.django_db


def render(mass_email, record=None, address=None):
    item = make_item(mass_email, record or make_contact(), address)
    rendered = prepare(mass_email).render(item, recipient_contexts([item])[item.id])
    return item, rendered, parse(rendered.raw)


def test_every_header_of_a_newsletter(settings):
    settings.SITE_URL = "https://news.example.com"
    campaign = make_campaign(name="Spring News", type=Campaign.Type.NEWSLETTER)
    mass_email = make_mass_email(campaign, reply_to_address="help@example.com")
    contact = make_contact(first_name="Ada", last_name="Lovelace", email="ada@example.org")
    item, rendered, message = render(mass_email, contact)

    assert message["From"] == "Example News <news@example.com>"
    assert message["Reply-To"] == "help@example.com"
    assert message["To"] == "Ada Lovelace <ada@example.org>"
    assert message["MIME-Version"] == "1.0"
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert re.fullmatch(rf"<q-{item.uid}\.[0-9a-f]+@example\.com>", message["Message-ID"])
    assert rendered.message_id == message["Message-ID"].strip("<>")
    assert re.fullmatch(r"<https://news\.example\.com/u/[^>\s]+/>", message["List-Unsubscribe"])
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == f"Spring News <campaign-{campaign.pk}.example.com>"
    assert message["Precedence"] == "bulk"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "AutoReply"
    assert message["X-Queue-Item-Id"] == str(item.uid)
    assert message["Feedback-ID"] == f"{campaign.pk}:{mass_email.pk}:massmail"
    assert rendered.rcpt_to == "ada@example.org"
    assert not message.defects
    assert all(not part.defects for part in message.walk())
    for name in ("From", "To", "Subject", "List-Id", "Feedback-ID", "X-Queue-Item-Id"):
        assert rendered.headers[name] == str(message[name]), name


def test_plain_email_campaign_has_no_auto_submitted():
    campaign = make_campaign(type=Campaign.Type.EMAIL)
    _, _, message = render(make_mass_email(campaign))
    assert "Auto-Submitted" not in message
    assert "X-Auto-Response-Suppress" not in message
    assert message["Precedence"] == "bulk"


def test_informational_has_no_list_unsubscribe_but_auto_submitted():
    campaign = make_campaign(type=Campaign.Type.INFORMATIONAL)
    _, _, message = render(make_mass_email(campaign))
    assert "List-Unsubscribe" not in message
    assert "List-Unsubscribe-Post" not in message
    assert message["Auto-Submitted"] == "auto-generated"


@pytest.mark.parametrize("site_url", ["http://news.example.com", "http://127.0.0.1:8000"])
def test_no_one_click_header_over_http(settings, site_url):
    """RFC 8058 3.1: the List-Unsubscribe URI of a one-click unsubscribe must be https."""
    settings.SITE_URL = site_url
    _, rendered, message = render(make_mass_email())
    assert message["List-Unsubscribe"].startswith(f"<{site_url}/u/")
    assert "List-Unsubscribe-Post" not in message
    assert "List-Unsubscribe-Post" not in rendered.headers


def test_list_unsubscribe_dropped_when_opt_out_link_disabled():
    outbound = OutboundSettings.load()
    outbound.disable_mandatory_opt_out_link = True
    outbound.save()
    _, _, message = render(make_mass_email())
    assert "List-Unsubscribe" not in message
    assert "List-Unsubscribe-Post" not in message


def test_list_id_from_settings():
    outbound = OutboundSettings.load()
    outbound.list_id = "Acme Newsletter <news.example.com>"
    outbound.save()
    _, _, message = render(make_mass_email())
    assert message["List-Id"] == "Acme Newsletter <news.example.com>"


def test_senders_fall_back_to_the_group_account_then_settings_then_default(settings):
    group = GroupEmailAccount.objects.create(
        name="Bounces",
        email_address="team@group.example",
        from_name="Group Team",
        reply_to_address="replies@group.example",
        reply_to_name="Replies",
    )
    mass_email = make_mass_email(from_address="", from_name="", group_email_account=group)
    _, _, message = render(mass_email)
    assert message["From"] == "Group Team <team@group.example>"
    assert message["Reply-To"] == "Replies <replies@group.example>"
    assert message["Message-ID"].endswith("@group.example>")

    outbound = OutboundSettings.load()
    outbound.from_address = "hello@settings.example"
    outbound.from_name = "Settings Sender"
    outbound.save()
    _, _, message = render(make_mass_email(from_address="", from_name=""))
    assert message["From"] == "Settings Sender <hello@settings.example>"
    assert "Reply-To" not in message

    outbound.from_address = outbound.from_name = ""
    outbound.save()
    settings.DEFAULT_FROM_EMAIL = "Fallback <fallback@default.example>"
    _, _, message = render(make_mass_email(from_address="", from_name=""))
    assert message["From"] == "Fallback <fallback@default.example>"
    assert message["Message-ID"].endswith("@default.example>")


def test_envelope_sender_without_verp():
    _, rendered, _ = render(make_mass_email())
    assert rendered.mail_from == "news@example.com"

    outbound = OutboundSettings.load()
    outbound.bounce_address = "bounces@example.com"
    outbound.save()
    _, rendered, message = render(make_mass_email())
    assert rendered.mail_from == "bounces@example.com"
    assert message["From"] == "Example News <news@example.com>"


def test_verp_envelope_sender_names_the_queue_item():
    outbound = OutboundSettings.load()
    outbound.use_verp = True
    outbound.bounce_address = "bounces@example.com"
    outbound.save()
    item, rendered, _ = render(make_mass_email())

    local, _, domain = rendered.mail_from.partition("@")
    assert domain == "example.com"
    assert local.startswith("bounces+bounce-")
    assert verp.read_verp_token(local.partition("+")[2]) == item.uid


def test_verp_uses_the_group_mailbox_when_no_bounce_address_is_set():
    outbound = OutboundSettings.load()
    outbound.use_verp = True
    outbound.save()
    group = GroupEmailAccount.objects.create(name="B", email_address="mailbox@example.com")
    item, rendered, _ = render(make_mass_email(group_email_account=group))
    assert rendered.mail_from.startswith("mailbox+bounce-")
    assert rendered.mail_from.endswith("@example.com")


def test_non_ascii_names_and_subject_are_encoded_and_round_trip():
    campaign = make_campaign(name="Frühling")
    mass_email = make_mass_email(campaign, from_name="Café Größe", reply_to_name="Équipe")
    mass_email.reply_to_address = "equipe@example.com"
    mass_email.save()
    contact = make_contact(first_name="José", last_name="Müller", email="jose@example.org")
    _, rendered, message = render(mass_email, contact)

    assert rendered.raw.isascii()
    assert b"=?utf-8?b?" in rendered.raw
    assert message["From"] == "Café Größe <news@example.com>"
    assert message["To"] == "José Müller <jose@example.org>"
    assert message["Reply-To"] == "Équipe <equipe@example.com>"
    assert message["List-Id"] == f"Frühling <campaign-{campaign.pk}.example.com>"


def test_names_with_specials_are_quoted():
    contact = make_contact(first_name="Smith,", last_name='J. "Doc"', email="doc@example.org")
    _, _, message = render(make_mass_email(), contact)
    assert message["To"].addresses[0].display_name == 'Smith, J. "Doc"'
    assert message["To"].addresses[0].addr_spec == "doc@example.org"


def test_internationalised_domain_goes_out_in_idna():
    _, rendered, message = render(make_mass_email(), address="anna@bücher.example")
    assert rendered.rcpt_to == "anna@xn--bcher-kva.example"
    assert message["To"].addresses[0].domain == "xn--bcher-kva.example"


def test_message_id_is_stable_within_a_preparation_and_fresh_across():
    mass_email = make_mass_email()
    item = make_item(mass_email, make_contact())
    other = make_item(mass_email, make_contact())
    contexts = recipient_contexts([item, other])
    prepared = prepare(mass_email)
    first = prepared.render(item, contexts[item.id]).message_id
    assert prepared.render(item, contexts[item.id]).message_id == first
    django_message = prepared.render_email_message(item, contexts[item.id])
    assert django_message.extra_headers["Message-ID"] == f"<{first}>"
    assert prepared.render(other, contexts[other.id]).message_id != first
    assert prepare(mass_email).render(item, contexts[item.id]).message_id != first


def test_no_sender_anywhere_is_a_clear_error(settings):
    from massmail.placeholders import CompositionError

    settings.DEFAULT_FROM_EMAIL = ""
    with pytest.raises(CompositionError, match="No sender address"):
        prepare(make_mass_email(from_address="", from_name=""))
