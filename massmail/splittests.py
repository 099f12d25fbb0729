"""A/B tests: variants are mass emails; the parent's queue is split among them, then the
winner gets the rest. The sending engine is not involved: it sends whatever queue items
an In Process mass email has, within the caps, once each.

1. `create_split_test()` makes one mass email per variant (the parent's campaign, lists
   and sender, with its own subject, from name or template), held in A/B testing.
2. The parent's queue is built once, as any mass email's (massmail/queue.py); in the same
   transaction `split_queue()` moves the test share, in an order seeded by the test's id,
   evenly to the variants (one UPDATE) and holds the parent in A/B testing.
3. When the wait is over and the test share is sent, the beat job (`decide_due()`)
   counts, per variant, the queue items with a hit by a person (machine hits excluded,
   as the statistics do), picks the best rate or applies the tie rule, and moves the
   parent's rest to the winner's mass email (one UPDATE). A manual test waits for
   `pick_winner()` from the mass email page.

Items move only while pending, before any log record or hit refers to them, and each
address has one item in the whole test: the "one per mass email and address" constraint
holds and nobody gets two.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from campaigns.models import EmailTemplate
from campaigns.statistics import percent_of
from massmail.models import MassEmail, QueueItem, SplitTest, SplitVariant
from tracking.models import Hit

LETTERS = string.ascii_uppercase[:4]
Status = MassEmail.Status


def create_split_test(parent: MassEmail, variants: list[dict], **fields) -> SplitTest:
    """A test of 2-4 variants, each a dict of what differs: subject, from_name, email_template."""
    if not 2 <= len(variants) <= len(LETTERS):
        raise ValueError("An A/B test has 2 to 4 variants.")
    with transaction.atomic():
        test = SplitTest.objects.create(parent=parent, **fields)
        for letter, differs in zip(LETTERS, variants, strict=False):
            SplitVariant.objects.create(
                split_test=test,
                letter=letter,
                mass_email=_variant_mass_email(parent, letter, differs),
            )
    return test


def _variant_mass_email(parent: MassEmail, letter: str, differs: dict) -> MassEmail:
    template = differs.get("email_template") or parent.email_template
    if differs.get("subject"):
        template = EmailTemplate.objects.create(
            name=f"{template.name} (variant {letter})",
            subject=differs["subject"],
            body_html=template.body_html,
            body_text=template.body_text,
        )
    variant = MassEmail.objects.create(
        campaign=parent.campaign,
        name=f"{parent.name} - variant {letter}",
        status=Status.TESTING,
        start_at=parent.start_at,
        email_template=template,
        from_address=parent.from_address,
        from_name=differs.get("from_name") or parent.from_name,
        reply_to_address=parent.reply_to_address,
        reply_to_name=parent.reply_to_name,
        opt_out_entirely=parent.opt_out_entirely,
        group_email_account=parent.group_email_account,
    )
    # Its queue comes from the parent; the lists only tell the page who it is for.
    variant.target_lists.set(parent.target_lists.all())
    variant.excluding_target_lists.set(parent.excluding_target_lists.all())
    return variant


def _held(test: SplitTest):
    """The parent's queue items still to send: what the split and the winner take."""
    return QueueItem.objects.filter(
        mass_email_id=test.parent_id, status=QueueItem.Status.PENDING, is_test=False
    )


def split_queue(test: SplitTest, now: datetime) -> int:
    """Move the test share of the parent's fresh queue evenly to the variants (in the
    queue build's transaction); the parent holds the rest. How many items moved."""
    variants = list(test.variants.order_by("letter"))
    per_variant = _held(test).count() * test.test_percent // 100 // len(variants)
    moved = _move_share(test, [v.mass_email_id for v in variants], per_variant)
    MassEmail.objects.filter(pk__in=[v.mass_email_id for v in variants]).update(
        status=Status.IN_PROCESS, queue_built_at=now
    )
    test.state, test.split_at = SplitTest.State.TESTING, now
    test.save(update_fields=["state", "split_at"])
    return moved


def seed_of(test: SplitTest) -> str:
    return f"split-test-{test.pk}"


