"""Read a returned message and say, per recipient, whether the address is dead.

Pipeline: parse the raw bytes leniently -> split the message into sections (notice
text, RFC 3464 delivery-status, RFC 5965 feedback report, returned original) ->
per-recipient failures (DSN fields, else the MTA's text format, else flufl.bounce's
scanners) -> a reason from the diagnostic text and the RFC 3463 status -> hard/soft.

Precision beats recall here: a hard verdict marks the address invalid for ever, so
only "the address does not exist / is closed" with a permanent code is hard; every
policy, spam, reputation, quota, size, network or timeout failure is soft, because it
says nothing final about the address.
"""

from __future__ import annotations

import email
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import Message

from bounces.reasons import Reason, reason_for, reason_from_text
from bounces.reasons import Verdict as Kind

log = logging.getLogger(__name__)

HARD, SOFT, COMPLAINT, DELAYED = Kind.HARD, Kind.SOFT, Kind.COMPLAINT, Kind.DELAYED
DIAGNOSTIC_LIMIT = 500

# Bounces come from anyone (the bounce address is every message's Return-Path), so
# the work per message is bounded: longer lines are cut, bigger parts truncated,
# parts and recipients beyond these counts ignored, and a message still not read
# within the time budget is reported unreadable.
# RFC 5322 allows 998 characters a line, but Amazon SES mails its JSON notification
# as one line of several kilobytes.
LINE_LIMIT = 20_000
PART_LIMIT = 64_000  # characters of text kept from one part
PART_COUNT_LIMIT = 50
RECIPIENT_LIMIT = 50
RAW_LIMIT = 512_000  # bytes of the message read at all: notices and headers come first
LINE_COUNT_LIMIT = 20_000
FLUFL_LIMIT = 64_000  # flufl.bounce tries its ~50 patterns on every line, in Python
FLUFL_LINE_COUNT_LIMIT = 2_000
TIME_BUDGET_SECONDS = 10.0


@dataclass(frozen=True)
class Verdict:
    address: str
    verdict: str
    status: str
    reason: str
    diagnostic: str = ""


@dataclass
class Report:
    recipients: list[Verdict]
    queue_item_id: str | None = None
    verp_token: str | None = None
    message_id: str | None = None
    is_auto_reply: bool = False
    # Why the message could not be read within the limits; empty when it was read.
    unreadable: str = ""


class OverBudget(Exception):
    """Classifying one message took longer than its time budget."""


_budget = threading.local()


def classify(raw: bytes, time_budget: float = TIME_BUDGET_SECONDS) -> Report:
    """Classify one returned message; never raises (a mailbox scan must go on)."""
    _budget.deadline = time.monotonic() + time_budget
    try:
        return _classify(raw)
    except OverBudget:
        log.warning("bounce classification gave up after %s s", time_budget)
        return Report(recipients=[], unreadable=f"not read within {time_budget:g} s")
    except Exception:
        log.exception("bounce classification failed")
        return Report(recipients=[])
    finally:
        _budget.deadline = None


def _check_budget() -> None:
    deadline = getattr(_budget, "deadline", None)
    if deadline is not None and time.monotonic() >= deadline:
        raise OverBudget


# --------------------------------------------------------------------------- parsing

# Bounded like RFC 5321's limits (64-character local part, 63-character labels): an
# unbounded local part makes every search quadratic on a long run without "@".
ADDRESS_RE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+"
)
VERP_RE = re.compile(r"\+bounce-([A-Za-z0-9_.:-]+)@", re.IGNORECASE)
ENHANCED_STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
SMTP_REPLY_RE = re.compile(r"(?<![\d.#-])([45][0-5]\d)(?:[ ,-]|$)", re.MULTILINE)
RETURNED_TYPES = frozenset(
    {
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/global-headers",
        "message/partial",
    }
)
DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
# Local parts of role addresses that appear in notice text but never as the recipient.
ROLE_LOCAL_PARTS = frozenset({"mailer-daemon", "mail-daemon", "hostmaster", "noc"})


def _parse(raw: bytes) -> Message:
    # Bounces arrive with any line ending; the parser only splits headers on \n.
    data = bytes(raw or b"")[:RAW_LIMIT].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = data.split(b"\n")
    if len(lines) > LINE_COUNT_LIMIT or max(map(len, lines)) > LINE_LIMIT:
        data = b"\n".join(line[:LINE_LIMIT] for line in lines[:LINE_COUNT_LIMIT])
    # The parser checks every line against every open boundary: nesting costs its square.
    for count, multipart in enumerate(MULTIPART_RE.finditer(data), 1):
        if count > PART_COUNT_LIMIT:
            data = data[: multipart.start()]
            break
    return email.message_from_bytes(data, policy=policy.compat32)


