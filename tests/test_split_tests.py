"""A/B tests: the queue split among variants, the winner by people's clicks, the rest to it."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns.models import CampaignLogRecord
from massmail import splittests
from massmail.models import MassEmail, QueueItem, SplitTest
from massmail.queue import build_queue
from massmail.sending import tick
from massmail.splittests import create_split_test, decide_due, seed_of, split_order
from tests.factories import make_template, make_tracking_url
from tests.fixtures.sending import make_queued_mass_email, set_outbound
from tests.fixtures.tracking import BROWSER_AGENT
from tracking import links
from tracking.models import Hit

pytestmark = pytest.mark.django_db

SCANNER_AGENT = "Mozilla/5.0 (compatible; Barracuda Sentinel link scanner)"
Status = MassEmail.Status


def _ab_test(count: int, **fields) -> SplitTest:
    """A draft mass email to `count` people with a test of two subjects, then scheduled."""
    parent = make_queued_mass_email(
        count, status=Status.DRAFT, email_template=make_template(subject="Parent subject")
    )
    test = create_split_test(
        parent,
        [{"subject": "Subject A"}, {"subject": "Subject B"}],
        **{"test_percent": 20, "wait": timedelta(hours=1), **fields},
    )
    assert parent.schedule()
    return test


def _variant(test: SplitTest, letter: str) -> MassEmail:
    return test.variants.get(letter=letter).mass_email


def _click(items, agent: str, url) -> None:
    for item in items:
        path = links.click_url("", item.uid, url.pk)
        assert Client().get(path, HTTP_USER_AGENT=agent).status_code == 302


def _subjects(smtp_sink) -> Counter:
    return Counter(str(r.message()["Subject"]) for r in smtp_sink.received)


def test_people_clicking_b_make_b_the_winner_of_the_rest(
    smtp_settings, smtp_sink, outbound_unlimited
):
    test = _ab_test(1000)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        tick()  # builds the parent's queue, splits it, sends the test share
        test.refresh_from_db()
        a, b = _variant(test, "A"), _variant(test, "B")
        assert test.state == SplitTest.State.TESTING
        assert _subjects(smtp_sink) == {"Subject A": 100, "Subject B": 100}
        held = QueueItem.objects.filter(mass_email=test.parent, status=QueueItem.Status.PENDING)
        assert held.count() == 800
        test.parent.refresh_from_db()
        assert test.parent.status == Status.TESTING
        assert tick().sent == 0  # the rest waits for the winner

        # Reproducible: the order is md5(id || the test's seed), A first, then B.
        ids = QueueItem.objects.filter(
            mass_email__in=[test.parent, a, b], is_test=False
        ).values_list("pk", flat=True)
        order = split_order(list(ids), seed_of(test))
        assert set(a.queue_items.values_list("pk", flat=True)) == set(order[:100])
        assert set(b.queue_items.values_list("pk", flat=True)) == set(order[100:200])

        url = make_tracking_url(test.parent.campaign)
        a_items = list(a.queue_items.order_by("pk"))
        clock.shift(timedelta(seconds=2))  # a gateway fetching links on delivery
        _click(a_items[30:40], BROWSER_AGENT, url)
        clock.shift(timedelta(minutes=20))  # past the prompt window
        _click(a_items[:30], SCANNER_AGENT, url)  # machines: must not count
        _click(b.queue_items.all()[:7], BROWSER_AGENT, url)
        assert Hit.objects.filter(queue_item__mass_email=a, is_machine=True).count() == 40
        assert not Hit.objects.filter(queue_item__mass_email=a, is_machine=False).exists()

        clock.shift(timedelta(minutes=30))
        assert decide_due() == []  # the wait is not over
        clock.shift(timedelta(minutes=15))
        assert decide_due() == [test.pk]
        assert decide_due() == []  # once
        test.refresh_from_db()
        assert test.winner == "B"
        assert "B: 7 of 100 (7.00%)" in test.decision and "A: 0 of 100" in test.decision

        result = tick()
    assert result.sent == 800
    assert _subjects(smtp_sink) == {"Subject A": 100, "Subject B": 900}
    recipients = smtp_sink.recipients()
    assert len(recipients) == 1000 and len(set(recipients)) == 1000  # nobody gets two
    sent_log = CampaignLogRecord.objects.filter(action=CampaignLogRecord.Action.SENT)
    assert Counter(sent_log.values_list("mass_email_id", flat=True)) == {a.pk: 100, b.pk: 900}
    for mass_email in (test.parent, a, b):
        mass_email.refresh_from_db()
        assert mass_email.status == Status.COMPLETE
    assert tick().sent == 0


def test_a_tie_keeps_the_rule_s_variant_and_the_page_says_so(
    smtp_settings, smtp_sink, outbound_unlimited, admin_client
):
    test = _ab_test(50, tie_variant="A", metric=SplitTest.Metric.OPENS)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        tick()
        a, b = _variant(test, "A"), _variant(test, "B")
        assert (a.queue_items.count(), b.queue_items.count()) == (5, 5)
        url = make_tracking_url(test.parent.campaign)
        clock.shift(timedelta(minutes=20))
        _click(a.queue_items.all()[:2], BROWSER_AGENT, url)
        _click(b.queue_items.all()[:2], BROWSER_AGENT, url)
        clock.shift(timedelta(hours=1))
        assert decide_due() == [test.pk]
        tick()
    test.refresh_from_db()
    assert test.winner == "A"
    assert test.decision.startswith("Tie of A, B on opens by people: the rule keeps variant A.")
    assert _subjects(smtp_sink) == {"Subject A": 45, "Subject B": 5}

    page = admin_client.get(reverse("admin:massmail_massemail_change", args=[test.parent.pk]))
    html = page.content.decode()
    assert "Tie of A, B on opens by people: the rule keeps variant A." in html
    assert "Winner: variant A" in html
    assert "2 (40.00%)" in html  # B's opens by people at the decision, of 5 sent
    assert "2 of 5" in html  # the figures the pick was made on
    variant_page = admin_client.get(reverse("admin:massmail_massemail_change", args=[b.pk]))
    assert "Winner: variant A" in variant_page.content.decode()  # a variant's page too


def test_too_few_events_fall_to_the_rule(smtp_settings, smtp_sink, outbound_unlimited):
    test = _ab_test(20, tie_variant="B", min_events=3)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        tick()
        url = make_tracking_url(test.parent.campaign)
        clock.shift(timedelta(minutes=20))
        _click(_variant(test, "A").queue_items.all()[:2], BROWSER_AGENT, url)
        clock.shift(timedelta(hours=1))
        decide_due()
    test.refresh_from_db()
    assert test.winner == "B"
    assert test.decision.startswith("Too few clicks by people (fewer than 3 on the best variant)")


def test_a_manual_test_waits_for_the_admin_s_pick(
    smtp_settings, smtp_sink, outbound_unlimited, admin_client
):
    test = _ab_test(20, metric=SplitTest.Metric.MANUAL)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        tick()
        clock.shift(timedelta(days=2))
        assert decide_due() == []
        pick = reverse("admin:massmail_massemail_split_winner", args=[test.parent.pk, "B"])
        assert admin_client.post(pick).status_code == 302
        assert admin_client.post(pick).status_code == 302  # a second click changes nothing
        tick()
    test.refresh_from_db()
    assert test.winner == "B" and "picked by hand" in test.decision
    assert _subjects(smtp_sink) == {"Subject A": 2, "Subject B": 18}


@pytest.mark.parametrize("writer", ["database", "orm"])
def test_the_split_is_the_same_from_sql_and_from_the_orm(writer, monkeypatch):
    """SQLite takes the ORM path: both move the same items, in the order seeded by the test."""
    if writer == "orm":
        monkeypatch.setattr(splittests, "_move_share", splittests._move_share_portable)
    test = create_split_test(
        make_queued_mass_email(30, status=Status.DRAFT),
        [{"from_name": "Ada"}, {"from_name": "Bob"}, {"from_name": "Cy"}],
        test_percent=40,
    )
    assert test.parent.schedule()
    assert build_queue(test.parent_id) == 30
    order = split_order(
        list(QueueItem.objects.filter(is_test=False).values_list("pk", flat=True)), seed_of(test)
    )
    for n, letter in enumerate("ABC"):
        items = _variant(test, letter).queue_items.values_list("pk", flat=True)
        assert set(items) == set(order[n * 4 : (n + 1) * 4])
        assert _variant(test, letter).from_name == ["Ada", "Bob", "Cy"][n]
    assert test.parent.queue_items.count() == 18


def test_an_a_b_test_is_made_in_the_admin(admin_client):
    parent = make_queued_mass_email(3, status=Status.DRAFT, from_name="News")
    add = reverse("admin:massmail_splittest_add")
    form = {
        "parent": parent.pk,
        "test_percent": 20,
        "wait": "02:00:00",
        "metric": "clicks",
        "min_events": 1,
        "tie_variant": "C",
        "subject_a": "Spring offers",
        "subject_b": "Offers of spring",
    }
    page = admin_client.post(add, form)
    assert "One of the variants: A, B." in page.content.decode()  # no variant C
    page = admin_client.post(add, {**form, "tie_variant": "B", "subject_b": ""})
    assert "Fill in at least two variants" in page.content.decode()
    assert (
        admin_client.post(add, {**form, "tie_variant": "B", "from_name_c": "Ada"}).status_code
        == 302
    )
    test = SplitTest.objects.get(parent=parent)
    assert test.wait == timedelta(hours=2) and test.tie_variant == "B"
    subjects = [v.mass_email.email_template.subject for v in test.variants.all()]
    assert subjects == ["Spring offers", "Offers of spring", parent.email_template.subject]
    assert [v.mass_email.from_name for v in test.variants.all()] == ["News", "News", "Ada"]
    assert {v.mass_email.status for v in test.variants.all()} == {Status.TESTING}
    # The parent is offered no more.
    assert admin_client.post(add, form).status_code == 200
    page = admin_client.get(reverse("admin:massmail_massemail_change", args=[parent.pk]))
    assert "Pick as winner" not in page.content.decode()  # not split yet
    assert "Waiting for the queue" in page.content.decode()


def test_no_winner_before_the_test_share_is_sent(smtp_settings, smtp_sink, outbound_unlimited):
    set_outbound(max_per_batch=5)
    test = _ab_test(50)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        assert tick().sent == 5  # of the 10 of the test share
        clock.shift(timedelta(hours=2))
        assert decide_due() == []
        assert tick().sent == 5
        assert decide_due() == [test.pk]


def test_the_beat_job_picks_winners_every_minute(smtp_settings, smtp_sink, outbound_unlimited):
    from django_celery_beat.models import PeriodicTask

    from massmail.start import start_page
    from massmail.tasks import decide_split_tests

    schedule = PeriodicTask.objects.get(task="massmail.tasks.decide_split_tests")
    assert schedule.enabled and schedule.interval.every == 1
    assert schedule.interval.period == "minutes"
    test = _ab_test(10, wait=timedelta(0))
    assert _variant(test, "A") not in [row.mass_email for row in start_page().running]
    tick()
    assert test.parent in [row.mass_email for row in start_page().running]
    assert decide_split_tests.apply().get() == [test.pk]
    test.refresh_from_db()
    winner = _variant(test, test.winner)
    assert winner.queue_items.filter(status=QueueItem.Status.PENDING).count() == 8
    # As a tick racing the move leaves it (completed on a snapshot without the rest):
    MassEmail.objects.filter(pk=winner.pk).update(status=Status.COMPLETE)
    assert decide_split_tests.apply().get() == []
    winner.refresh_from_db()
    assert winner.status == Status.IN_PROCESS
    assert tick().sent == 8


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_runs_the_pick_and_the_send_tick_sends_the_rest(
    smtp_settings, smtp_sink, outbound_unlimited, celery_worker_on_redis
):
    from massmail.tasks import decide_split_tests, send_mass_emails
    from tests.fixtures.celery_worker import wait_until

    test = _ab_test(30, wait=timedelta(0))
    send_mass_emails.delay()
    wait_until(lambda: len(smtp_sink.received) == 6)
    decide_split_tests.delay()
    wait_until(lambda: SplitTest.objects.get(pk=test.pk).state == SplitTest.State.DECIDED)
    send_mass_emails.delay()
    wait_until(lambda: len(smtp_sink.received) == 30)
    test.refresh_from_db()
    assert test.winner == "A" and test.decision.startswith("Too few clicks by people")
    assert _subjects(smtp_sink) == {"Subject A": 27, "Subject B": 3}
    assert len(set(smtp_sink.recipients())) == 30


def test_every_mass_email_of_a_test_finishes_once_and_only_when_it_is_done(
    smtp_settings, smtp_sink, outbound_unlimited
):
    """The winner finished its share, then gets the rest: webhooks hear it finished
    once, after the rest; the loser when the decision makes it final; the parent then."""
    from webhooks.models import EventType, WebhookEndpoint

    hook = WebhookEndpoint.objects.create(
        name="CRM", url="https://crm.example.com/", event_types=[EventType.MASS_EMAIL_FINISHED]
    )
    test = _ab_test(50, wait=timedelta(0))
    a, b = _variant(test, "A"), _variant(test, "B")

    def finished() -> list[int]:
        return list(hook.events.order_by("id").values_list("mass_email_id", flat=True))

    assert tick().sent == 10  # both shares
    for variant in (a, b):
        variant.refresh_from_db()
        assert variant.status == Status.IN_PROCESS  # waiting for the decision
    assert finished() == []
    assert decide_due() == [test.pk]
    test.refresh_from_db()
    winner, loser = (a, b) if test.winner == "A" else (b, a)
    loser.refresh_from_db()
    assert loser.status == Status.COMPLETE
    assert sorted(finished()) == sorted([loser.pk, test.parent_id])
    assert tick().sent == 40
    assert tick().sent == 0
    assert sorted(finished()) == sorted([loser.pk, test.parent_id, winner.pk])
