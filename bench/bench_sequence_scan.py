"""How fast drip sequences enrol 100,000 people and find the steps that are due (PostgreSQL).

Seeds a dedicated database set-based (generate_series): 100,000 contacts with a
primary address each (0.5% opted out), all in one list (1% of memberships opted
out), and a sequence of 3 steps (a welcome email, then 2 and 3 days after the
previous step). Then times, in the same run:
- campaigns.sequences.enrol: one INSERT ... SELECT enrolling the 100,000;
- the due-step scan: per step, the due enrolments (one index range) that are still
  in the list and mailable, as advance() reads them;
- advance() as a whole (stop, count, queue, move on) on that backlog, then the scan
  again an hour later (the steady state of a beat job);
- the baseline: a per-person loop (load each enrolment, compare its time with its
  step's delay, look up its membership and its primary address), on a sample of the
  enrolments, extrapolated; it must find the same people due.

    .venv/bin/python bench/bench_sequence_scan.py [--people 100000] [--sample 10000]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta

import benchdb

benchdb.use_database("sequences")

import django  # noqa: E402

django.setup()

from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Exists  # noqa: E402
from django.utils import timezone  # noqa: E402

from campaigns import sequences  # noqa: E402
from campaigns.models import (  # noqa: E402
    Campaign,
    EmailTemplate,
    Enrolment,
    Sequence,
    SequenceStep,
)
from targets.models import Contact, RecordEmailAddress, TargetList, TargetListMember  # noqa: E402


def seed(people: int) -> tuple[Sequence, list[SequenceStep]]:
    ct = ContentType.objects.get_for_model(Contact).pk
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE targets_contact, targets_emailaddress, targets_recordemailaddress,"
            " targets_targetlistmember, targets_targetlist, campaigns_enrolment,"
            " campaigns_sequencestep, campaigns_sequence, massmail_queueitem,"
            " massmail_massemail, campaigns_campaign, campaigns_emailtemplate"
            " RESTART IDENTITY CASCADE"
        )
        cur.execute(
            "INSERT INTO targets_contact (salutation, first_name, last_name, title, phone,"
            " city, country, created_at) SELECT '', 'First' || g, 'Last' || g, '', '', '', '',"
            " now() FROM generate_series(1, %s) g",
            [people],
        )
        cur.execute(
            "INSERT INTO targets_emailaddress (address, opt_out, invalid, created_at,"
            " updated_at) SELECT 'p' || g || '@example.com', g %% 200 = 3, false, now(), now()"
            " FROM generate_series(1, %s) g",
            [people],
        )
        cur.execute(
            "INSERT INTO targets_recordemailaddress (content_type_id, object_id,"
            ' email_address_id, "primary") SELECT %s, g, g, true FROM generate_series(1, %s) g',
            [ct, people],
        )
        cur.execute(
            "INSERT INTO targets_targetlist (name, description, is_topic, created_at)"
            " VALUES ('Newsletter', '', true, now())"
        )
        # Joined over the last 10 days, one an hour-slot apart.
        cur.execute(
            "INSERT INTO targets_targetlistmember (target_list_id, content_type_id, object_id,"
            " opted_out, added_at) SELECT 1, %s, g, false,"
            " now() - (g %% 240) * interval '1 hour' FROM generate_series(1, %s) g",
            [ct, people],
        )
    campaign = Campaign.objects.create(name="Bench", type=Campaign.Type.NEWSLETTER, status="active")
    sequence = Sequence.objects.create(
        campaign=campaign,
        name="Onboarding",
        target_list=TargetList.objects.get(),
        enrols_from=timezone.now() - timedelta(days=30),
    )
    steps = [
        SequenceStep.objects.create(
            sequence=sequence,
            position=n,
            email_template=EmailTemplate.objects.create(
                name=f"Step {n}", subject=f"Step {n}", body_html="<p>Hi</p>"
            ),
            delay=delay,
            delay_from=SequenceStep.DelayFrom.PREVIOUS,
        )
        for n, delay in [(1, timedelta(0)), (2, timedelta(days=2)), (3, timedelta(days=3))]
    ]
    for step in steps:
        sequences.step_mass_email(step)
    return sequence, steps


def spread(steps: list[SequenceStep]) -> None:
    """People at every stage: a third waits for each step, since 0 to 10 days; 1% left."""
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE campaigns_enrolment SET next_step_id = CASE id %% 3 WHEN 0 THEN %s"
            " WHEN 1 THEN %s ELSE %s END, delay_from_at = now() - (id %% 240) * interval '1 hour'",
            [s.pk for s in steps],
        )
        cur.execute("UPDATE targets_targetlistmember SET opted_out = true WHERE id % 100 = 42")
        cur.execute("ANALYZE")


def due_set_based(sequence: Sequence, steps: list[SequenceStep], now, within=None):
    """Per step, the due enrolments still in the list and mailable, as advance() reads them.

    Counted in the database (advance() never brings them to Python); with `within`,
    the ids among those, for comparing with the loop.
    """
    found: list[int] | int = [] if within is not None else 0
    for step in steps:
        rows = sequences.due_enrolments(step, now).filter(
            Exists(sequences.still_member(sequence)), Exists(sequences.mailable())
        )
        if within is None:
            found += rows.count()
        else:
            found += list(rows.filter(pk__in=within).values_list("pk", flat=True))
    return found


def due_per_person(sequence: Sequence, enrolment_ids: list[int], now) -> set[int]:
    """The baseline: one enrolment at a time, as a loop over people would."""
    steps = {step.pk: step for step in sequence.steps.all()}
    due = set()
    for pk in enrolment_ids:
        enrolment = Enrolment.objects.get(pk=pk)
        step = steps.get(enrolment.next_step_id)
        if step is None or enrolment.stopped_at or enrolment.delay_from_at > now - step.delay:
            continue
        member = TargetListMember.objects.filter(
            target_list_id=sequence.target_list_id,
            content_type_id=enrolment.content_type_id,
            object_id=enrolment.object_id,
        ).first()
        if member is None or member.opted_out:
            continue
        link = (
            RecordEmailAddress.objects.filter(
                content_type_id=enrolment.content_type_id,
                object_id=enrolment.object_id,
                primary=True,
            )
            .select_related("email_address")
            .first()
        )
        if link and not (link.email_address.opt_out or link.email_address.invalid):
            due.add(pk)
    return due


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=5_000)
    args = parser.parse_args()
    benchdb.ensure_database()
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    sequence, steps = seed(args.people)
    print(f"seeded {args.people:,} people in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    with transaction.atomic():
        enrolled = sequences.enrol(sequence, steps[0])
    print(f"set-based enrol: {enrolled:,} enrolled in {time.perf_counter() - started:.2f} s")
    spread(steps)
    now = timezone.now()

    due_set_based(sequence, steps, now)  # warm the cache as a beat job's repeats find it
    started = time.perf_counter()
    due = due_set_based(sequence, steps, now)
    set_based = time.perf_counter() - started
    print(f"set-based due-step scan, backlog: {due:,} due of {enrolled:,} in {set_based:.3f} s")

    every = max(1, enrolled // args.sample)
    ids = list(Enrolment.objects.order_by("pk").values_list("pk", flat=True)[::every])
    started = time.perf_counter()
    loop_due = due_per_person(sequence, ids, now)
    per_person = time.perf_counter() - started
    rate = len(ids) / per_person
    extrapolated = enrolled / rate
    print(
        f"per-person loop: {len(ids):,} enrolments -> {len(loop_due):,} due in"
        f" {per_person:.2f} s ({rate:,.0f}/s); extrapolated to {enrolled:,}: {extrapolated:.1f} s"
    )
    assert loop_due == set(due_set_based(sequence, steps, now, within=ids)), "they disagree"

    started = time.perf_counter()
    with transaction.atomic():
        result = sequences.advance(now)
    whole = time.perf_counter() - started
    print(
        f"advance() as a whole, backlog: {result.queued:,} queued, {result.stopped:,} stopped"
        f" in {whole:.2f} s"
    )
    # Then a beat job finds only what fell due since its last run: here an hour's worth.
    started = time.perf_counter()
    steady = due_set_based(sequence, steps, now + timedelta(hours=1))
    steady_time = time.perf_counter() - started
    print(
        f"set-based due-step scan, steady state: {steady:,} due of {enrolled:,}"
        f" in {steady_time:.3f} s"
    )
    print(
        f"ratio: the set-based backlog scan is {extrapolated / set_based:,.0f}x faster than the"
        f" loop; {set_based:.3f} s (steady state {steady_time:.3f} s) vs goal <= 1 s"
    )
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