def _move_share(test: SplitTest, variant_ids: list[int], per_variant: int) -> int:
    if not per_variant:
        return 0
    if connection.vendor != "postgresql":
        return _move_share_portable(test, variant_ids, per_variant)
    table = QueueItem._meta.db_table
    cases = " ".join("WHEN %s THEN %s" for _ in variant_ids)
    case_params = [p for n, pk in enumerate(variant_ids) for p in (n, pk)]
    sql = (
        f"WITH ranked AS (SELECT id, row_number() OVER (ORDER BY md5(id::text || %s)) - 1 AS rn"
        f" FROM {table} WHERE mass_email_id = %s AND status = %s AND NOT is_test)"
        f" UPDATE {table} q SET mass_email_id = CASE ranked.rn / %s {cases} END"
        " FROM ranked WHERE q.id = ranked.id AND ranked.rn < %s"
    )
    params = [seed_of(test), test.parent_id, QueueItem.Status.PENDING, per_variant, *case_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, per_variant * len(variant_ids)])
        return cursor.rowcount


def split_order(ids: list[int], seed: str) -> list[int]:
    """The order the split takes items in: md5 of id and seed, as the SQL above."""
    return sorted(ids, key=lambda pk: hashlib.md5(f"{pk}{seed}".encode()).hexdigest())


def _move_share_portable(test: SplitTest, variant_ids: list[int], per_variant: int) -> int:
    order = split_order(list(_held(test).values_list("pk", flat=True)), seed_of(test))
    moved = 0
    for n, variant_id in enumerate(variant_ids):
        share = order[n * per_variant : (n + 1) * per_variant]
        moved += QueueItem.objects.filter(pk__in=share).update(mass_email_id=variant_id)
    return moved


# ---- figures and the winner


@dataclass(frozen=True)
class VariantFigures:
    variant: SplitVariant
    sent: int
    opened: int
    clicked: int

    @property
    def opened_percent(self) -> Decimal:
        return percent_of(self.opened, self.sent)

    @property
    def clicked_percent(self) -> Decimal:
        return percent_of(self.clicked, self.sent)

    def events(self, metric: str) -> int:
        return self.opened if metric == SplitTest.Metric.OPENS else self.clicked


