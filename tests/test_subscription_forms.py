"""Subscription forms: the public page, the embeddable snippet and what a submission does."""

import json
import time

import pytest
from django.core import mail, signing

from subscriptions.models import ConsentRecord, SignUp
from subscriptions.signup import form_token
from subscriptions.views import snippet
from targets.models import EmailAddress, Lead, TargetListMember
from tests.subscription_factories import confirm_link, make_form, post_form

pytestmark = pytest.mark.django_db


def test_the_public_page_shows_the_form_with_a_fresh_token(client):
    form = make_form(extra_fields=["city"], consent_text="Yes, send me the news.")
    response = client.get(f"/subscribe/{form.key}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="email"' in html and 'name="city"' in html and 'name="website"' in html
    assert "Yes, send me the news." in html
    token = html.split('name="token" value="', 1)[1].split('"', 1)[0]
    assert signing.loads(token, salt="massmail.subscription-form")["f"] == form.key


def test_an_unknown_or_inactive_form_is_not_found(client):
    form = make_form(active=False)
    assert client.get(f"/subscribe/{form.key}/").status_code == 404
    assert client.get("/subscribe/nosuchform/").status_code == 404


def test_a_submission_keeps_a_sign_up_and_sends_the_confirmation_only(client):
    form = make_form(extra_fields=["city"])
    response = post_form(client, form, email=" Ann@Example.com ", city="Lyon")
    assert response.status_code == 303
    assert response["Location"] == f"/subscribe/{form.key}/thanks/"
    sign_up = SignUp.objects.get()
    assert (sign_up.address, sign_up.first_name, sign_up.extra) == (
        "ann@example.com",
        "Ann",
        {"city": "Lyon"},
    )
    assert sign_up.ip == "203.0.113.0", "truncated by the privacy setting"
    assert not TargetListMember.objects.exists() and not Lead.objects.exists()
    assert not EmailAddress.objects.exists(), "nothing about the address before it confirms"
    (message,) = mail.outbox
    assert message.to == ["ann@example.com"] and message.subject == "Please confirm, Ann"
    html = message.alternatives[0][0]
    assert confirm_link(html) in message.body, "the text part carries the link too"
    record = ConsentRecord.objects.get()
    assert (record.action, record.address, record.text) == (
        "sign_up",
        "ann@example.com",
        form.consent_text,
    )
    assert record.user_agent.startswith("Mozilla/5.0") and record.ip == "203.0.113.0"


def test_the_page_after_submitting_can_be_the_marketers(client):
    form = make_form(thanks_url="https://www.example.com/thanks")
    response = post_form(client, form, email="ann@example.com")
    assert response["Location"] == "https://www.example.com/thanks"
    page = client.get(f"/subscribe/{make_form().key}/thanks/")
    assert "Please check your inbox" in page.content.decode()


def test_the_honeypot_filled_looks_like_success_and_does_nothing(client):
    form = make_form()
    response = post_form(client, form, email="bot@example.com", website="http://spam.example")
    assert response.status_code == 303
    assert not SignUp.objects.exists() and not mail.outbox and not ConsentRecord.objects.exists()


def test_a_submission_faster_than_a_person_does_nothing(client):
    form = make_form()
    response = post_form(client, form, email="bot@example.com", wait=0.5)
    assert response.status_code == 303
    assert not SignUp.objects.exists() and not mail.outbox


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "forged:token", "OTHER_FORM", "TOO_OLD"],
)
def test_a_missing_forged_or_stale_form_token_shows_the_form_again(client, token):
    form = make_form()
    if token == "OTHER_FORM":
        token = form_token(make_form())
    elif token == "TOO_OLD":
        token = form_token(form, now=time.time() - 2 * 86400)
    response = post_form(client, form, email="ann@example.com", token=token)
    assert response.status_code == 400
    assert "This form has expired" in response.content.decode()
    assert 'name="token" value="' in response.content.decode(), "with a fresh token to retry"
    assert not SignUp.objects.exists() and not mail.outbox


def test_an_invalid_address_is_said_so(client):
    response = post_form(client, make_form(), email="not an address")
    assert response.status_code == 400
    assert "valid email address" in response.content.decode()
    assert not SignUp.objects.exists()


def test_the_token_endpoint_is_readable_from_any_origin_without_credentials(client):
    form = make_form()
    response = client.get(f"/subscribe/{form.key}/token/", HTTP_ORIGIN="https://shop.example")
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response
    assert "no-store" in response["Cache-Control"]
    token = json.loads(response.content)["token"]
    assert signing.loads(token, salt="massmail.subscription-form")["f"] == form.key


def test_the_snippet_posts_to_this_site_and_fetches_its_token(settings):
    form = make_form()
    html = snippet(form)
    site = settings.SITE_URL
    assert f'action="{site}/subscribe/{form.key}/"' in html
    assert f'fetch("{site}/subscribe/{form.key}/token/"' in html
    assert 'credentials: "omit"' in html and "csrfmiddlewaretoken" not in html


def test_a_cross_origin_post_without_csrf_cookie_is_accepted(client, settings):
    """The form works from another site: no CSRF cookie, a foreign Origin header."""
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    form = make_form()
    response = post_form(strict, form, email="ann@example.com", HTTP_ORIGIN="https://shop.example")
    assert response.status_code == 303 and SignUp.objects.count() == 1


def test_the_confirmation_template_must_carry_the_link():
    from django.core.exceptions import ValidationError

    form = make_form()
    form.confirmation_template.body_html = "<p>No link here</p>"
    with pytest.raises(ValidationError, match="confirmUrl"):
        form.full_clean()


def test_the_admin_shows_the_snippet_to_paste(admin_client):
    form = make_form()
    page = admin_client.get(f"/admin/subscriptions/subscriptionform/{form.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="embed-snippet"' in html
    assert f"/subscribe/{form.key}/token/" in html and f'href="/subscribe/{form.key}/"' in html
