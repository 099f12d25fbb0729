"""The unsubscribe page: GET confirms and changes nothing; its button POSTs; subscribe again."""

import re

import pytest
from django.test import Client, override_settings

from campaigns.models import Campaign, CampaignLogRecord
from targets.models import EmailAddress, TargetListMember
from tests.factories import (
    make_campaign,
    make_contact,
    make_lead,
    make_mass_email,
    make_target_list,
)
from tests.fixtures.tracking import BROWSER_AGENT, make_sent_item
from tracking import links
from tracking.models import UnsubscribePageText

pytestmark = pytest.mark.django_db


@pytest.fixture
def recipient():
    contact = make_contact(email="ann@example.com")
    newsletter, offers, other = (
        make_target_list(contact, name="Newsletter"),
        make_target_list(contact, name="Offers"),
        make_target_list(contact, name="Unrelated"),
    )
    campaign = make_campaign([newsletter, offers])
    mass_email = make_mass_email(campaign)
    return make_sent_item(mass_email, contact), contact, other


def _memberships(contact):
    return dict(
        TargetListMember.objects.filter(
            content_type__model="contact", object_id=contact.pk
        ).values_list("target_list__name", "opted_out")
    )


def _page(client, item):
    return client.get(links.unsubscribe_url("", item.uid), HTTP_USER_AGENT=BROWSER_AGENT)


def _post(client, item, action):
    page = _page(client, item).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    return client.post(
        links.unsubscribe_url("", item.uid),
        {"csrfmiddlewaretoken": token, "action": action},
    )


def _opted_out_log(item):
    return CampaignLogRecord.objects.filter(queue_item=item, action="opted_out")


def test_get_names_the_lists_and_changes_nothing(recipient):
    item, contact, _ = recipient
    response = _page(Client(), item)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Newsletter" in html and "Offers" in html and "Unrelated" not in html
    assert "ann@example.com" in html and 'value="unsubscribe"' in html
    assert "no-store" in response["Cache-Control"]
    assert not any(_memberships(contact).values()) and not _opted_out_log(item).exists()


def test_confirming_opts_out_of_the_lists_and_subscribe_again_reverses(recipient):
    item, contact, _ = recipient
    client = Client(enforce_csrf_checks=True)
    response = _post(client, item, "unsubscribe")
    assert response.status_code == 303
    page = client.get(response["Location"]).content.decode()
    assert "You have been unsubscribed." in page and 'value="subscribe"' in page
    assert _memberships(contact) == {"Newsletter": True, "Offers": True, "Unrelated": False}
    assert not EmailAddress.objects.get(address="ann@example.com").opt_out
    log = _opted_out_log(item).get()
    assert (
        log.campaign_id == item.mass_email.campaign_id and log.mass_email_id == item.mass_email_id
    )
    # Confirming twice changes nothing more.
    _post(client, item, "unsubscribe")
    assert _opted_out_log(item).count() == 1

    response = _post(client, item, "subscribe")
    assert "You are subscribed again." in client.get(response["Location"]).content.decode()
    assert not any(_memberships(contact).values()) and not _opted_out_log(item).exists()


def test_opt_out_entirely_sets_the_address_and_says_all_marketing_email(recipient):
    item, contact, _ = recipient
    item.mass_email.opt_out_entirely = True
    item.mass_email.save()
    assert "no marketing email" in _page(Client(), item).content.decode()
    client = Client(enforce_csrf_checks=True)
    _post(client, item, "unsubscribe")
    assert EmailAddress.objects.get(address="ann@example.com").opt_out
    assert _memberships(contact)["Newsletter"] is True
    _post(client, item, "subscribe")
    assert not EmailAddress.objects.get(address="ann@example.com").opt_out
    assert not _opted_out_log(item).exists()


def test_campaign_lists_are_used_when_the_mass_email_names_none(recipient):
    item, contact, _ = recipient
    item.mass_email.target_lists.clear()
    _post(Client(), item, "unsubscribe")
    assert _memberships(contact) == {"Newsletter": True, "Offers": True, "Unrelated": False}


