"""Hits of concurrent requests written in one statement (PostgreSQL group commit).

Each request still gets its own answer: 302 for its own link, 404 for a link of
another campaign, and the database holds exactly what the rules say, as if
every hit had been written alone.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import DataError, connection, connections
from django.test import Client
from django.utils import timezone

from campaigns.models import CampaignLogRecord
from massmail.models import OutboundSettings
from tests.factories import (
    make_campaign,
    make_contact,
    make_mass_email,
    make_target_list,
    make_tracking_url,
)
from tests.fixtures.tracking import BROWSER_AGENT, make_sent_item
from tracking import hit_statement, links, rules
from tracking.models import Hit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

THREADS = 10


@pytest.fixture
def campaign_items():
    OutboundSettings.objects.update_or_create(pk=1, defaults={"open_tracking": True})
    contacts = [make_contact() for _ in range(THREADS)]
    campaign = make_campaign([make_target_list(*contacts)])
    mass_email = make_mass_email(campaign)
    return campaign, [make_sent_item(mass_email, contact) for contact in contacts]


@pytest.fixture
def batch_sizes(monkeypatch):
    """The batches the group commit writes; the first one is slow, so others queue."""
    sizes: list[int] = []
    write = hit_statement._group_commit._write

    def recording(rows):
        sizes.append(len(rows))
        if len(sizes) == 1:
            time.sleep(0.2)
        return write(rows)

    monkeypatch.setattr(hit_statement._group_commit, "_write", recording)
    return sizes


def _get_together(paths: list[str]) -> list[int]:
    """GET each path from its own thread (own connection), all at once; the statuses."""
    statuses = [0] * len(paths)
    start = threading.Barrier(len(paths))

    def get(n: int) -> None:
        start.wait()
        try:
            statuses[n] = Client().get(paths[n], HTTP_USER_AGENT=BROWSER_AGENT).status_code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=get, args=(n,)) for n in range(len(paths))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return statuses


def test_concurrent_clicks_are_written_together_and_each_answered(campaign_items, batch_sizes):
    campaign, items = campaign_items
    url = make_tracking_url(campaign, url="https://example.org/together")
    foreign = make_tracking_url(make_campaign())
    paths = [links.click_url("", item.uid, url.pk) for item in items[:-1]]
    paths.append(links.click_url("", items[-1].uid, foreign.pk))  # another campaign's link
    paths.append(links.click_url("", items[0].uid, url.pk))  # the same link again
    statuses = _get_together(paths)
    assert statuses == [302] * (len(paths) - 2) + [404, 302]
    assert max(batch_sizes) > 1, batch_sizes  # some hits did share a statement
    assert sum(batch_sizes) == len(paths)
    # Every answered hit kept; none for the refused link; log rows once each.
    assert Hit.objects.filter(kind="click").count() == len(paths) - 1
    assert not Hit.objects.filter(queue_item=items[-1]).exists()
    clicked = CampaignLogRecord.objects.filter(action="clicked")
    assert sorted(clicked.values_list("queue_item_id", flat=True)) == sorted(
        item.pk for item in items[:-1]
    )
    assert CampaignLogRecord.objects.filter(action="opened").count() == len(items) - 1


def test_two_hits_of_one_item_in_one_batch_log_once():
    """Both rows of one statement conflict with each other: the second is skipped."""
    OutboundSettings.objects.update_or_create(pk=1, defaults={"open_tracking": True})
    contact = make_contact()
    campaign = make_campaign([make_target_list(contact)])
    item = make_sent_item(make_mass_email(campaign), contact)
    url = make_tracking_url(campaign)
    visit = rules.Visit("GET", BROWSER_AGENT, "203.0.113.7", timezone.now())
    batch = [
        hit_statement._PendingHit(Hit.Kind.CLICK, item.uid, visit, url.pk),
        hit_statement._PendingHit(Hit.Kind.CLICK, item.uid, visit, url.pk),
        hit_statement._PendingHit(Hit.Kind.OPEN, item.uid, visit, None),
    ]
    outcomes = hit_statement._write_hits(batch)
    assert [o.url if o else o for o in outcomes] == [url.url, url.url, ""]
    assert Hit.objects.filter(queue_item=item).count() == 3
    assert CampaignLogRecord.objects.filter(queue_item=item, action="clicked").count() == 1
    assert CampaignLogRecord.objects.filter(queue_item=item, action="opened").count() == 1


def test_a_hit_postgresql_refuses_fails_alone(campaign_items):
    """A batch refused for one hit's content is written hit by hit: the others are kept."""
    campaign, items = campaign_items
    url = make_tracking_url(campaign)
    now = timezone.now()
    good = rules.Visit("GET", BROWSER_AGENT, "203.0.113.7", now)
    # A lone surrogate: no real request carries one, but nothing may make one
    # request's content cost other requests their hits.
    bad = rules.Visit("GET", "Mozilla/5.0 \ud800", "203.0.113.7", now)
    batch = [
        hit_statement._PendingHit(Hit.Kind.CLICK, items[0].uid, good, url.pk),
        hit_statement._PendingHit(Hit.Kind.CLICK, items[1].uid, bad, url.pk),
        hit_statement._PendingHit(Hit.Kind.CLICK, items[2].uid, good, url.pk),
    ]
    outcomes = hit_statement._write_hits(batch)
    assert outcomes[0].url == outcomes[2].url == url.url
    assert isinstance(outcomes[1], DataError)
    assert set(Hit.objects.values_list("queue_item_id", flat=True)) == {items[0].pk, items[2].pk}
    # The connection is usable afterwards.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def test_a_nul_in_the_user_agent_is_dropped_not_refused(campaign_items):
    campaign, items = campaign_items
    url = make_tracking_url(campaign)
    path = links.click_url("", items[0].uid, url.pk)
    assert Client().get(path, HTTP_USER_AGENT="Mozilla/5.0\x00 X").status_code == 302
    assert Hit.objects.get().user_agent == "Mozilla/5.0 X"