MULTIPART_RE = re.compile(rb"^content-type:[ \t]*multipart/", re.IGNORECASE | re.MULTILINE)


def _limited(text: str) -> str:
    """A part's text within PART_LIMIT, no line longer than LINE_LIMIT (decoded parts)."""
    text = text[:PART_LIMIT]
    lines = text.split("\n")
    if max(map(len, lines)) > LINE_LIMIT:
        text = "\n".join(line[:LINE_LIMIT] for line in lines)
    return text


def _decode(payload: bytes, charset: str | None) -> str:
    try:
        return payload.decode(charset or "utf-8", errors="replace")
    except (LookupError, TypeError):
        return payload.decode("utf-8", errors="replace")


def _part_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):
        # The parser turns delivery-status blocks into header-only messages.
        subs = [sub for sub in payload[:PART_COUNT_LIMIT] if isinstance(sub, Message)]
        return _limited("\n\n".join(_headers_text(sub) for sub in subs))
    body = part.get_payload(decode=True)
    if isinstance(body, bytes):
        return _limited(_decode(body[: PART_LIMIT * 4], part.get_content_charset()))
    return _limited(str(payload or ""))


def _headers_text(msg: Message) -> str:
    return _limited("\n".join(f"{name}: {_header_str(value)}" for name, value in msg.items()))


def _header_str(value: object) -> str:
    # compat32 may hand back Header objects for undecodable 8-bit values.
    return str(value) if not isinstance(value, str) else value


def _header(msg: Message, name: str) -> str:
    try:
        return _limited(" ".join(_header_str(v) for v in (msg.get_all(name) or [])))
    except Exception:
        return ""


@dataclass
class Sections:
    """The parts of a returned message, by role."""

    notice: list[str] = field(default_factory=list)
    dsn: list[str] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    returned: list[Message] = field(default_factory=list)
    returned_text: list[str] = field(default_factory=list)
    parts_seen: int = 0


def _sections(msg: Message) -> Sections:
    sections = Sections()
    html: list[str] = []
    _visit(msg, sections, html)
    if not sections.notice and html:
        sections.notice = [re.sub(r"<[^<>]*>", " ", h) for h in html]
    _split_inline_returned(sections)
    return sections


def _visit(part: Message, sections: Sections, html: list[str]) -> None:
    _check_budget()
    sections.parts_seen += 1
    if sections.parts_seen > PART_COUNT_LIMIT:
        return
    ctype = part.get_content_type()
    if ctype in DSN_TYPES:
        sections.dsn.append(_part_text(part))
    elif ctype == "message/feedback-report":
        sections.feedback.append(_part_text(part))
    elif ctype in RETURNED_TYPES:
        sections.returned.extend(_returned_messages(part))
        del sections.returned[PART_COUNT_LIMIT:]
    elif part.is_multipart():
        for sub in part.get_payload():
            if isinstance(sub, Message):
                _visit(sub, sections, html)
    elif part.get_content_maintype() == "multipart":
        # A multipart whose boundary never occurs: the parser keeps the body as one string.
        sections.notice.append(_part_text(part))
    elif ctype == "text/html":
        html.append(_part_text(part))
    elif part.get_content_maintype() in ("text", "message") or not part.get_content_type():
        sections.notice.append(_part_text(part))


def _returned_messages(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [m for m in payload[:PART_COUNT_LIMIT] if isinstance(m, Message)]
    return [email.message_from_string(_part_text(part).lstrip(), policy=policy.compat32)]


# A line announcing that the original message (or its headers) follows.
# One line each; possessive runs (*+) so a long run of "=" or blanks is read once.
RETURNED_MARKER_RE = re.compile(
    r"^[ \t>|*=_-]*+(?:"
    r".*\bcopy of (?:the|your) (?:original )?message\b"
    r"|(?:original|returned|undelivered|unsent) (?:message|mail)(?: headers)?"
    r"(?: follows| below| is attached)?"
    r"|.*\b(?:original |returned )?message (?:headers|text) follows?\b"
    r"|.*\bheaders? of the (?:original |returned )?message\b"
    r"|content-type: message/rfc822"
    r")[ \t.:*=_|-]*+$",
    re.IGNORECASE | re.MULTILINE,
)
HEADER_LINE_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*): ", re.MULTILINE)
MESSAGE_HEADER_RE = re.compile(
    r"^(?:Received|Return-Path|Delivered-To|Message-I[Dd]|From|To|Subject|Date|MIME-Version|"
    r"X-[A-Za-z0-9-]+|DKIM-Signature|Content-Type): ",
)


def _split_inline_returned(sections: Sections) -> None:
    """Text bounces paste the original after a marker line; keep it apart from the notice."""
    notices = []
    for text in sections.notice:
        cut = _returned_start(text)
        notices.append(text[:cut])
        if cut < len(text):
            sections.returned_text.append(text[cut:])
    sections.notice = notices