def test_another_record_with_the_same_address_leaves_the_list_too(recipient):
    item, contact, _ = recipient
    lead = make_lead(email="ann@example.com")
    newsletter = item.mass_email.target_lists.get(name="Newsletter")
    newsletter.add(lead)
    _post(Client(), item, "unsubscribe")
    member = TargetListMember.objects.get(
        target_list=newsletter, content_type__model="lead", object_id=lead.pk
    )
    assert member.opted_out


def test_a_post_without_the_csrf_token_is_refused(recipient):
    item, contact, _ = recipient
    client = Client(enforce_csrf_checks=True)
    response = client.post(links.unsubscribe_url("", item.uid), {"action": "unsubscribe"})
    assert response.status_code == 403
    assert not any(_memberships(contact).values()) and not _opted_out_log(item).exists()


def test_informational_campaigns_have_no_unsubscribe_page(recipient):
    item, contact, _ = recipient
    Campaign.objects.filter(pk=item.mass_email.campaign_id).update(type=Campaign.Type.INFORMATIONAL)
    assert _page(Client(), item).status_code == 404
    response = Client().post(links.unsubscribe_url("", item.uid), {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 404
    assert not any(_memberships(contact).values()) and not _opted_out_log(item).exists()


def test_administrator_texts_replace_the_built_in_ones_per_language(recipient):
    item, _, _ = recipient
    UnsubscribePageText.objects.create(heading="Leaving us?", unsubscribe_button="Yes, stop")
    UnsubscribePageText.objects.create(language="de", heading="Abmelden?")
    english = _page(Client(), item).content.decode()
    assert "Leaving us?" in english and "Yes, stop" in english
    german = (
        Client()
        .get(links.unsubscribe_url("", item.uid), HTTP_ACCEPT_LANGUAGE="de")
        .content.decode()
    )
    assert "Abmelden?" in german and "Yes, stop" in german and 'lang="de"' in german


def test_a_deployment_can_override_the_template(recipient, tmp_path, settings):
    item, _, _ = recipient
    (tmp_path / "tracking").mkdir()
    (tmp_path / "tracking" / "unsubscribe.html").write_text(
        "Our own page for {{ address }}{% for l in target_lists %} [{{ l.name }}]{% endfor %}"
    )
    templates = [{**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}]
    with override_settings(TEMPLATES=templates):
        html = _page(Client(), item).content.decode()
    assert html == "Our own page for ann@example.com [Newsletter] [Offers]"


def test_the_address_form_toggles_only_the_opt_out(recipient):
    item, contact, _ = recipient
    url = links.address_unsubscribe_url("", "Ann@Example.com")
    client = Client(enforce_csrf_checks=True)
    page = client.get(url).content.decode()
    assert "ann@example.com" in page and 'value="unsubscribe"' in page
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(url, {"csrfmiddlewaretoken": token, "action": "unsubscribe"})
    assert response.status_code == 303
    assert EmailAddress.objects.get(address="ann@example.com").opt_out
    assert not any(_memberships(contact).values()) and not CampaignLogRecord.objects.exists()
    client.post(url, {"csrfmiddlewaretoken": token, "action": "subscribe"})
    assert not EmailAddress.objects.get(address="ann@example.com").opt_out
    forged = url.replace("/unsubscribe/", "/unsubscribe/x")
    assert Client().get(forged).status_code == 404
    other = links.address_unsubscribe_url("", "bob@example.com").split("/")
    mixed = "/".join([*url.split("/")[:3], other[3], ""])
    assert Client().post(mixed, {"action": "unsubscribe"}).status_code == 404


@pytest.mark.parametrize(
    "language, heading, intro",
    [
        ("de", "Abmelden", "Melden Sie sich ab, um keine E-Mails mehr zu erhalten"),
        ("fr", "Se désabonner", "Désabonnez-vous pour ne plus recevoir"),
    ],
)
def test_the_page_speaks_the_visitors_language(recipient, language, heading, intro):
    item, _, _ = recipient
    html = (
        Client()
        .get(links.unsubscribe_url("", item.uid), HTTP_ACCEPT_LANGUAGE=language)
        .content.decode()
    )
    assert f"<h1>{heading}</h1>" in html and intro in html and f'lang="{language}"' in html
