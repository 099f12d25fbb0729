"""Composing personalised messages: bodies, placeholders, links, the text part, encoding."""

from __future__ import annotations

import html
import re
import uuid

import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType

from campaigns.models import Campaign
from massmail.composition import prepare
from massmail.models import OutboundSettings
from massmail.placeholders import CompositionError
from massmail.recipients import recipient_contexts
from targets.models import Account
from tests.factories import (
    make_account,
    make_campaign,
    make_contact,
    make_lead,
    make_mass_email,
    make_template,
    make_tracking_url,
    make_user,
)
from tests.fixtures.composition import make_item, parse
from tests.testapp.models import Partner, Volunteer
from tracking import links

pytestmark = pytest.mark.django_db

SITE = "https://crm.example.com"


@pytest.fixture(autouse=True)
def outbound() -> OutboundSettings:
    outbound = OutboundSettings.load()
    outbound.site_url = SITE
    outbound.save()
    return outbound


def render(mass_email, record=None, address=None, outbound=None):
    item = make_item(mass_email, record, address)
    prepared = prepare(mass_email, outbound=outbound)
    rendered = prepared.render(item, recipient_contexts([item])[item.id])
    return item, rendered, parse(rendered.raw)


def bodies(message) -> tuple[str, str]:
    text = message.get_body(("plain",)).get_content()
    body_html = message.get_body(("html",)).get_content()
    return text.replace("\r\n", "\n"), body_html.replace("\r\n", "\n")


def mass_email_with(campaign=None, **template):
    return make_mass_email(campaign=campaign, email_template=make_template(**template))


def test_personalised_subject_and_bodies():
    contact = make_contact(first_name="Ada", last_name="Lovelace")
    mass_email = mass_email_with(
        subject="News for {Person.firstName}",
        body_html="<p>Dear {Person.name}, you are {Contact.lastName}.</p>",
    )
    item, rendered, message = render(mass_email, contact)
    text, body_html = bodies(message)

    assert message["Subject"] == "News for Ada" == rendered.subject
    assert "<p>Dear Ada Lovelace, you are Lovelace.</p>" in body_html
    assert "Dear Ada Lovelace, you are Lovelace." in text
    assert rendered.html.replace("\r\n", "\n") == body_html
    assert rendered.text.replace("\r\n", "\n") == text
    assert message.get_content_type() == "multipart/alternative"


def test_values_are_escaped_in_html_and_raw_in_text_and_subject():
    contact = make_contact(first_name="<b>O'Neil & Co</b>", last_name="X")
    mass_email = mass_email_with(
        subject="Hi {Person.firstName}", body_html='<p title="{Person.firstName}">{Person.name}</p>'
    )
    _, rendered, message = render(mass_email, contact)
    text, body_html = bodies(message)

    escaped = html.escape("<b>O'Neil & Co</b>")
    assert f'title="{escaped}"' in body_html
    assert f"{escaped} X</p>" in body_html
    assert "<b>O'Neil" not in body_html
    assert "<b>O'Neil & Co</b> X" in text
    assert message["Subject"] == "Hi <b>O'Neil & Co</b>"


def test_mandatory_opt_out_link_appended_to_html_and_text():
    _, rendered, message = render(mass_email_with(body_html="<p>Hello</p>"), make_contact())
    text, body_html = bodies(message)
    url = re.search(r'<br/?><br/?><a href="([^"]+)">Unsubscribe</a>', body_html).group(1)

    assert links.read_unsubscribe_token(url.removeprefix(f"{SITE}/u/").strip("/"))
    assert text.rstrip().endswith(f"\n\n{url}")
    assert rendered.headers["List-Unsubscribe"] == f"<{url}>"


def test_no_second_opt_out_link_when_the_template_has_one():
    mass_email = mass_email_with(body_html="<p>Hello</p><p>{optOutLink}</p>")
    _, _, message = render(mass_email, make_contact())
    text, body_html = bodies(message)

    assert body_html.count(">Unsubscribe</a>") == 1
    assert '<p><a href="https://crm.example.com/u/' in body_html
    assert text.count(f"{SITE}/u/") == 1