def _returned_start(text: str) -> int:
    starts = [len(text)]
    marker = RETURNED_MARKER_RE.search(text)
    if marker:
        starts.append(marker.start())
    block = _header_block_start(text)
    if block is not None:
        starts.append(block)
    return min(starts)


def _header_block_start(text: str) -> int | None:
    # Three message header lines in a row mean the pasted original has begun.
    lines = text.split("\n")
    offset = 0
    for i, line in enumerate(lines):
        if i % 200 == 0:
            _check_budget()
        window = [ln for ln in lines[i : i + 6] if not ln[:1].isspace()][:3]
        if len(window) == 3 and all(MESSAGE_HEADER_RE.match(ln.lstrip()) for ln in window):
            return offset
        offset += len(line) + 1
    return None


# ------------------------------------------------------------------------ identifiers


def _queue_item_id(msg: Message, sections: Sections) -> str | None:
    for returned in sections.returned:
        value = _header(returned, "X-Queue-Item-Id").strip()
        if value:
            return value.split()[0]
    found = re.search(r"^[ \t]*X-Queue-Item-Id:[ \t]*(\S+)", _body_text(msg, sections), re.I | re.M)
    return found.group(1) if found else None


def _message_id(msg: Message, sections: Sections) -> str | None:
    for returned in sections.returned:
        value = _header(returned, "Message-ID").strip()
        if value:
            return value.split()[0].strip("<>")
    found = re.search(
        r"^[ \t]*Message-I[Dd]:[ \t]*<?([^>\s]+)>?", "\n".join(sections.returned_text), re.M
    )
    return found.group(1) if found else None


def _verp_token(msg: Message, dsn_blocks: list[dict[str, str]]) -> str | None:
    candidates = [_header(msg, h) for h in ("To", "Delivered-To", "X-Original-To", "Envelope-To")]
    candidates += [b.get("original-envelope-id", "") for b in dsn_blocks]
    for value in candidates:
        found = VERP_RE.search(value)
        if found:
            return found.group(1)
    return None


def _body_text(msg: Message, sections: Sections) -> str:
    parts = sections.notice + sections.returned_text
    parts += [_headers_text(m) for m in sections.returned]
    return "\n".join(parts)


# ----------------------------------------------------------------------- DSN fields


def _field_blocks(text: str) -> list[dict[str, str]]:
    """RFC 3464 field groups: blocks of 'Name: value' lines separated by blank lines."""
    blocks = []
    for chunk in re.split(r"\n[ \t]*\n", text.replace("\r", "")):
        _check_budget()
        if len(blocks) > RECIPIENT_LIMIT:  # the per-message block and the recipients'
            break
        unfolded = re.sub(r"\n[ \t]+", " ", chunk)
        fields: dict[str, str] = {}
        for line in unfolded.split("\n"):
            name, sep, value = line.partition(":")
            if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", name.strip()):
                fields.setdefault(name.strip().lower(), value.strip())
        if fields:
            blocks.append(fields)
    return blocks


def _typed_value(value: str) -> str:
    # "rfc822; user@host", "smtp; 550 ..." -> the part after the type.
    kind, sep, rest = value.partition(";")
    if sep and re.fullmatch(r"\s*[A-Za-z0-9-]+\s*", kind):
        return rest.strip()
    return value.strip()


def _address_in(value: str) -> str | None:
    found = ADDRESS_RE.search(_typed_value(value))
    return found.group(0).strip(".").lower() if found else None


@dataclass
class Failure:
    """One recipient as the bounce describes it, before judgement."""

    address: str
    action: str = ""
    status: str = ""
    diagnostic: str = ""
    permanent_hint: bool = False
    context: str = ""  # the notice text around the address: SMTP transcript, command


def _dsn_failures(blocks: list[dict[str, str]], notice: str) -> list[Failure]:
    failures: dict[str, Failure] = {}
    for block in blocks:
        _check_budget()
        final = _address_in(block.get("final-recipient", ""))
        original = _address_in(block.get("original-recipient", ""))
        address = final or original
        if not address or address in failures:
            continue
        diagnostic = _typed_value(block.get("diagnostic-code", ""))
        if not diagnostic and final:
            diagnostic = _context(notice, final)
        if block.get("x-powermta-bouncecategory"):
            # PowerMTA's own judgement of the reply, read by the reason table.
            diagnostic += f" (bounce-category: {block['x-powermta-bouncecategory']})"
        failures[address] = Failure(
            address=address,
            context=_context(notice, final or address),
            action=block.get("action", "").split()[0].lower() if block.get("action") else "",
            status=_status_in(block.get("status", "")),
            diagnostic=diagnostic,
        )
    return list(failures.values())


