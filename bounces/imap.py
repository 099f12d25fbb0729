"""Reading bounces from group email accounts' mailboxes over IMAP.

Per account: lease the account (ticks may overlap), connect, check UIDVALIDITY,
fetch the messages above the remembered UID, classify and apply each, then flag it
seen or move it. A message that is not a bounce is left exactly as it was (never
flagged, moved or deleted); its UID is remembered so it is not read again. One
message that fails is recorded with its raw bytes and skipped. A message the
classifier cannot read within its limits (anyone can mail the bounce address) is
recorded as unreadable and filed away like a bounce, never tried again. Connection and
login failures become the account's last error, shown in the admin.
"""

from __future__ import annotations

import imaplib
import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email.parser import BytesHeaderParser

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from bounces.classify import classify
from bounces.effects import apply_report
from bounces.models import GroupEmailAccount, ProcessedMessage, Security
from config.leases import Lease

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30
FETCH_BATCH = 20
# Longer than any sane poll; a crashed poller's lease simply runs out.
LEASE = timedelta(minutes=10)
POLL_LEASE = Lease("poll_lease_until", LEASE)
# Errors that mean "this mailbox cannot be read now", not a bug in us.
MAILBOX_ERRORS = (IMAPClientError, imaplib.IMAP4.error, OSError, EOFError)


class MailboxError(Exception):
    """A mailbox could not be reached or read; the message says why, for the admin."""


@dataclass
class PollResult:
    account: GroupEmailAccount
    bounces: int = 0
    not_bounces: int = 0
    unreadable: int = 0
    failed: int = 0
    error: str = ""
    skipped: bool = False
    failures: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.skipped:
            return f"{self.account}: skipped, another poll is running"
        if self.error:
            return f"{self.account}: ERROR {self.error}"
        unreadable = f", {self.unreadable} unreadable" if self.unreadable else ""
        return (
            f"{self.account}: {self.bounces} bounce(s), {self.not_bounces} other "
            f"message(s) left in place{unreadable}, {self.failed} failed"
        )


def accounts_to_poll():
    return GroupEmailAccount.objects.filter(active=True, handles_bounces=True).exclude(imap_host="")


def poll_all() -> list[PollResult]:
    return [poll_account(account) for account in accounts_to_poll()]


def poll_account(account: GroupEmailAccount) -> PollResult:
    result = PollResult(account)
    if not _take_lease(account):
        result.skipped = True
        return result
    try:
        with connect(account) as client:
            _poll_folder(client, account, result)
    except MailboxError as error:
        result.error = str(error)
    except MAILBOX_ERRORS as error:
        result.error = describe(error, account)
    except Exception as error:  # a bug or a server quirk: show it, go on with other accounts
        log.exception("polling %s failed", account)
        result.error = f"Unexpected error while reading the mailbox: {error!r}"
    finally:
        _record_outcome(account, result)
    return result


def check_connection(account: GroupEmailAccount) -> str:
    """Log in and count the folder's messages; raises MailboxError saying what failed."""
    try:
        with connect(account) as client:
            info = client.select_folder(account.imap_folder, readonly=True)
    except MailboxError:
        raise
    except MAILBOX_ERRORS as error:
        raise MailboxError(describe(error, account)) from error
    count = info.get(b"EXISTS", 0)
    return (
        f"Connected to {account.imap_host}:{account.imap_port} as {account.imap_username}; "
        f"folder {account.imap_folder!r} holds {count} message(s)."
    )


@contextmanager
def connect(account: GroupEmailAccount) -> Iterator[IMAPClient]:
    where = f"{account.imap_host}:{account.imap_port}"
    context = ssl.create_default_context()
    try:
        client = IMAPClient(
            account.imap_host,
            port=account.imap_port,
            ssl=account.imap_security == Security.TLS,
            ssl_context=context,
            timeout=TIMEOUT_SECONDS,
        )
    except MAILBOX_ERRORS as error:
        raise MailboxError(f"Cannot connect to {where}: {_text(error)}") from error
    try:
        if account.imap_security == Security.STARTTLS:
            client.starttls(context)
        _login(client, account)
        yield client
    finally:
        _close(client)