def test_opt_out_url_placeholder_counts_as_the_link():
    mass_email = mass_email_with(body_html='<a href="{optOutUrl}">Leave</a>')
    _, _, message = render(mass_email, make_contact())
    text, body_html = bodies(message)

    assert ">Unsubscribe</a>" not in body_html
    assert body_html.count(f"{SITE}/u/") == 1
    assert text.count(f"{SITE}/u/") == 1


def test_opt_out_link_left_out_when_disabled(outbound):
    outbound.disable_mandatory_opt_out_link = True
    outbound.save()
    _, rendered, message = render(mass_email_with(), make_contact(), outbound=outbound)
    text, body_html = bodies(message)

    assert "/u/" not in body_html and "/u/" not in text
    assert "List-Unsubscribe" not in message


def test_informational_has_no_opt_out_link_and_no_pixel(outbound):
    outbound.open_tracking = True
    outbound.save()
    campaign = make_campaign(type=Campaign.Type.INFORMATIONAL)
    _, _, message = render(mass_email_with(campaign), make_contact(), outbound=outbound)
    text, body_html = bodies(message)

    assert "/u/" not in body_html and "/u/" not in text
    assert "/o/" not in body_html


def test_open_pixel_only_with_open_tracking(outbound):
    contact = make_contact()
    _, _, message = render(mass_email_with(), contact, outbound=outbound)
    assert "/o/" not in bodies(message)[1]

    outbound.open_tracking = True
    outbound.save()
    item, _, message = render(mass_email_with(), make_contact(), outbound=outbound)
    pixel = re.search(r"<img [^>]*>", bodies(message)[1]).group(0)
    assert f'src="{links.open_pixel_url(SITE, item.uid)}"' in pixel
    assert 'width="1"' in pixel and 'height="1"' in pixel and 'alt=""' in pixel


def test_hidden_trap_link_in_html_only():
    item, _, message = render(mass_email_with(), make_contact())
    text, body_html = bodies(message)
    trap = links.trap_url(SITE, item.uid)
    anchor = re.search(rf'<a [^>]*href="{re.escape(trap)}"[^>]*></a>', body_html).group(0)

    assert "display:none" in anchor
    assert 'aria-hidden="true"' in anchor and 'tabindex="-1"' in anchor
    assert trap not in text


def test_trap_pixel_and_opt_out_go_inside_the_body_element(outbound):
    outbound.open_tracking = True
    outbound.save()
    mass_email = mass_email_with(body_html="<html><body><p>Hi</p></body></html>")
    _, _, message = render(mass_email, make_contact(), outbound=outbound)
    body_html = bodies(message)[1]

    closing = body_html.index("</body>")
    assert body_html.index("Unsubscribe") < closing
    assert body_html.index("/o/") < closing
    assert body_html.index("/h/") < closing


def test_tracking_url_becomes_a_signed_click_link():
    campaign = make_campaign()
    tracking_url = make_tracking_url(campaign)
    mass_email = mass_email_with(
        campaign, body_html=f'<a href="{tracking_url.code}">Offer</a> {{queueItemId}}'
    )
    item, _, message = render(mass_email, make_contact())
    text, body_html = bodies(message)
    url = links.click_url(SITE, item.uid, tracking_url.pk)

    assert f'<a href="{url}">Offer</a> {item.uid}' in body_html
    assert links.read_click_token(url.removeprefix(f"{SITE}/c/").strip("/")) == (
        item.uid,
        tracking_url.pk,
    )
    assert f"[Offer]({url})" in text


def test_text_alternative_generated_from_html_when_template_has_none():
    mass_email = mass_email_with(
        body_html="<h1>Big news</h1><p>Dear <b>{Person.firstName}</b>,</p><ul><li>one</li></ul>",
        body_text="",
    )
    _, _, message = render(mass_email, make_contact(first_name="Ada"))
    text = bodies(message)[0]

    assert "# Big news" in text
    assert "Dear Ada," in text
    assert "* one" in text
    assert "<" not in text.split(SITE)[0]