def _status_in(text: str) -> str:
    found = ENHANCED_STATUS_RE.search(text)
    return ".".join(found.groups()) if found else ""


def _context(text: str, address: str) -> str:
    """The paragraphs of notice text that mention an address: its diagnostic.

    A paragraph holding little but the address ("<a@b>:") is followed by its reason.
    """
    paragraphs = re.split(r"\n[ \t]*\n", text)
    picked: list[str] = []
    for i, paragraph in enumerate(paragraphs):
        _check_budget()
        if address.lower() not in paragraph.lower():
            continue
        others = {a.lower() for a in ADDRESS_RE.findall(paragraph)} - {address.lower()}
        if len(others) > 1 or others and _starts_a_line(paragraph, others):
            # A transcript covering several recipients: keep to this address's lines.
            picked.append(_lines_about(paragraph, address))
            continue
        picked.append(" ".join(paragraph.split()))
        if len(paragraph) - len(address) < 40 and i + 1 < len(paragraphs):
            picked.append(paragraphs[i + 1])
    return " ".join(_unique(picked))


def _starts_a_line(paragraph: str, addresses: set[str]) -> bool:
    """A list of recipients, one per line ("a@b: 550 ..."), rather than prose naming two."""
    starts = {m.lower() for m in LINE_START_ADDRESS_RE.findall(paragraph)}
    return bool(starts & addresses)


LINE_START_ADDRESS_RE = re.compile(r"^[ \t]*<?(" + ADDRESS_RE.pattern + ")", re.MULTILINE)


def _lines_about(paragraph: str, address: str) -> str:
    """The address's own lines: the command before it, the reply lines up to the next address."""
    lines = paragraph.split("\n")
    keep: list[str] = []
    for i, line in enumerate(lines):
        if address.lower() not in line.lower():
            continue
        if i and lines[i - 1].lstrip().startswith(">>>"):
            keep.append(lines[i - 1])
        keep.append(line)
        for following in lines[i + 1 : i + 4]:
            # Only the reply ("<<< ...") or indented continuation belongs to this address.
            if (
                ADDRESS_RE.search(following)
                or not following[:1].isspace()
                and not (following.startswith("<<<"))
            ):
                break
            keep.append(following)
    return " ".join(" ".join(keep).split())


# ------------------------------------------------------------------------ complaints


def _complaints(msg: Message, sections: Sections) -> list[str]:
    reports = sections.feedback + [t for t in sections.notice if _looks_like_arf(t)]
    if not reports and not _is_jmrp(msg, sections) and not _is_abuse_report(msg, sections):
        return []
    # A report may name several recipients, one Original-Rcpt-To line each.
    named = re.findall(
        r"^(?:Original-Rcpt-To|Removal-Recipient):(.*)$", "\n".join(reports), re.I | re.M
    )
    for returned in sections.returned:
        named += [_header(returned, "X-HmXmrOriginalRecipient")]
    addresses = [a for a in (_address_in(v) for v in named) if a]
    if addresses:
        return addresses
    for returned in sections.returned:
        addresses = [a.lower() for a in ADDRESS_RE.findall(_header(returned, "To"))]
        if addresses:
            return addresses
    return []


def _is_jmrp(msg: Message, sections: Sections) -> bool:
    """Microsoft's feedback loop (JMRP): the complained-about message, forwarded whole."""
    if re.match(r"\s*complaint about message from", _header(msg, "Subject"), re.I):
        return True
    return any(_header(m, "X-HmXmrOriginalRecipient") for m in sections.returned)


# Feedback loops and complaint services that do not send RFC 5965 reports (AOL's
# "Client TOS Notification", SpamCop, provider and hosting "abuse report" forwards):
# words a recipient's complaint is reported in, on a message that carries the original.
ABUSE_REPORT_RE = re.compile(
    r"\babuse report\b|\bspam (?:complaint|report)\b|\bcomplaint about (?:a |this |your )?"
    r"(?:e-?mail |message)|\bfeedback[- ]loop\b|\bfbl (?:report|complaint|notification)\b|"
    r"\b(?:reported|marked|flagged|classified) (?:this (?:message|e-?mail) |it )?"
    r"as (?:spam|junk)\b|"
    r"\bclient tos notification\b|\bthis message is brief for your comfort\b|"
    r"\bspamcop\b[^\n]{0,80}\bid:|\bcomplained about\b|\bjunk mail report\b",
    re.I,
)


def _is_abuse_report(msg: Message, sections: Sections) -> bool:
    """A complaint that is not strict ARF: abuse wording and the original attached.

    Not a delivery report: no DSN part, not from a mailer daemon, no bounce subject,
    since a filter's bounce may say a message "was classified as spam".
    """
    if sections.dsn or not (sections.returned or sections.returned_text):
        return False
    subject = _header(msg, "Subject")
    sender = _header(msg, "From") + " " + _header(msg, "Return-Path")
    if BOUNCE_FROM_RE.search(sender) or BOUNCE_SUBJECT_RE.search(subject):
        return False
    if _header(msg, "X-Failed-Recipients").strip():
        return False
    opening = "\n".join(sections.notice)[:2000]
    return bool(ABUSE_REPORT_RE.search(subject) or ABUSE_REPORT_RE.search(opening))