def _login(client: IMAPClient, account: GroupEmailAccount) -> None:
    try:
        client.login(account.imap_username, account.imap_password)
    except MAILBOX_ERRORS as error:
        raise MailboxError(
            f"Login to {account.imap_host} as {account.imap_username!r} failed: {_text(error)}"
        ) from error


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except MAILBOX_ERRORS:
        try:
            client.shutdown()
        except MAILBOX_ERRORS:
            pass  # the connection is already gone; nothing left to release


def describe(error: BaseException, account: GroupEmailAccount) -> str:
    return f"{account.imap_host}:{account.imap_port}: {_text(error)}"


def _text(error: BaseException) -> str:
    text = str(error).strip()
    # imaplib puts the server's bytes reply into the exception: b'[AUTHENTICATIONFAILED] ...'
    if text[:2] in ("b'", 'b"') and text[-1:] == text[1]:
        text = text[2:-1]
    return text or type(error).__name__


# ---------------------------------------------------------------------------- polling


def _poll_folder(client: IMAPClient, account: GroupEmailAccount, result: PollResult) -> None:
    try:
        info = client.select_folder(account.imap_folder)
    except MAILBOX_ERRORS as error:
        raise MailboxError(f"Cannot open folder {account.imap_folder!r}: {_text(error)}") from error
    uidvalidity = int(info[b"UIDVALIDITY"])
    if account.uidvalidity != uidvalidity:
        # The server renumbered the folder: our UID cursor means nothing any more.
        account.uidvalidity, account.last_uid = uidvalidity, 0
        account.save(update_fields=["uidvalidity", "last_uid"])
    uids = _new_uids(client, account)
    for start in range(0, len(uids), FETCH_BATCH):
        batch = uids[start : start + FETCH_BATCH]
        _extend_lease(account)  # a big backlog may take longer than one lease
        fetched = client.fetch(batch, ["BODY.PEEK[]"])  # PEEK: reading sets no \Seen
        # One commit per batch; only then is anything flagged or moved on the server.
        with transaction.atomic():
            records = [
                _process(account, uid, fetched.get(uid, {}).get(b"BODY[]") or b"", result)
                for uid in batch
            ]
            _remember(records)
            _advance_cursor(account, batch)
        filed = (ProcessedMessage.Outcome.BOUNCE, ProcessedMessage.Outcome.UNREADABLE)
        done = [r.uid for r in records if r.outcome in filed]
        if done:
            _file_away(client, account, done)


def _new_uids(client: IMAPClient, account: GroupEmailAccount) -> list[int]:
    # "n:*" always matches the last message, even below n: filter again.
    found = client.search(["UID", f"{account.last_uid + 1}:*"])
    done = set(
        ProcessedMessage.objects.filter(
            account=account, uidvalidity=account.uidvalidity, uid__in=found
        ).values_list("uid", flat=True)
    )
    return sorted(uid for uid in found if uid > account.last_uid and uid not in done)


def _process(
    account: GroupEmailAccount, uid: int, raw: bytes, result: PollResult
) -> ProcessedMessage:
    headers = BytesHeaderParser().parsebytes(raw)
    record = ProcessedMessage(
        account=account,
        uidvalidity=account.uidvalidity,
        uid=uid,
        message_id=_header(headers, "Message-ID")[:255],
        subject=_header(headers, "Subject")[:255],
    )
    _classify_and_apply(record, raw)
    if record.outcome == ProcessedMessage.Outcome.ERROR:
        result.failures.append(f"UID {uid}: {record.error}")
    _count(result, record.outcome)
    return record