def test_template_text_body_used_when_given():
    mass_email = mass_email_with(body_text="Plain {Person.firstName}\nbye")
    _, _, message = render(mass_email, make_contact(first_name="Ada"))
    assert bodies(message)[0].startswith("Plain Ada\nbye\n\nhttps://crm.example.com/u/")


def test_one_hop_link_placeholders():
    account = make_account(name="Acme & Sons")
    contact = make_contact(account=account)
    lonely = make_contact(account=None)
    mass_email = mass_email_with(body_html="<p>[{Contact.account.name}|{Contact.account}]</p>")

    _, _, message = render(mass_email, contact)
    assert "<p>[Acme &amp; Sons|Acme &amp; Sons]</p>" in bodies(message)[1]
    _, _, message = render(mass_email, lonely)
    assert "<p>[|]</p>" in bodies(message)[1]


def test_placeholders_of_another_type_render_empty():
    mass_email = mass_email_with(
        body_html="<p>[{Contact.firstName}|{Lead.accountName}|{Account.name}|{User.username}]</p>"
    )
    _, _, message = render(mass_email, make_lead(account_name="Initech"))
    assert "<p>[|Initech||]</p>" in bodies(message)[1]
    _, _, message = render(mass_email, make_account(name="Globex"))
    assert "<p>[|||Globex]</p>".replace("|||Globex", "||Globex|") in bodies(message)[1]
    _, _, message = render(mass_email, make_user(username="jdoe"))
    assert "<p>[|||jdoe]</p>" in bodies(message)[1]


def test_person_placeholders_for_every_person_type_and_a_company():
    mass_email = mass_email_with(
        body_html="<p>[{Person.firstName}|{Person.lastName}|{Person.name}|{Person.emailAddress}]</p>"
    )
    cases = [
        (make_contact(first_name="Ada", last_name="L", email="ada@x.org"), "Ada|L|Ada L|ada@x.org"),
        (make_lead(first_name="Bo", last_name="M", email="bo@x.org"), "Bo|M|Bo M|bo@x.org"),
        (make_user(first_name="Cy", last_name="N", email="cy@x.org"), "Cy|N|Cy N|cy@x.org"),
        (make_account(name="Acme", email="info@acme.org"), "|Acme|Acme|info@acme.org"),
    ]
    for record, expected in cases:
        address = record.email if hasattr(record, "email") else None
        _, _, message = render(mass_email, record, address)
        assert f"<p>[{expected}]</p>" in bodies(message)[1], record


def test_custom_target_types_have_their_own_placeholders():
    partner = Partner.objects.create(name="Umbrella", region="North")
    partner.set_email_addresses("umbrella@example.com")
    volunteer = Volunteer.objects.create(first_name="Vera", last_name="Volt")
    volunteer.set_email_addresses("vera@example.com")
    mass_email = mass_email_with(
        body_html="<p>[{Partner.name}/{Partner.region}|{Volunteer.firstName}|{Person.name}]</p>"
    )
    _, _, message = render(mass_email, partner)
    assert "<p>[Umbrella/North||Umbrella]</p>" in bodies(message)[1]
    _, _, message = render(mass_email, volunteer)
    assert "<p>[/|Vera|Vera Volt]</p>" in bodies(message)[1]


def test_test_address_without_a_record():
    mass_email = mass_email_with(
        subject="Hi {Person.firstName}!", body_html="<p>{Person.name}|{emailAddress}</p>"
    )
    _, rendered, message = render(mass_email, address="someone@example.net")
    assert message["Subject"] == "Hi !"
    assert "<p>|someone@example.net</p>" in bodies(message)[1]
    assert message["To"] == "someone@example.net"


