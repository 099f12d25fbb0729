"""The reason table: one vocabulary, one consequence per reason, one decision order."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from bounces.models import BounceEvent
from bounces.reasons import CONSEQUENCES, HARD_REASONS, Reason, normalise, reason_for
from massmail.sending import record_hard_bounce
from targets.models import EmailAddress
from tests.factories import make_queue_item


def test_every_reason_has_one_consequence_and_only_address_reasons_are_hard() -> None:
    assert set(CONSEQUENCES) == set(Reason.values)
    assert HARD_REASONS == {
        Reason.USER_UNKNOWN,
        Reason.MAILBOX_DISABLED,
        Reason.HOST_UNKNOWN,
        Reason.HAS_MOVED,
        Reason.NOT_ACCEPTED,
    }


@pytest.mark.parametrize(
    "status, text, stage, expected",
    [
        # A decisive status subject beats the words.
        ("5.2.2", "552 5.2.2 user unknown", "", ("mailbox full", "soft")),
        ("5.3.4", "552 5.3.4 no such user", "rcpt", ("message too big", "soft")),
        # Block, content and authentication words beat a 5.1.x or 5.7.1 address status.
        ("5.1.1", "550 5.1.1 blocked by Spamhaus", "rcpt", ("policy", "soft")),
        (
            "5.7.1",
            "550 5.7.1 user unknown - message looks like spam",
            "",
            ("content rejected", "soft"),
        ),
        ("5.1.1", "550 5.1.1 DMARC policy rejection", "", ("authentication", "soft")),
        # An address status is hard; a transient class never is.
        ("5.1.1", "550 5.1.1 no such mailbox", "", ("user unknown", "hard")),
        ("4.1.1", "450 4.1.1 user unknown", "rcpt", ("user unknown", "soft")),
        # Generic statuses: hard with a directory or provider wording, or at RCPT ...
        ("5.0.0", "550 unknown or illegal alias: a@b.example", "", ("user unknown", "hard")),
        (
            "5.5.0",
            "550 5.5.0 Requested action not taken: mailbox unavailable",
            "",
            ("user unknown", "hard"),
        ),
        ("5.0.0", "550 User unknown", "rcpt", ("user unknown", "hard")),
        ("5.4.4", "Host or domain name not found", "", ("host unknown", "hard")),
        ("5.0.0", "550 5.0.0 account disabled", "", ("mailbox disabled", "hard")),
        # ... but a bare "User unknown", or one after DATA, is what filters say.
        ("5.0.0", "550 User unknown", "", ("content rejected", "soft")),
        ("5.1.1", "550 5.1.1 User unknown", "data", ("user unknown", "hard")),
        ("5.0.0", "550 No such user", "data", ("content rejected", "soft")),
        # Nothing said: the status subject, else undefined.
        ("5.4.0", "", "", ("network error", "soft")),
        ("", "", "", ("undefined", "soft")),
    ],
)
def test_reason_for_decides_in_order(status, text, stage, expected) -> None:
    judgement = reason_for(status, text, stage)
    assert (judgement.reason, judgement.verdict) == expected
    assert judgement.is_hard == (expected[1] == "hard")


def test_a_provider_flag_of_temporary_makes_any_reason_soft() -> None:
    judgement = reason_for("5.1.1", "550 5.1.1 user unknown", "rcpt", permanent=False)
    assert (judgement.reason, judgement.verdict) == ("user unknown", "soft")


@pytest.mark.parametrize(
    "stored, expected",
    [
        ("userunknown", "user unknown"),
        ("user unknown", "user unknown"),
        ("User Unknown", "user unknown"),
        ("hostunknown", "host unknown"),
        ("mailboxfull", "mailbox full"),
        ("filtered", "content rejected"),
        ("blocked", "policy"),
        ("timed_out", "expired"),
        ("other", "undefined"),
        ("something new", "undefined"),
    ],
)
def test_old_spellings_normalise_to_the_vocabulary(stored: str, expected: str) -> None:
    assert normalise(stored) == expected


@pytest.mark.django_db
def test_the_data_migration_rewrites_stored_reasons() -> None:
    migration = importlib.import_module("bounces.migrations.0008_reasons_vocabulary")
    old = ["userunknown", "user unknown", "mailboxfull", "blocked", "other", ""]
    for i, reason in enumerate(old):
        BounceEvent.objects.create(
            source="imap", address=f"a{i}@example.org", verdict="soft", reason=reason
        )

    migration.normalise_reasons(apps, None)

    assert list(BounceEvent.objects.order_by("address").values_list("reason", flat=True)) == [
        "user unknown",
        "user unknown",
        "mailbox full",
        "policy",
        "undefined",
        "undefined",
    ]
    assert set(BounceEvent.objects.values_list("reason", flat=True)) <= set(Reason.values)


@pytest.mark.django_db
def test_an_smtp_time_refusal_is_judged_by_the_same_table() -> None:
    unknown, blocked = make_queue_item(), make_queue_item()
    record_hard_bounce(
        unknown, "RCPT: 550 5.1.1 <x@example.org>: Recipient address rejected: User unknown"
    )
    record_hard_bounce(
        blocked, "RCPT: 550 5.1.1 Service refused: client host blocked using Spamhaus"
    )

    assert BounceEvent.objects.get(queue_item=unknown).reason == "user unknown"
    assert EmailAddress.objects.get(pk=unknown.email_address_id).invalid
    event = BounceEvent.objects.get(queue_item=blocked)
    assert (event.verdict, event.reason) == ("soft", "policy")
    assert not EmailAddress.objects.get(pk=blocked.email_address_id).invalid
