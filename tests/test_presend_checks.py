"""Pre-send checks: each warning appears for its cause, and a sound set-up gets none."""

import subprocess

import pytest
from django.urls import reverse

from campaigns.models import Campaign
from massmail.presend import NOTICE, presend_warnings
from tests.factories import (
    make_campaign,
    make_contact,
    make_mass_email,
    make_target_list,
    make_template,
)
from tests.fixtures.sending import set_outbound
from tests.services import require_program

pytestmark = pytest.mark.django_db

SOUND_TEMPLATE = {
    "subject": "News for {Person.firstName}",
    "body_html": '<p>Hello {Person.name}</p><p><a href="{optOutUrl}">Unsubscribe</a></p>',
    "body_text": "Hello {Person.name}\n\nUnsubscribe: {optOutUrl}\n",
}


@pytest.fixture(scope="module")
def dkim_key_file(tmp_path_factory) -> str:
    """One RSA key for the module: generating it costs more than the tests using it."""
    openssl = require_program("openssl", hint="apt-get install -y openssl")
    key = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    subprocess.run([openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    return str(key)


@pytest.fixture
def dkim_key(dkim_key_file, settings):
    settings.DKIM_PRIVATE_KEY_PATH = dkim_key_file
    settings.DKIM_SELECTOR = "mm1"
    settings.DKIM_DOMAIN = "example.com"
    return dkim_key_file


@pytest.fixture
def sound(dkim_key):
    """Everything right: public HTTPS site, aligned bounce domain, DKIM, links, text part."""
    set_outbound(
        site_url="https://news.example.com",
        bounce_address="bounces@mail.example.com",
        disable_mandatory_opt_out_link=False,
    )
    return make_mass_email(
        make_campaign(type=Campaign.Type.NEWSLETTER),
        target_lists=[make_target_list(make_contact())],
        email_template=make_template(**SOUND_TEMPLATE),
    )


def codes(mass_email) -> list[str]:
    return [warning.code for warning in presend_warnings(mass_email)]


def test_a_sound_set_up_has_no_warning(sound):
    assert presend_warnings(sound) == []


@pytest.mark.parametrize(
    "site_url, expected",
    [
        ("http://127.0.0.1:8000", ["site_url_local", "site_url_not_https"]),
        ("https://localhost", ["site_url_local"]),
        ("https://10.1.2.3", ["site_url_local"]),
        ("http://news.example.com", ["site_url_not_https"]),
        ("https://news.example.com", []),
    ],
)
def test_site_url_must_be_public_https(sound, site_url, expected):
    set_outbound(site_url=site_url)
    assert codes(sound) == expected


def test_site_url_falls_back_to_the_setting(sound, settings):
    set_outbound(site_url="")
    settings.SITE_URL = "http://localhost:8000"
    assert codes(sound) == ["site_url_local", "site_url_not_https"]


def test_one_click_unsubscribe_off_is_a_warning(sound):
    set_outbound(disable_mandatory_opt_out_link=True)
    assert codes(sound) == ["one_click_off"]


def test_no_unsubscribe_link_anywhere(sound):
    set_outbound(disable_mandatory_opt_out_link=True)
    template = sound.email_template
    template.body_html, template.body_text = "<p>Hi</p>", "Hi"
    template.save()
    assert codes(sound) == ["one_click_off", "no_unsubscribe_link"]


def test_missing_link_is_appended_and_says_so(sound):
    template = sound.email_template
    template.body_html, template.body_text = "<p>Hi</p>", "Hi"
    template.save()
    warnings = presend_warnings(sound)
    assert [(w.code, w.level) for w in warnings] == [("unsubscribe_appended", NOTICE)]
    assert "appended" in warnings[0].message


def test_informational_campaign_has_no_unsubscribe(sound):
    Campaign.objects.filter(pk=sound.campaign_id).update(type=Campaign.Type.INFORMATIONAL)
    template = sound.email_template
    template.body_html, template.body_text = "<p>Your invoice</p>", "Your invoice"
    template.save()
    sound.refresh_from_db()
    assert codes(sound) == ["informational"]


def test_no_text_part_will_be_generated(sound):
    template = sound.email_template
    template.body_text = ""
    template.save()
    warnings = presend_warnings(sound)
    assert [(w.code, w.level) for w in warnings] == [("text_generated", NOTICE)]


@pytest.mark.parametrize(
    "bounce_address, use_verp, expected",
    [
        ("bounces@example.com", False, []),
        ("bounces@mail.example.com", True, []),
        ("bounces@mailer.example.net", False, ["return_path_domain"]),
        ("bounces@mailer.example.net", True, ["return_path_domain"]),
    ],
)
def test_from_domain_must_match_the_return_path(sound, bounce_address, use_verp, expected):
    set_outbound(bounce_address=bounce_address, use_verp=use_verp)
    warnings = presend_warnings(sound)
    assert [w.code for w in warnings] == expected
    if expected:
        assert ("VERP address" if use_verp else "Return-Path") in warnings[0].message
        assert "example.com does not match" in warnings[0].message


def test_empty_bounce_address_uses_from_and_aligns(sound):
    set_outbound(bounce_address="")
    assert codes(sound) == []


def test_dkim_missing_or_broken(sound, settings):
    settings.DKIM_PRIVATE_KEY_PATH = settings.DKIM_SELECTOR = settings.DKIM_DOMAIN = ""
    assert codes(sound) == ["dkim_missing"]
    settings.DKIM_SELECTOR = "mm1"
    assert codes(sound) == ["dkim_broken"]


def test_dkim_for_another_domain(sound, settings):
    settings.DKIM_DOMAIN = "other.org"
    assert codes(sound) == ["dkim_domain"]


def test_unknown_placeholder(sound):
    template = sound.email_template
    template.body_html = template.body_html + "<p>{Contact.shoeSize}</p>"
    template.save()
    warnings = presend_warnings(sound)
    assert [w.code for w in warnings] == ["placeholder"]
    assert "shoeSize" in warnings[0].message


def test_the_mass_email_page_shows_the_checks(admin_client, sound):
    set_outbound(site_url="http://localhost:8000")
    page = admin_client.get(reverse("admin:massmail_massemail_change", args=[sound.pk]))
    html = page.content.decode()
    assert 'id="presend-checks"' in html
    assert 'data-check="site_url_local"' in html and 'data-check="site_url_not_https"' in html
    assert "go out without the List-Unsubscribe-Post header" in html
    assert reverse("admin:massmail_massemail_preview", args=[sound.pk]) in html