@time_machine.travel("2031-02-03 04:05:00+00:00", tick=False)
def test_date_placeholders_in_the_configured_time_zone(settings):
    settings.TIME_ZONE = "Pacific/Auckland"
    mass_email = mass_email_with(
        subject="{currentYear} digest", body_html="<p>{today}|{now}|{currentYear}</p>"
    )
    _, _, message = render(mass_email, make_contact())
    assert "<p>2031-02-03|2031-02-03 17:05|2031</p>" in bodies(message)[1]
    assert message["Subject"] == "2031 digest"


def test_non_ascii_subject_and_body_round_trip():
    contact = make_contact(first_name="Zoë", last_name="Ørsted")
    mass_email = mass_email_with(
        subject="Grüße, {Person.firstName} — 日本語の件名もちゃんと届きます、長い長い件名です",
        body_html="<p>Hallo {Person.name} ✓</p>",
    )
    _, rendered, message = render(mass_email, contact)

    assert message["Subject"] == ("Grüße, Zoë — 日本語の件名もちゃんと届きます、長い長い件名です")
    assert "<p>Hallo Zoë Ørsted ✓</p>" in bodies(message)[1]
    assert rendered.raw.isascii()
    assert str(message["To"]) == f"Zoë Ørsted <{contact.email}>"


def test_lines_are_crlf_and_short_even_for_long_html_lines():
    long_line = "<p>" + " ".join(f"word{n}={n}" for n in range(2000)) + "</p>"
    contact = make_contact(first_name="A" * 100, last_name="B" * 100)
    mass_email = mass_email_with(
        subject="{Person.firstName}{Person.lastName} " + "s" * 120,
        body_html=long_line + "{Person.firstName}",
    )
    _, rendered, message = render(mass_email, contact)

    assert b"\n" not in rendered.raw.replace(b"\r\n", b"")
    assert b"\r" not in rendered.raw.replace(b"\r\n", b"")
    assert max(len(line) for line in rendered.raw.split(b"\r\n")) <= 998
    body_start = rendered.raw.index(b"\r\n\r\n")
    assert max(len(line) for line in rendered.raw[body_start:].split(b"\r\n")) <= 76
    assert bodies(message)[1].startswith(long_line + "A" * 100)
    assert message["Subject"] == "A" * 100 + "B" * 100 + " " + "s" * 120


def test_values_with_newlines_do_not_break_headers_or_lines():
    contact = make_contact(first_name="Evil\r\nBcc: victim@example.com", last_name="X\nY")
    mass_email = mass_email_with(subject="Hi {Person.firstName}", body_html="<p>{Person.name}</p>")
    _, rendered, message = render(mass_email, contact)

    assert "Bcc" not in message
    assert message["Subject"] == "Hi Evil Bcc: victim@example.com"
    assert b"\n" not in rendered.raw.replace(b"\r\n", b"")


def test_render_email_message_has_the_same_content():
    contact = make_contact(first_name="Ada")
    mass_email = mass_email_with(subject="Hi {Person.firstName}", body_html="<p>{Person.name}</p>")
    item = make_item(mass_email, contact)
    prepared = prepare(mass_email)
    context = recipient_contexts([item])[item.id]
    rendered = prepared.render(item, context)
    django_message = prepared.render_email_message(item, context, for_anymail=False)
    parsed = parse(django_message.message().as_bytes())

    assert django_message.subject == rendered.subject == parsed["Subject"]
    assert django_message.body == rendered.text
    assert django_message.alternatives[0].content == rendered.html
    assert parsed["From"] == "Example News <news@example.com>"
    assert django_message.from_email == rendered.mail_from
    assert parsed["Message-ID"].endswith("@example.com>")
    assert parsed["X-Queue-Item-Id"] == str(item.uid)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_render_email_message_for_anymail_carries_metadata():
    mass_email = mass_email_with()
    item = make_item(mass_email, make_contact())
    prepared = prepare(mass_email)
    message = prepared.render_email_message(
        item, recipient_contexts([item])[item.id], for_anymail=True
    )
    assert message.metadata == {"queue_item_id": str(item.uid)}
    assert message.from_email == "Example News <news@example.com>"
    assert "From" not in message.extra_headers


