"""Hits of one message that arrived together are told machine afterwards, as a whole.

Each hit is classified as it arrives, against the hits already committed; hits
arriving in the same milliseconds cannot see each other, so the minutely job
applies the burst rules to the recent hits together.
"""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from campaigns.models import CampaignLogRecord
from tests.factories import make_contact, make_mass_email, make_tracking_url
from tests.fixtures.tracking import BROWSER_AGENT, make_sent_item, make_tracked_message
from tests.services import require_postgres
from tracking import bursts, links, rules
from tracking.models import Hit

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign():
    return make_tracked_message().mass_email.campaign


def _item(campaign):
    return make_sent_item(make_mass_email(campaign), make_contact())


def _person_hit(item, kind: str, url=None, at=None) -> Hit:
    """A hit as the endpoint leaves it when it saw no other hit of its message."""
    return Hit.objects.create(
        queue_item=item,
        kind=kind,
        tracking_url=url,
        at=at or timezone.now(),
        method="GET",
        user_agent=BROWSER_AGENT,
        is_machine=kind == Hit.Kind.TRAP,
        machine_reason=rules.REASON_TRAP if kind == Hit.Kind.TRAP else "",
    )


def _reasons(item) -> set[str]:
    return set(Hit.objects.filter(queue_item=item).values_list("machine_reason", flat=True))


def test_links_hit_together_become_machine_and_people_stay_people(campaign):
    first, second = make_tracking_url(campaign), make_tracking_url(campaign)
    now = timezone.now()
    scanned = _item(campaign)  # two links in the same instant: a scanner
    _person_hit(scanned, "click", first, now)
    _person_hit(scanned, "click", second, now)
    _person_hit(scanned, "open", None, now + timedelta(seconds=1))
    twice = _item(campaign)  # the same link twice: a person who clicked again
    _person_hit(twice, "click", first, now)
    _person_hit(twice, "click", first, now + timedelta(seconds=1))
    apart = _item(campaign)  # two links a minute apart: a person reading on
    _person_hit(apart, "click", first, now - timedelta(minutes=1))
    _person_hit(apart, "click", second, now)

    assert bursts.reclassify_bursts() == 3
    assert _reasons(scanned) == {rules.REASON_LINKS_BURST}
    assert _reasons(twice) == _reasons(apart) == {""}
    assert bursts.reclassify_bursts() == 0  # running again changes nothing


def test_a_hidden_link_hit_together_makes_the_others_machine(campaign):
    item = _item(campaign)
    now = timezone.now()
    _person_hit(item, "open", None, now)
    _person_hit(item, "trap", None, now)
    _person_hit(item, "click", make_tracking_url(campaign), now + timedelta(seconds=2))
    assert bursts.reclassify_bursts() == 2
    assert Hit.objects.get(kind="trap").machine_reason == rules.REASON_TRAP
    assert set(Hit.objects.exclude(kind="trap").values_list("machine_reason", flat=True)) == {
        rules.REASON_TRAP_BURST
    }


def test_hits_before_the_lookback_are_left_alone(campaign):
    first, second = make_tracking_url(campaign), make_tracking_url(campaign)
    item = _item(campaign)
    long_ago = timezone.now() - timedelta(hours=2)
    _person_hit(item, "click", first, long_ago)
    _person_hit(item, "click", second, long_ago)
    _person_hit(_item(campaign), "open")  # a newer hit, so the bound is found by id
    assert bursts.reclassify_bursts() == 0
    assert bursts.reclassify_bursts(lookback=timedelta(hours=3)) == 2


def test_the_command_and_the_beat_schedule(campaign):
    first, second = make_tracking_url(campaign), make_tracking_url(campaign)
    item = _item(campaign)
    _person_hit(item, "click", first)
    _person_hit(item, "click", second)
    out = io.StringIO()
    call_command("reclassify_hits", "--minutes", "5", stdout=out)
    assert out.getvalue() == "2 hit(s) reclassified as machine.\n"
    task = PeriodicTask.objects.get(task="tracking.reclassify_bursts")
    assert task.enabled and task.interval.every == 1 and task.interval.period == "minutes"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_scanner_fetching_every_link_at_once_is_machine_once_the_job_ran():
    """Real concurrent requests: whether or not they saw each other, the job settles it."""
    require_postgres()
    item = make_tracked_message()
    campaign = item.mass_email.campaign
    urls = [make_tracking_url(campaign) for _ in range(4)]
    barrier = threading.Barrier(len(urls))
    statuses: list[int] = []

    def fetch(url) -> None:
        barrier.wait()
        try:
            path = links.click_url("", item.uid, url.pk)
            statuses.append(Client().get(path, HTTP_USER_AGENT=BROWSER_AGENT).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=fetch, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [302] * len(urls)
    bursts.reclassify_bursts()
    assert Hit.objects.filter(queue_item=item).count() == len(urls)
    assert not Hit.objects.filter(queue_item=item, is_machine=False).exists()
    # The log keeps the raw entries: each link clicked once, the message opened once.
    log = CampaignLogRecord.objects.filter(queue_item=item)
    assert log.filter(action="clicked").count() == len(urls)
    assert log.filter(action="opened").count() == 1