def variant_figures(test: SplitTest) -> list[VariantFigures]:
    """Per variant: messages sent and queue items a person opened or clicked (a click
    counts as an open too, as in the campaign statistics). Two aggregate queries."""
    variants = list(test.variants.order_by("letter"))
    ids = [v.mass_email_id for v in variants]
    sent = dict(
        QueueItem.objects.filter(mass_email_id__in=ids, is_test=False, status=QueueItem.Status.SENT)
        .values_list("mass_email_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    human = Hit.objects.filter(
        queue_item__mass_email_id__in=ids, queue_item__is_test=False, is_machine=False
    )
    people = {
        row["queue_item__mass_email_id"]: row
        for row in human.values("queue_item__mass_email_id")
        .annotate(
            opened=Count("queue_item", distinct=True, filter=Q(kind__in=["open", "click"])),
            clicked=Count("queue_item", distinct=True, filter=Q(kind="click")),
        )
        .order_by()
    }
    return [
        VariantFigures(
            v,
            sent.get(v.mass_email_id, 0),
            people.get(v.mass_email_id, {}).get("opened", 0),
            people.get(v.mass_email_id, {}).get("clicked", 0),
        )
        for v in variants
    ]


def choose(test: SplitTest, figures: list[VariantFigures]) -> tuple[str, str]:
    """The winner's letter and why, by the best rate of people; a tie or too few events
    falls to the test's tie rule, said so in the reason."""
    metric = test.get_metric_display().lower()
    rate = {f.variant.letter: percent_of(f.events(test.metric), f.sent) for f in figures}
    best = max(figures, key=lambda f: (rate[f.variant.letter], f.events(test.metric)))
    tied = [
        f.variant.letter for f in figures if rate[f.variant.letter] == rate[best.variant.letter]
    ]
    summary = "; ".join(
        f"{f.variant.letter}: {f.events(test.metric)} of {f.sent} ({rate[f.variant.letter]}%)"
        for f in figures
    )
    keep = test.tie_variant
    if best.events(test.metric) < test.min_events:
        return keep, (
            f"Too few {metric} (fewer than {test.min_events} on the best variant): "
            f"the rule keeps variant {keep}. {summary}."
        )
    if len(tied) > 1:
        return keep, (
            f"Tie of {', '.join(tied)} on {metric}: the rule keeps variant {keep}. {summary}."
        )
    return best.variant.letter, f"Variant {best.variant.letter} had the most {metric}. {summary}."


def decide_due(now: datetime | None = None) -> list[int]:
    """The beat job: pick the winner of every test whose wait is over and whose test
    share is sent (not manual ones)."""
    now = now or timezone.now()
    _resume_winners()
    testing = SplitTest.objects.filter(state=SplitTest.State.TESTING).exclude(
        metric=SplitTest.Metric.MANUAL
    )
    # A share still going out under the caps would be judged on part of its people.
    unsent = QueueItem.objects.filter(
        mass_email__split_variant__split_test=OuterRef("pk"),
        status__in=[QueueItem.Status.PENDING, QueueItem.Status.SENDING],
        is_test=False,
    )
    testing = testing.exclude(Exists(unsent))
    due = [t.pk for t in testing.only("pk", "split_at", "wait") if t.decide_at <= now]
    return [pk for pk in due if decide(pk, now=now)]


def _resume_winners() -> int:
    """A tick completing the winner while its rest was moved in (its completion check
    ran on a snapshot without them) left it Complete with pending items: back to sending."""
    pending = QueueItem.objects.filter(
        mass_email=OuterRef("pk"), status=QueueItem.Status.PENDING, is_test=False
    )
    return (
        MassEmail.objects.filter(
            status=Status.COMPLETE, split_variant__split_test__state=SplitTest.State.DECIDED
        )
        .filter(Exists(pending))
        .update(status=Status.IN_PROCESS)
    )


def decide(test_id: int, *, now: datetime | None = None) -> bool:
    """Pick the winner by the test's metric (once: under a row lock, only while testing)."""
    with transaction.atomic():
        test = _testing(test_id)
        if test is None:
            return False
        figures = variant_figures(test)
        letter, reason = choose(test, figures)
        _apply_winner(test, letter, reason, figures, now or timezone.now())
    return True


def pick_winner(test_id: int, letter: str, *, by: str = "", now: datetime | None = None) -> bool:
    """The admin's pick (any metric, while testing)."""
    with transaction.atomic():
        test = _testing(test_id)
        if test is None or not test.variants.filter(letter=letter).exists():
            return False
        reason = f"Variant {letter} picked by hand{f' by {by}' if by else ''}."
        _apply_winner(test, letter, reason, variant_figures(test), now or timezone.now())
    return True


def _testing(test_id: int) -> SplitTest | None:
    return (
        SplitTest.objects.select_for_update()
        .filter(pk=test_id, state=SplitTest.State.TESTING)
        .first()
    )


def _apply_winner(
    test: SplitTest, letter: str, reason: str, figures: list[VariantFigures], now: datetime
) -> None:
    """Move the parent's held items to the winner's mass email, which sends them."""
    for f in figures:
        f.variant.decided_sent, f.variant.decided_events = f.sent, f.events(test.metric)
        f.variant.save(update_fields=["decided_sent", "decided_events"])
    winner = test.variants.get(letter=letter).mass_email
    rest = _held(test).update(mass_email_id=winner.pk)
    if rest:
        # A finished (or still sending) winner sends again; one paused or canceled by
        # the admin stays so.
        MassEmail.objects.filter(
            pk=winner.pk, status__in=[Status.IN_PROCESS, Status.COMPLETE]
        ).update(status=Status.IN_PROCESS)
    MassEmail.objects.filter(pk=test.parent_id, status=Status.TESTING).update(
        status=Status.COMPLETE
    )
    test.state, test.winner, test.decision, test.decided_at = (
        SplitTest.State.DECIDED,
        letter,
        f"{reason} {rest} remaining message(s) go to variant {letter}.",
        now,
    )
    test.save(update_fields=["state", "winner", "decision", "decided_at"])
    # The variants waited for the decision to complete: the others are done now, and so
    # is the winner when no rest was left for it.
    variants = test.variants.values_list("mass_email_id", flat=True)
    MassEmail.objects.filter(pk__in=variants).complete_finished()


def split_test_of(mass_email: MassEmail) -> SplitTest | None:
    """The test a mass email is the parent or a variant of (for its page)."""
    return (
        SplitTest.objects.filter(Q(parent=mass_email) | Q(variants__mass_email=mass_email))
        .select_related("parent")
        .first()
    )