def test_prepare_refuses_a_template_that_would_not_render():
    mass_email = mass_email_with(body_html="<p>{Contact.shoeSize}</p>")
    with pytest.raises(CompositionError) as error:
        prepare(mass_email)
    assert "{Contact.shoeSize}" in str(error.value)


def test_css_braces_are_not_placeholders():
    mass_email = mass_email_with(
        body_html="<style>a{color:red} p { margin: 0 }</style><p>{Person.firstName}</p>"
    )
    _, _, message = render(mass_email, make_contact(first_name="Ada"))
    assert "a{color:red} p { margin: 0 }" in bodies(message)[1]


def test_recipient_contexts_use_a_few_queries_for_a_portion(django_assert_max_num_queries):
    mass_email = mass_email_with(body_html="<p>{Contact.account.name}{Lead.campaign.name}</p>")
    account = make_account()
    records = (
        [make_contact(account=account) for _ in range(70)]
        + [make_lead(campaign=mass_email.campaign) for _ in range(70)]
        + [make_account() for _ in range(60)]
    )
    ids = [make_item(mass_email, record).id for record in records]
    from massmail.models import QueueItem

    items = list(QueueItem.objects.filter(pk__in=ids))
    ContentType.objects.get_for_model(Account)  # the content type cache is process-wide
    with django_assert_max_num_queries(4):
        contexts = recipient_contexts(items)
        prepared_items = [(item, contexts[item.id]) for item in items]
        names = [context.target.account.name for _, context in prepared_items[:70]]
    assert len(contexts) == 200
    assert names == [account.name] * 70
    prepared = prepare(mass_email)
    with django_assert_max_num_queries(0):
        for item, context in prepared_items:
            prepared.render(item, context)


def test_deleted_target_is_reported_in_the_context():
    contact = make_contact()
    mass_email = mass_email_with()
    item = make_item(mass_email, contact)
    contact.delete()
    context = recipient_contexts([item])[item.id]
    assert context.target is None and context.target_missing
    assert context.type_key == "Contact"


def test_signed_links_are_the_tokens_tracking_links_makes_and_reads():
    from django.core import signing

    fast = links.Links(SITE)
    for uid in (uuid.uuid4(), uuid.uuid4()):
        value = links._encode_uid(uid)
        # The keys derived once give exactly Django's Signer tokens, which the endpoints verify.
        for salt in (links.SALT_UNSUBSCRIBE, links.SALT_OPEN, links.SALT_TRAP):
            assert fast.token(salt, value) == signing.Signer(salt=salt).sign(value)
        assert fast.click_url(uid, 42) == (
            f"{SITE}/c/{signing.Signer(salt=links.SALT_CLICK).sign(f'{value}.42')}/"
        )
        assert links.read_unsubscribe_token(fast.unsubscribe_url(uid).split("/")[-2]) == uid
        assert links.read_click_token(fast.click_url(uid, 42).split("/")[-2]) == (uid, 42)


def test_fields_with_choices_read_as_their_labels():
    mass_email = mass_email_with(body_html="<p>[{Lead.status}]</p>")
    _, _, message = render(mass_email, make_lead(status="in_process"))
    assert "<p>[In Process]</p>" in bodies(message)[1]


def test_text_alternative_of_a_layout_table_has_no_grid_and_no_css():
    mass_email = mass_email_with(
        body_html=(
            "<html><head><title>Digest</title><style>p { margin: 0 }</style></head><body>"
            "<table><tr><td>Hello {Person.firstName}</td><td>Sidebar</td></tr></table>"
            "</body></html>"
        ),
        body_text="",
    )
    _, _, message = render(mass_email, make_contact(first_name="Ada"))
    text = bodies(message)[0]

    assert text.startswith("Hello Ada\nSidebar\n\n")
    assert "|" not in text and "---" not in text and "margin" not in text
    assert all(line == line.rstrip() for line in text.splitlines())
