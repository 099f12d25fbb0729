"""How fast the bounce poller drains a mailbox after a big send (real Dovecot, PostgreSQL).

Seeds N queue items, APPENDs one Postfix-style DSN per item (half found by the
X-Queue-Item-Id header, half by VERP; every tenth a soft bounce) into a Dovecot
mailbox, then times in the same run:
- the baseline: classify() alone over the same raw messages (CPU only, no I/O);
- poll_account(): fetch, classify, apply the effects, flag \\Seen, per message;
- a second poll of the same mailbox (nothing new: the UID cursor skips everything).
It also counts SQL statements per message, a figure the machine's load cannot blur.

    .venv/bin/python bench/bench_bounce_poll.py [--messages 1000]
"""

from __future__ import annotations

import argparse
import os
import time

import benchdb

benchdb.use_database("bounces")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bounces import imap  # noqa: E402
from bounces.classify import classify  # noqa: E402
from bounces.models import BounceEvent, GroupEmailAccount, ProcessedMessage  # noqa: E402
from massmail.models import QueueItem  # noqa: E402
from targets.models import EmailAddress  # noqa: E402
from tests.bounce_messages import postfix_dsn, verp_dsn  # noqa: E402
from tests.factories import make_contact, make_mass_email, make_queue_item  # noqa: E402
from tests.fixtures.dovecot import Mailbox, dovecot_server  # noqa: E402


def ensure_database() -> None:
    benchdb.ensure_database()
    call_command("migrate", verbosity=0)


def reset() -> None:
    BounceEvent.objects.all().delete()
    ProcessedMessage.objects.all().delete()
    GroupEmailAccount.objects.all().delete()
    QueueItem.objects.all().delete()
    EmailAddress.objects.filter(address__startswith="bench-").delete()


def messages(count: int) -> list[bytes]:
    mass_email = make_mass_email()
    raws = []
    for n in range(count):
        item = make_queue_item(make_contact(email=f"bench-{n}@example.org"), mass_email)
        if n % 10 == 9:
            raws.append(postfix_dsn(item, status="5.2.2", diagnostic="smtp; 552 5.2.2 Full"))
        else:
            raws.append(postfix_dsn(item) if n % 2 else verp_dsn(item))
    return raws


def timed(label: str, count: int, work) -> float:
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    print(f"{label:<44} {seconds:8.2f} s  {count / seconds:9.0f} msg/s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    count = parser.parse_args().messages
    ensure_database()
    reset()
    raws = messages(count)
    server_fixture = dovecot_server.__wrapped__()
    server = next(server_fixture)
    try:
        mailbox = Mailbox(server.host, server.port, "bench@example.test", server.password)
        client = mailbox.client()
        for raw in raws:
            client.append("INBOX", raw)
        client.logout()
        account = GroupEmailAccount.objects.create(
            name="Bench",
            email_address="bench@example.test",
            imap_host=server.host,
            imap_port=server.port,
            imap_security="none",
            imap_username=mailbox.username,
            imap_password=mailbox.password,
        )
        print(f"{count} DSNs in a Dovecot mailbox, PostgreSQL, {os.cpu_count()} cores")
        baseline = timed("baseline: classify() only", count, lambda: [classify(r) for r in raws])
        result = None

        def poll() -> None:
            nonlocal result
            result = imap.poll_account(account)

        statements = []

        def counted(execute, sql, params, many, context):
            statements.append(1)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counted):
            polled = timed("poll_account(): fetch+classify+apply+flag", count, poll)
        again = timed("second poll (nothing new)", count, lambda: imap.poll_account(account))
        invalid = EmailAddress.objects.filter(address__startswith="bench-", invalid=True).count()
        print(f"result: {result}; invalid addresses: {invalid}")
        print(f"SQL statements per message: {len(statements) / count:.1f}")
        print(f"ratio poll / classify-only: {polled / baseline:.2f}x")
        print(f"ratio second poll / first poll: {again / polled:.3f}x")
    finally:
        try:
            next(server_fixture)
        except StopIteration:
            pass
        reset()


if __name__ == "__main__":
    main()