def _looks_like_arf(text: str) -> bool:
    return bool(re.search(r"^Feedback-Type:\s*\S", text, re.I | re.M))


# ------------------------------------------------------------- provider JSON (Amazon SES)


def _ses_notification(sections: Sections) -> dict | None:
    for text in sections.notice:
        start = text.find("{")
        if start < 0 or "notificationType" not in text:
            continue
        try:
            data, _ = json.JSONDecoder().raw_decode(text[start:].replace("\n", ""))
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("Message"), str):
            # Delivered through Amazon SNS: the notification is a JSON string inside.
            data = _json_object(data["Message"])
        if isinstance(data, dict) and "notificationType" in data:
            return data
    return None


def _json_object(text: str) -> dict | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _ses_results(data: dict) -> tuple[list[Failure], list[str]]:
    kind = str(data.get("notificationType", "")).lower()
    if kind == "complaint":
        rcpts = data.get("complaint", {}).get("complainedRecipients", [])
        return [], [str(r.get("emailAddress", "")).lower() for r in rcpts if r.get("emailAddress")]
    if kind != "bounce":
        return [], []
    bounce = data.get("bounce", {})
    permanent = str(bounce.get("bounceType", "")).lower() == "permanent"
    failures = [
        Failure(
            address=str(r.get("emailAddress", "")).lower(),
            action=str(r.get("action", "failed")).lower(),
            status=_status_in(str(r.get("status", ""))),
            diagnostic=str(r.get("diagnosticCode", "")),
            permanent_hint=permanent,
        )
        for r in bounce.get("bouncedRecipients", [])
        if r.get("emailAddress")
    ]
    return failures, []


# -------------------------------------------------------------- text-format bounces

BOUNCE_FROM_RE = re.compile(
    r"mailer-daemon|post_?master|mail delivery|mail administrator|mdaemon|"
    r"mail-?daemon|returned mail|delivery subsystem",
    re.I,
)
BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|undelivered|delivery (?:status notification|failure|failed|report|problem)|"
    r"failure notice|returned mail|mail delivery failed|returned to sender|"
    r"could not be delivered|delivery notification|non[- ]?delivery|nicht zustellbar|"
    r"unzustellbar|message not delivered|mail system error|rejected|bounce|"
    r"permanent error|failed delivery|delivery has failed|warning: could not send",
    re.I,
)


NOTICE_FAILURE_RE = re.compile(
    r"(?:could ?not|couldn't|cannot|can't|was not|wasn't) be delivered to:?\s*<?"
    + ADDRESS_RE.pattern,
    re.IGNORECASE,
)


def _looks_like_bounce(msg: Message, sections: Sections) -> bool:
    if sections.dsn or _header(msg, "X-Failed-Recipients").strip():
        return True
    sender = _header(msg, "From") + " " + _header(msg, "Return-Path")
    if BOUNCE_FROM_RE.search(sender) or BOUNCE_SUBJECT_RE.search(_header(msg, "Subject")):
        return True
    if not _is_auto_reply(msg) and NOTICE_FAILURE_RE.search("\n".join(sections.notice)):
        # Sent from an ordinary address with a subject in another language, but the text
        # says delivery to a named address failed.
        return True
    # A null return path alone is weak: RFC 3834 auto-replies use it too.
    null_sender = re.fullmatch(r"\s*<>\s*", _header(msg, "Return-Path") or "x")
    return bool(null_sender) and not _is_auto_reply(msg)


def _text_failures(msg: Message, sections: Sections) -> list[Failure]:
    notice = "\n".join(sections.notice)
    own = _own_addresses(msg, sections)
    listed = [a.lower() for a in ADDRESS_RE.findall(_header(msg, "X-Failed-Recipients"))]
    addresses = listed or _addresses_in_notice(notice, own) or _returned_recipients(sections)
    addresses = _unique(addresses)[:RECIPIENT_LIMIT]
    # A lone recipient: when the lines naming it give no reason (the reason is printed
    # above the list of addresses, or the list has a label line of its own), the whole
    # notice is its reason.
    whole = " ".join(notice.split()) if len(addresses) == 1 else ""
    failures = []
    for address in addresses:
        context = _context(notice, address)
        diagnostic = context if _says_why(context) or not whole else whole
        if not _says_why(diagnostic):
            context = _attached_transcript(sections, address) or context
            diagnostic = context or diagnostic
        failures.append(Failure(address=address, diagnostic=diagnostic, context=context))
    return failures