def _classify_and_apply(record: ProcessedMessage, raw: bytes) -> None:
    """Set the record's outcome; a failure keeps the raw message for another try."""
    try:
        report = classify(raw, time_budget=settings.BOUNCE_TIME_BUDGET_SECONDS)
        if report.unreadable:
            record.outcome = ProcessedMessage.Outcome.UNREADABLE
            record.error, record.raw = report.unreadable, b""
            return
        if report.recipients:
            # apply_report works in a savepoint: its failure leaves the batch usable.
            apply_report(report, source="imap", event_key=_event_key(record))
    except Exception as error:  # one bad message must not stop the mailbox
        log.exception("bounce message UID %s of account %s failed", record.uid, record.account_id)
        record.outcome, record.error, record.raw = ProcessedMessage.Outcome.ERROR, repr(error), raw
        return
    record.outcome = (
        ProcessedMessage.Outcome.BOUNCE
        if report.recipients
        else ProcessedMessage.Outcome.NOT_BOUNCE
    )
    record.error, record.raw = "", b""


def process_again(record: ProcessedMessage) -> str:
    """Retry a message whose processing failed, from the raw bytes kept for it."""
    _classify_and_apply(record, bytes(record.raw or b""))
    record.processed_at = timezone.now()
    record.save(update_fields=["outcome", "error", "raw", "processed_at"])
    return record.outcome


def _header(headers, name: str) -> str:
    try:
        return " ".join(str(headers.get(name, "")).split())
    except Exception:  # undecodable 8-bit header: not worth losing the message over
        return ""


def _event_key(record: ProcessedMessage) -> str:
    # The bounce's own Message-ID survives UIDVALIDITY changes and moves between folders.
    if record.message_id:
        return f"mid:{record.message_id}"
    return f"uid:{record.account_id}:{record.uidvalidity}:{record.uid}"


def _remember(records: list[ProcessedMessage]) -> None:
    ProcessedMessage.objects.bulk_create(
        records,
        update_conflicts=True,
        unique_fields=["account", "uidvalidity", "uid"],
        update_fields=["message_id", "subject", "outcome", "error", "raw", "processed_at"],
    )


def _advance_cursor(account: GroupEmailAccount, uids: list[int]) -> None:
    if uids and max(uids) > account.last_uid:
        account.last_uid = max(uids)
        GroupEmailAccount.objects.filter(pk=account.pk).update(last_uid=account.last_uid)


def _count(result: PollResult, outcome: str) -> None:
    if outcome == ProcessedMessage.Outcome.BOUNCE:
        result.bounces += 1
    elif outcome == ProcessedMessage.Outcome.NOT_BOUNCE:
        result.not_bounces += 1
    elif outcome == ProcessedMessage.Outcome.UNREADABLE:
        result.unreadable += 1
    else:
        result.failed += 1


def _file_away(client: IMAPClient, account: GroupEmailAccount, uids: list[int]) -> None:
    """Flag seen, or move to the processed folder (created when missing)."""
    moving = account.after_processing == GroupEmailAccount.AfterProcessing.MOVE
    if not (moving and account.processed_folder):
        client.add_flags(uids, [b"\\Seen"], silent=True)
        return
    folder = account.processed_folder
    if not client.folder_exists(folder):
        client.create_folder(folder)
    if client.has_capability("MOVE"):
        client.move(uids, folder)
        return
    client.copy(uids, folder)
    client.add_flags(uids, [b"\\Seen", b"\\Deleted"], silent=True)
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(uids)  # only these messages, never others marked deleted


# ----------------------------------------------------------------------- account state


def _take_lease(account: GroupEmailAccount) -> bool:
    taken = POLL_LEASE.take(account)
    if taken:
        account.refresh_from_db()
    return bool(taken)


def _extend_lease(account: GroupEmailAccount) -> None:
    POLL_LEASE.renew(account)


def _record_outcome(account: GroupEmailAccount, result: PollResult) -> None:
    now = timezone.now()
    changes: dict = {"poll_lease_until": None}
    if result.error:
        log.warning("bounce mailbox %s: %s", account, result.error)
        changes.update(last_error=result.error, last_error_at=now)
    else:
        changes.update(last_error="", last_error_at=None, last_polled_at=now)
    GroupEmailAccount.objects.filter(pk=account.pk).update(**changes)
    for name, value in changes.items():
        setattr(account, name, value)
