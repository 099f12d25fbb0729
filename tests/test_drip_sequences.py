"""Drip sequences: enrolment on joining, due steps queued once, conditions, stopping, figures."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from campaigns.models import Enrolment, Sequence, SequenceStep
from campaigns.sequences import advance, step_statistics
from massmail.models import MassEmail, QueueItem
from massmail.sending import tick
from targets.models import EmailAddress, TargetListMember
from tests.factories import make_campaign, make_contact, make_target_list, make_template
from tests.fixtures.sending import set_outbound
from tests.fixtures.tracking import BROWSER_AGENT
from tracking import links

pytestmark = pytest.mark.django_db

Delay = SequenceStep.DelayFrom


def make_sequence(target_list=None, steps=(), **overrides) -> Sequence:
    """A sequence with steps given as (delay, delay_from, condition)."""
    target_list = target_list or make_target_list()
    sequence = Sequence.objects.create(
        **{
            "campaign": make_campaign(status="active"),
            "name": "Onboarding",
            "target_list": target_list,
            "enrols_from": timezone.now() - timedelta(minutes=5),
            **overrides,
        }
    )
    for position, (delay, delay_from, condition) in enumerate(steps, start=1):
        SequenceStep.objects.create(
            sequence=sequence,
            position=position,
            email_template=make_template(subject=f"Step {position}"),
            delay=delay,
            delay_from=delay_from,
            condition=condition,
        )
    return sequence


THREE_STEPS = [
    (timedelta(0), Delay.JOINING, "always"),  # the welcome email
    (timedelta(days=2), Delay.PREVIOUS, "always"),
    (timedelta(days=1), Delay.PREVIOUS, "opened"),
]


def _items(step: SequenceStep) -> list[str]:
    step.refresh_from_db()
    return sorted(
        QueueItem.objects.filter(mass_email=step.mass_email_id).values_list(
            "email_address__address", flat=True
        )
    )


def days(n: float):
    return time_machine.travel(timezone.now() + timedelta(days=n), tick=False)


def test_joining_enrols_and_the_welcome_step_is_queued_once():
    target_list = make_target_list()
    sequence = make_sequence(target_list, THREE_STEPS)
    ann, bob = make_contact(email="ann@example.com"), make_contact(email="bob@example.com")
    target_list.add(ann)
    target_list.add(bob)
    result = advance()
    assert (result.enrolled, result.queued) == (2, 2)
    welcome, second, _ = sequence.steps.all()
    assert _items(welcome) == ["ann@example.com", "bob@example.com"]
    assert welcome.mass_email.status == MassEmail.Status.IN_PROCESS
    assert welcome.mass_email.target_lists.get() == target_list
    assert set(Enrolment.objects.values_list("next_step", flat=True)) == {second.pk}
    again = advance()
    assert (again.enrolled, again.queued) == (0, 0), "nothing twice"
    assert _items(second) == [], "not before its delay"


def test_members_from_before_the_sequence_are_not_enrolled_unless_asked():
    target_list = make_target_list(make_contact())
    make_sequence(target_list, THREE_STEPS, enrols_from=timezone.now() + timedelta(seconds=1))
    assert advance().enrolled == 0
    Sequence.objects.update(enrols_from=timezone.now() - timedelta(days=365))
    assert advance().enrolled == 1


def test_each_step_after_its_delay_and_a_condition_on_the_previous(client, smtp_settings):
    set_outbound(max_per_hour=1000, open_tracking=True)
    target_list = make_target_list()
    sequence = make_sequence(target_list, THREE_STEPS)
    people = [make_contact(email=f"p{n}@example.com") for n in range(3)]
    for person in people:
        target_list.add(person)
    advance()
    welcome, second, third = sequence.steps.all()
    assert tick().sent == 3
    with days(1.9):
        assert advance().queued == 0
    with days(2.01):
        assert advance().queued == 3
        assert tick().sent == 3
    opened = QueueItem.objects.get(
        mass_email=second.mass_email_id, email_address__address="p1@example.com"
    )
    with days(2.1):  # read a while later: a person, not a scanner within seconds
        client.get(links.open_pixel_url("", opened.uid), HTTP_USER_AGENT=BROWSER_AGENT)
    with days(2.9):
        assert advance().queued == 0
    with days(3.02):
        result = advance()
    assert (result.queued, result.skipped) == (1, 2)
    assert _items(third) == ["p1@example.com"]
    assert Enrolment.objects.filter(finished_at__isnull=False).count() == 3
    figures = step_statistics(sequence)
    assert [(f.queued, f.sent, f.skipped, f.waiting) for f in figures] == [
        (3, 3, 0, 0),
        (3, 3, 0, 0),
        (1, 0, 2, 0),
    ]
    assert figures[1].opened == 1


def test_a_scanner_opening_the_previous_step_is_not_an_open(client, smtp_settings):
    set_outbound(max_per_hour=1000, open_tracking=True)
    target_list = make_target_list()
    sequence = make_sequence(
        target_list,
        [(timedelta(0), Delay.JOINING, "always"), (timedelta(hours=1), Delay.PREVIOUS, "opened")],
    )
    target_list.add(make_contact(email="ann@example.com"))
    advance()
    tick()
    item = QueueItem.objects.get()
    client.get(
        links.open_pixel_url("", item.uid), HTTP_USER_AGENT="Mozilla/5.0 (compatible; Barracuda)"
    )
    with days(1):
        assert (advance().queued, step_statistics(sequence)[1].skipped) == (0, 1)


def test_delays_after_joining_count_from_joining():
    target_list = make_target_list()
    sequence = make_sequence(
        target_list,
        [
            (timedelta(days=1), Delay.JOINING, "always"),
            (timedelta(days=3), Delay.JOINING, "always"),
        ],
    )
    target_list.add(make_contact())
    advance()
    with days(1.01):
        assert advance().queued == 1
    with days(2.99):
        assert advance().queued == 0
    with days(3.01):
        assert advance().queued == 1
    assert Enrolment.objects.get().finished_at is not None
    assert sequence.steps.count() == 2


def test_leaving_the_list_or_opting_out_stops_the_sequence():
    target_list = make_target_list()
    make_sequence(target_list, THREE_STEPS)
    ann, bob, cy = (make_contact(email=f"{n}@example.com") for n in ("ann", "bob", "cy"))
    for person in (ann, bob, cy):
        target_list.add(person)
    advance()
    TargetListMember.objects.filter(object_id=ann.pk).update(opted_out=True)
    EmailAddress.objects.filter(address="bob@example.com").update(opt_out=True)
    with days(2.01):
        result = advance()
    assert (result.queued, result.stopped) == (1, 2)
    reasons = dict(Enrolment.objects.values_list("object_id", "stop_reason"))
    assert reasons == {
        ann.pk: "left the list",
        bob.pk: "opted out, invalid or no address",
        cy.pk: "",
    }
    with days(10):
        assert advance().queued == 0, "stopped for good"


def test_a_queued_step_of_someone_who_leaves_is_canceled_before_it_goes():
    target_list = make_target_list()
    sequence = make_sequence(target_list, THREE_STEPS)
    ann = make_contact(email="ann@example.com")
    target_list.add(ann)
    advance()
    TargetListMember.objects.update(opted_out=True)
    assert advance().canceled == 1
    item = QueueItem.objects.get(mass_email=sequence.steps.first().mass_email_id)
    assert item.status == QueueItem.Status.CANCELED and item.last_error == "left the list"


def test_a_completed_step_takes_new_people(smtp_settings):
    set_outbound(max_per_hour=1000)
    target_list = make_target_list()
    sequence = make_sequence(target_list, THREE_STEPS[:1])
    target_list.add(make_contact())
    advance()
    assert tick().sent == 1
    welcome = sequence.steps.get().mass_email
    welcome.refresh_from_db()
    assert welcome.status == MassEmail.Status.COMPLETE
    target_list.add(make_contact())
    assert advance().queued == 1
    welcome.refresh_from_db()
    assert welcome.status == MassEmail.Status.IN_PROCESS
    assert tick().sent == 1


def test_inactive_sequences_and_campaigns_send_nothing():
    target_list = make_target_list()
    sequence = make_sequence(target_list, THREE_STEPS, active=False)
    target_list.add(make_contact())
    assert advance().enrolled == 0
    Sequence.objects.update(active=True)
    sequence.campaign.status = "inactive"
    sequence.campaign.save()
    assert advance().enrolled == 0


def test_a_marketer_makes_a_sequence_in_the_admin_and_sees_its_figures(admin_client):
    target_list = make_target_list()
    campaign = make_campaign(status="active")
    template = make_template(subject="Welcome")
    response = admin_client.post(
        "/admin/campaigns/sequence/add/",
        {
            "name": "Welcome series",
            "campaign": campaign.pk,
            "target_list": target_list.pk,
            "active": "on",
            "enrols_from_0": "2020-01-01",
            "enrols_from_1": "00:00:00",
            "steps-TOTAL_FORMS": "1",
            "steps-INITIAL_FORMS": "0",
            "steps-0-position": "1",
            "steps-0-email_template": template.pk,
            "steps-0-delay": "0",
            "steps-0-delay_from": "joining",
            "steps-0-condition": "always",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    step = SequenceStep.objects.get()
    assert step.mass_email.name == "Welcome series: step 1"
    assert step.mass_email.email_template == template
    target_list.add(make_contact())
    advance()
    page = admin_client.get(f"/admin/campaigns/sequence/{step.sequence_id}/change/")
    html = page.content.decode()
    assert 'id="step-statistics"' in html
    assert "<tr><td>Step 1</td><td>0</td><td>0</td><td>0</td><td>1</td>" in html