def _attached_transcript(sections: Sections, address: str) -> str:
    """The remote server's reply for an address, from a bounce attached to this notice.

    Gateways (virus scanners, relays) report "unable to deliver" and attach the bounce
    they got, whose transcript holds the reason; only text carrying an SMTP reply or
    status counts, so an ordinary returned message naming the address is not read.
    """
    for returned in sections.returned:
        inner = "\n".join(_sections(returned).notice)
        context = _context(inner, address)
        if ENHANCED_STATUS_RE.search(context) and SMTP_REPLY_RE.search(context):
            return context
    return ""


def _says_why(text: str) -> bool:
    """Whether a diagnostic gives a reason: a reply code, a status, or a known phrase."""
    text = _strip_addresses(text)
    return bool(
        ENHANCED_STATUS_RE.search(text) or SMTP_REPLY_RE.search(text) or reason_from_text(text)
    )


# Where text formats name a failed recipient: at the start of a line (qmail, Postfix,
# Exim, Sendmail: "<a@b>:", "  a@b", "<a@b>... reason") or after a recipient label.
RECIPIENT_POSITION_RE = re.compile(
    r"(?:^[ \t]*(?:[245]\d\d[ -])?[<\"']?"
    r"|(?:recipient|address|addressee|user|userid|mailbox|to|for|delivered to|deliver to|"
    r"message to|mail to|send to|rcpt to)(?:\(s\))?(?:[ \t]*:[ \t]*|[ \t]+)[<\"'(]?)"
    r"$",
    re.IGNORECASE,
)
HEADER_LIKE_LINE_RE = re.compile(
    r"^\s*(?:Message-I[Dd]|In-Reply-To|References|Received|From|Date|Subject|"
    r"Return-Path|Reporting-MTA|Remote-MTA|Reply-To|Sender|X-[\w-]+)\s*:",
    re.IGNORECASE,
)


POSITION_WINDOW = 100


def _addresses_in_notice(notice: str, own: set[str]) -> list[str]:
    found = []
    line_start = scanned = 0
    for match in ADDRESS_RE.finditer(notice):
        _check_budget()
        # Only the text just before the address and its line's start say what it is:
        # reading whole lines for every address is quadratic on a line full of them.
        newline = notice.rfind("\n", scanned, match.start())
        line_start, scanned = (newline + 1 if newline >= 0 else line_start), match.start()
        head = notice[line_start : min(match.start(), line_start + POSITION_WINDOW)]
        before = notice[max(line_start, match.start() - POSITION_WINDOW) : match.start()]
        if match.start() - line_start > POSITION_WINDOW:
            before = "\x00" + before  # not the line's start: only a label may match
        if HEADER_LIKE_LINE_RE.match(head) or not RECIPIENT_POSITION_RE.search(before):
            continue
        address = match.group(0).strip(".").lower()
        # Addresses inside URLs (".../?user=a@b") are not recipients.
        if notice[max(0, match.start() - 1) : match.start()] in ("/", "=", "?", ":"):
            continue
        if address in own or address.split("@")[0] in ROLE_LOCAL_PARTS:
            continue
        found.append(address)
    return found


def _returned_recipients(sections: Sections) -> list[str]:
    # Last resort for terse notices ("No valid recipients"): whom the original was for.
    values = [_header(m, "To") for m in sections.returned]
    values += re.findall(r"^To:(.*)$", "\n".join(sections.returned_text), re.I | re.M)[:1]
    return [a.lower() for v in values[:1] for a in ADDRESS_RE.findall(v)]


def _own_addresses(msg: Message, sections: Sections) -> set[str]:
    """The bounce's own and the original sender's addresses: never the failed recipient."""
    # Not Delivered-To / X-Original-To: some MTAs put the failed recipient there.
    headers = ("From", "To", "Return-Path", "Reply-To", "Sender")
    values = [_header(msg, h) for h in headers]
    for returned in sections.returned:
        values += [_header(returned, h) for h in ("From", "Return-Path", "Sender", "Reply-To")]
    for text in sections.returned_text:
        values += re.findall(r"^(?:From|Return-Path|Sender|Reply-To):(.*)$", text, re.I | re.M)
    return {a.lower() for v in values for a in ADDRESS_RE.findall(v)}


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _flufl_input(msg: Message) -> Message:
    """The start of the message: flufl.bounce reads every line, and is slow per line."""
    lines = msg.as_bytes()[:FLUFL_LIMIT].split(b"\n")[:FLUFL_LINE_COUNT_LIMIT]
    return email.message_from_bytes(b"\n".join(lines), policy=policy.compat32)


