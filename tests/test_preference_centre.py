"""The preference centre on the unsubscribe page: leave some topics, stay in others, or all."""

import re

import pytest
from django.test import Client

from campaigns.models import CampaignLogRecord
from subscriptions.models import ConsentRecord
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

pytestmark = pytest.mark.django_db


@pytest.fixture
def person():
    """Ann is in three topics and one internal list; the message went to the newsletter."""
    contact = make_contact(email="ann@example.com")
    lead = make_lead(email="ann@example.com")  # the same person through another record
    news = make_target_list(contact, name="Newsletter", is_topic=True)
    offers = make_target_list(lead, name="Offers", is_topic=True)
    events = make_target_list(contact, name="Events", is_topic=True)
    make_target_list(contact, name="Internal: big spenders")
    make_target_list(name="Podcast", is_topic=True)  # a topic she is not in
    item = make_sent_item(make_mass_email(make_campaign([news])), contact)
    return item, {"news": news, "offers": offers, "events": events}


def _page(client, item) -> str:
    return client.get(
        links.unsubscribe_url("", item.uid), HTTP_USER_AGENT=BROWSER_AGENT
    ).content.decode()


def _post(client, item, action, keep=()):
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', _page(client, item)).group(1)
    data = {"csrfmiddlewaretoken": token, "action": action, "keep": [t.pk for t in keep]}
    return client.post(links.unsubscribe_url("", item.uid), data, HTTP_USER_AGENT=BROWSER_AGENT)


def _state() -> dict[str, bool]:
    return dict(TargetListMember.objects.values_list("target_list__name", "opted_out"))


def _opted_out_log(item):
    return CampaignLogRecord.objects.filter(queue_item=item, action="opted_out")


def test_the_page_lists_the_topics_the_person_is_in(client, person):
    item, _ = person
    html = _page(client, item)
    form = html[html.index('id="preferences"') :]
    names = re.findall(r'name="keep" value="\d+" checked> ([^<]+)</label>', form)
    assert names == ["Events", "Newsletter", "Offers"]
    assert "Internal" not in form and "Podcast" not in form


def test_leaving_one_topic_keeps_the_others(client, person):
    item, lists = person
    response = _post(client, item, "topics", keep=[lists["news"], lists["events"]])
    assert response.status_code == 303 and response["Location"].endswith("?done=saved")
    state = _state()
    assert state["Offers"] is True
    assert state["Newsletter"] is False and state["Events"] is False
    assert state["Internal: big spenders"] is False
    assert not _opted_out_log(item).exists(), "still in this message's list"
    assert not EmailAddress.objects.get().opt_out
    (record,) = ConsentRecord.objects.all()
    assert (record.action, record.target_lists) == ("opt_out", "Offers")
    assert (
        "Your choices are saved."
        in _page(client, item) + client.get(response["Location"]).content.decode()
    )


def test_leaving_this_messages_list_is_its_opt_out_and_rejoining_undoes_it(client, person):
    item, lists = person
    _post(client, item, "topics", keep=[lists["offers"], lists["events"]])
    assert _state()["Newsletter"] is True and _opted_out_log(item).count() == 1
    html = _page(client, item)
    assert re.search(r'value="\d+"> Newsletter', html), "shown unticked, to rejoin"
    _post(client, item, "topics", keep=lists.values())
    assert _state()["Newsletter"] is False and not _opted_out_log(item).exists()
    actions = list(ConsentRecord.objects.values_list("action", "target_lists"))
    assert actions == [("opt_out", "Newsletter"), ("re_subscription", "Newsletter")]


def test_leave_all_leaves_every_topic_and_unsubscribes(client, person):
    item, _ = person
    _post(client, item, "leave_all")
    state = _state()
    assert state == {**state, "Newsletter": True, "Offers": True, "Events": True}
    assert state["Internal: big spenders"] is False, "not shown, not touched"
    assert _opted_out_log(item).count() == 1


def test_one_click_still_leaves_only_this_messages_lists(person):
    item, _ = person
    response = Client(enforce_csrf_checks=True).post(
        links.unsubscribe_url("", item.uid), {"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200 and response.content == b"Unsubscribed.\n"
    state = _state()
    assert state["Newsletter"] is True and state["Offers"] is False and state["Events"] is False


def test_a_person_in_one_list_only_sees_no_choices(client):
    contact = make_contact()
    item = make_sent_item(make_mass_email(make_campaign([make_target_list(contact)])), contact)
    assert 'id="preferences"' not in _page(client, item)


def test_the_page_adds_nobody_to_a_list(client, person):
    item, lists = person
    podcast = make_target_list(name="Podcast 2", is_topic=True)
    _post(client, item, "topics", keep=[*lists.values(), podcast])
    assert not TargetListMember.objects.filter(target_list=podcast).exists()
