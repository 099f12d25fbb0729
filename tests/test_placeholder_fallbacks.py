"""{Person.firstName|there}: a fallback for recipients whose value is empty, and the
pre-send check that counts who would get nothing without one."""

from __future__ import annotations

import pytest

from massmail.composition import prepare
from massmail.models import OutboundSettings, QueueItem
from massmail.placeholders import split, validate_template
from massmail.presend import presend_warnings
from massmail.queue import build_queue
from massmail.recipients import recipient_contexts
from tests.factories import (
    make_account,
    make_contact,
    make_lead,
    make_mass_email,
    make_target_list,
    make_template,
)
from tests.fixtures.composition import make_item, parse

pytestmark = pytest.mark.django_db


def render(template, record):
    mass_email = make_mass_email(email_template=template)
    item = make_item(mass_email, record)
    rendered = prepare(mass_email).render(item, recipient_contexts([item])[item.id])
    message = parse(rendered.raw)
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    return rendered.subject, html, text


def test_the_fallback_is_part_of_the_grammar():
    assert split("Hello {Person.firstName|there}, {Person.lastName|}!") == (
        ("Hello ", ", ", "!"),
        ("Person.firstName|there", "Person.lastName|"),
    )
    # CSS and prose with braces are still not placeholders.
    assert split("a{color:red} { margin: 0 } {a|b\nc}")[1] == ()


def test_an_account_gets_the_fallback_and_a_contact_its_name():
    template = make_template(
        subject="{Person.firstName|Friend}, our spring news",
        body_html="<p>Hello {Person.firstName|there},</p><p>{Contact.title|Dear reader}</p>",
    )
    subject, html, text = render(template, make_account(name="Acme Ltd"))
    assert subject == "Friend, our spring news"
    assert "Hello there," in html and "Dear reader" in html and "|" not in html
    assert "Hello there," in text and "|" not in text
    subject, html, _ = render(template, make_contact(first_name="Ada", title="Dr"))
    assert subject == "Ada, our spring news"
    assert "Hello Ada," in html and "<p>Dr</p>" in html


def test_the_fallback_is_escaped_as_text():
    template = make_template(
        subject="News", body_html="<p>Hi {Person.firstName|Tom &amp; &lt;Jerry&gt;}</p>"
    )
    _, html, text = render(template, make_account())
    assert "Hi Tom &amp; &lt;Jerry&gt;" in html
    assert "Hi Tom & <Jerry>" in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{optOutUrl|x}", "only a recipient's fields take a fallback"),
        ("{today|soon}", "only a recipient's fields take a fallback"),
        ("{Contact.shoeSize|big}", "Contact has no shoe_size"),
    ],
)
def test_fallbacks_are_checked_like_the_rest(body, message):
    errors = validate_template(make_template(body_html=f"<p>{body}</p>"))
    assert any(message in error for error in errors), errors


@pytest.fixture
def https_site() -> None:
    outbound = OutboundSettings.load()
    outbound.site_url = "https://news.example.com"
    outbound.save()


def empty_value_messages(mass_email) -> list[str]:
    return [w.message for w in presend_warnings(mass_email) if w.code == "empty_value"]


@pytest.mark.parametrize("queue_built", [False, True])
def test_the_pre_send_check_counts_who_would_get_nothing(https_site, queue_built):
    members = [
        make_contact(first_name="Ada"),
        make_contact(first_name=""),
        make_account(name="Acme"),
        make_account(name="Globex"),
        make_lead(first_name="Lin"),
    ]
    template = make_template(
        subject="{Person.firstName}, our spring news",
        body_html="<p>Hello {Person.firstName}, {Person.lastName|}</p><p>{Lead.status|}</p>"
        "<p>{Account.name}</p>",
    )
    mass_email = make_mass_email(target_lists=[make_target_list(*members)], email_template=template)
    if queue_built:
        build_queue(mass_email.pk)
        mass_email.refresh_from_db()
    assert empty_value_messages(mass_email) == [
        "{Person.firstName} is empty for 3 recipient(s): they get nothing in its place. "
        "Give it a fallback, as in {Person.firstName|there}.",
        "{Account.name} is empty for 3 recipient(s): they get nothing in its place. "
        "Give it a fallback, as in {Account.name|there}.",
    ]
    if queue_built:  # once sent, nobody is still to get it
        mass_email.queue_items.update(status=QueueItem.Status.SENT)
        assert empty_value_messages(mass_email) == []


def test_no_warning_once_every_placeholder_has_a_fallback(https_site):
    template = make_template(
        subject="{Person.firstName|Friend}, our spring news",
        body_html="<p>Hello {Person.firstName|there}</p>",
    )
    target_list = make_target_list(make_account(), make_contact(first_name=""))
    mass_email = make_mass_email(target_lists=[target_list], email_template=template)
    assert empty_value_messages(mass_email) == []