def _flufl_failures(msg: Message, sections: Sections) -> list[Failure]:
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(_flufl_input(msg))
    except Exception:
        return []
    notice = "\n".join(sections.notice)
    failures = []
    for raw_address in sorted(permanent | temporary)[:RECIPIENT_LIMIT]:
        _check_budget()
        address = raw_address.decode("utf-8", "replace").lower()
        failures.append(
            Failure(
                address=address,
                diagnostic=_context(notice, address),
                context=_context(notice, address),
                permanent_hint=raw_address in permanent,
            )
        )
    return failures


def _strip_addresses(text: str) -> str:
    # Local parts like "spam-trap@" or domains like "blocked.example" must not trigger phrases.
    return ADDRESS_RE.sub(" ", re.sub(r"https?://\S+", " ", text))


# ------------------------------------------------------------------------ judgement

TRANSIENT_TEXT_RE = re.compile(
    r"will (?:be )?retr|will keep trying|still trying|not yet been delivered|"
    r"delivery (?:has been |is )?delayed|temporar|warning: message|"
    r"has not been delivered yet|deferred",
    re.I,
)


def _status(failure: Failure) -> str:
    """The most informative status: an enhanced code in the diagnostic beats a generic X.0.0."""
    from_text = _status_in(failure.diagnostic)
    if failure.status and not failure.status.endswith(".0.0"):
        return failure.status
    if from_text:
        return from_text
    reply = SMTP_REPLY_RE.search(failure.diagnostic)
    if failure.status:
        return failure.status
    return f"{reply.group(1)[0]}.0.0" if reply else ""


ADDRESS_SUBJECTS = frozenset({"1.1", "1.2"})

# A warning that delivery is still being retried (Postfix, Exim, Sendmail, Exchange
# word it so), as opposed to a final failure after retries ran out.
DELAY_TEXT_RE = re.compile(
    r"will (?:be )?retr(?:y|ied)|will keep trying|still trying|not yet been delivered|"
    r"has not been delivered yet|delivery (?:has been |is )?delayed|"
    r"delay(?:ed)? (?:warning|notification)|kept in the queue|do not need to re-?send|"
    r"warning: message still undelivered|delivery attempts will continue|"
    r"no action is required on your part|still being retried",
    re.I,
)
FINAL_TEXT_RE = re.compile(
    r"giving up|gave up|given up|will not be retried|no further (?:attempts|retries)|"
    r"failed permanently|delivery has failed|has been deleted|permanent (?:error|failure)",
    re.I,
)


def _is_delay(failure: Failure, status: str, notice: str) -> bool:
    """RFC 3464: a delayed action is never final; text warnings say so in words."""
    if failure.action == "delayed":
        return True
    if failure.action == "failed" or status.startswith("5") or failure.permanent_hint:
        return False
    text = failure.diagnostic + "\n" + notice
    return bool(DELAY_TEXT_RE.search(text)) and not FINAL_TEXT_RE.search(text)


def _is_permanent(failure: Failure, status: str, notice: str) -> bool:
    if failure.action == "failed" and status.partition(".")[2] in ADDRESS_SUBJECTS:
        # The message came back for good with "no such mailbox/domain", even if the
        # remote server's reply was a 4xx (a 450 from a lookup table, e.g.).
        return True
    if status:
        return status.startswith("5")
    if failure.permanent_hint or failure.action == "failed":
        return True
    return not TRANSIENT_TEXT_RE.search(notice)


# Which SMTP command the remote server was answering when it refused the recipient.
RCPT_STAGE_RE = re.compile(
    # Not a bare "RCPT TO: a@b": some notices list the envelope that way, not the dialogue.
    r"(?:after|in reply to|response to|>>>)\s*RCPT|RCPT TO (?:command|response)|"
    r"\[RCPT_TO\]|SMTP:RCPT|does not like recipient|recipient address rejected",
    re.I,
)
DATA_STAGE_RE = re.compile(
    r"(?:after|in reply to|response to)\s*(?:the )?(?:end of )?DATA|>>> DATA|"
    r"DATA command|after end of data|message body",
    re.I,
)


def _stage(failure: Failure) -> str:
    """The command named nearest to the recipient's address (transcripts list several)."""
    text = failure.diagnostic + "\n" + failure.context
    anchor = max(text.lower().find(failure.address), 0)
    named = [(m.start(), "rcpt") for m in RCPT_STAGE_RE.finditer(text)]
    named += [(m.start(), "data") for m in DATA_STAGE_RE.finditer(text)]
    if not named:
        return ""
    return min(named, key=lambda item: abs(item[0] - anchor))[1]


def _transcript_stage(notice: str, diagnostic: str) -> str:
    """The command a Sendmail-style transcript shows before this diagnostic's reply.

    ">>> DATA" / "<<< 550 5.2.1 <a@b>... User Unknown": the reply is found by its text
    (addresses aside, as the transcript may name the recipient differently).
    """
    reply = _reply_key(diagnostic)
    if not reply:
        return ""
    command = ""
    for line in (line.strip() for line in notice.split("\n")):
        if line.startswith(">>>"):
            command = line[3:].strip().split(" ")[0].upper()
        elif line.startswith("<<<") and _reply_key(line[3:]) == reply:
            return {"RCPT": "rcpt", "DATA": "data"}.get(command, "")
    return ""


def _reply_key(text: str) -> str:
    found = re.search(r"[45]\d\d[ -].*", text)
    return " ".join(_strip_addresses(found.group(0)).lower().split()) if found else ""


def _verdict(failure: Failure, notice: str) -> Verdict:
    _check_budget()
    status = _status(failure)
    if _is_delay(failure, status, notice):
        reason, verdict = Reason.DELAYED, DELAYED
    else:
        stage = _stage(failure) or _transcript_stage(notice, failure.diagnostic)
        permanent = _is_permanent(failure, status, notice)
        judgement = reason_for(status, failure.diagnostic, stage, permanent=permanent)
        reason, verdict = judgement.reason, judgement.verdict
    return Verdict(
        address=failure.address,
        verdict=verdict,
        status=status,
        reason=reason,
        diagnostic=" ".join(failure.diagnostic.split())[:DIAGNOSTIC_LIMIT],
    )


# ------------------------------------------------------------------------ auto-replies

AUTO_REPLY_SUBJECT_RE = re.compile(
    r"out of (?:the )?office|auto(?:matic)?[- ]?(?:reply|response|antwort)|^auto:|"
    r"vacation|away from|abwesen|absence|\baway\b|on leave|congés",
    re.I,
)


def _is_auto_reply(msg: Message) -> bool:
    submitted = _header(msg, "Auto-Submitted").lower()
    if submitted.startswith("auto-replied"):
        return True
    if any(_header(msg, h) for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Response")):
        return True
    if _header(msg, "Precedence").strip().lower() == "auto_reply":
        return True
    return bool(AUTO_REPLY_SUBJECT_RE.search(_header(msg, "Subject")))


# ---------------------------------------------------------------------------- driver

NOT_FAILED_ACTIONS = frozenset({"delivered", "relayed", "expanded"})


def _classify(raw: bytes) -> Report:
    msg = _parse(raw)
    sections = _sections(msg)
    dsn_blocks = [b for text in sections.dsn for b in _field_blocks(text)]
    if not dsn_blocks:
        dsn_blocks = _inline_dsn_blocks(sections)
    report = Report(
        recipients=[],
        queue_item_id=_queue_item_id(msg, sections),
        verp_token=_verp_token(msg, dsn_blocks),
        message_id=_message_id(msg, sections),
    )
    failures, complaints = _failures_and_complaints(msg, sections, dsn_blocks)
    notice = "\n".join(sections.notice)
    report.recipients = [Verdict(a, COMPLAINT, "", "complaint") for a in _unique(complaints)]
    if not complaints:
        failed = [f for f in failures if f.action not in NOT_FAILED_ACTIONS and f.address]
        report.recipients = [_verdict(f, notice) for f in failed]
    report.is_auto_reply = not failures and not complaints and _is_auto_reply(msg)
    return report


def _forwarded_report(sections: Sections) -> tuple[list[Failure], list[str]] | None:
    """A notice wrapping the real DSN as its attached message (gateways re-send it so)."""
    for returned in sections.returned:
        inner = _sections(returned)
        blocks = [b for text in inner.dsn for b in _field_blocks(text)]
        failures = _dsn_failures(blocks, "\n".join(inner.notice))
        if failures:
            return failures, []
    return None


def _inline_dsn_blocks(sections: Sections) -> list[dict[str, str]]:
    # Some MTAs put the RFC 3464 fields in a text/plain part instead of their own part.
    blocks = [b for text in sections.notice for b in _field_blocks(text)]
    return [b for b in blocks if "final-recipient" in b or "original-recipient" in b]


def _failures_and_complaints(
    msg: Message, sections: Sections, dsn_blocks: list[dict[str, str]]
) -> tuple[list[Failure], list[str]]:
    ses = _ses_notification(sections)
    if ses is not None:
        return _ses_results(ses)
    complaints = _complaints(msg, sections)
    if complaints or sections.feedback:
        return [], complaints
    notice = "\n".join(sections.notice)
    failures = _dsn_failures(dsn_blocks, notice)
    if not dsn_blocks:
        forwarded = _forwarded_report(sections)
        if forwarded is not None:
            return forwarded
    if failures or dsn_blocks and not _looks_like_bounce(msg, sections):
        return failures, []
    if not _looks_like_bounce(msg, sections):
        return [], []
    return _text_failures(msg, sections) or _flufl_failures(msg, sections), []
