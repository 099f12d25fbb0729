"""Encoders for the raw message bytes: quoted-printable pieces, folded and RFC 2047
encoded headers, mailboxes, the Date header. Byte-for-byte what `email.policy.SMTP`
would accept, without building an email.message object per recipient."""

from __future__ import annotations

import base64
import binascii
import time
from datetime import UTC, datetime
from email.utils import format_datetime

CRLF = "\r\n"
SOFT_BREAK = b"=\r\n"
# Folding limit for headers we fold ourselves (RFC 5322 recommends 78).
HEADER_WIDTH = 78
# Characters that force a display name into quotes (RFC 5322 specials).
_SPECIALS = frozenset('()<>[]:;@\\,."')


def crlf(text: str) -> str:
    if "\r" in text or "\n" in text:
        return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", CRLF)
    return text


def qp(text: str) -> bytes:
    """Quoted-printable for one piece; its last line leaves room for a soft break."""
    if text.isascii() and text.isprintable() and "=" not in text and not text.endswith(" "):
        # Nothing to escape: only cut into lines (most values, and every link).
        if len(text) < 76:
            return text.encode()
        return "=\r\n".join([text[i : i + 75] for i in range(0, len(text), 75)]).encode()
    encoded = binascii.b2a_qp(text.encode(), istext=True)
    # b2a_qp writes soft breaks with a bare LF unless the text's first line ends in CRLF.
    encoded = encoded.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if len(encoded) - encoded.rfind(b"\n") > 75:
        encoded += SOFT_BREAK
    return encoded


def encoded_words(text: str, used: int) -> str:
    """RFC 2047 base64 encoded words, folded, never splitting a UTF-8 character."""
    data = text.encode()
    words, start = [], 0
    room = max(12, (HEADER_WIDTH - used - 12) // 4 * 3)
    while start < len(data):
        end = min(start + room, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1
        words.append(f"=?utf-8?b?{base64.b64encode(data[start:end]).decode()}?=")
        start, room = end, 45
    return (CRLF + " ").join(words)


def unstructured(name: str, value: str) -> str:
    """A whole header line for free text (Subject, List-Id...), folded; runs of
    whitespace (line breaks included) become one space."""
    value = " ".join(value.split())
    line = f"{name}: {value}"
    if value.isascii() and "=?" not in value:
        if len(line) <= HEADER_WIDTH:
            return line + CRLF
        folded = _fold_ascii(name, value)
        if folded:
            return folded
    return f"{name}: {encoded_words(value, len(name) + 2)}{CRLF}"


def _fold_ascii(name: str, value: str) -> str | None:
    """Fold at spaces; the first word stays on the header name's line."""
    words = value.split(" ")
    lines, current = [], f"{name}: {words[0]}"
    for word in words[1:]:
        if len(current) + 1 + len(word) > HEADER_WIDTH:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}"
    lines.append(current)
    if max(map(len, lines)) > 990:
        return None
    return (CRLF + " ").join(lines) + CRLF


def ascii_address(address: str) -> str:
    """The address with an internationalised domain in IDNA form.

    A non-ASCII local part stays UTF-8 and needs an SMTPUTF8 server.
    """
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode()}"
    except UnicodeError:
        return address


def mailbox(name: str, address: str) -> tuple[str, str]:
    """(header form, readable form) of `Name <address>`."""
    address = ascii_address(address)
    name = " ".join(name.split())
    if not name:
        return address, address
    if not name.isascii() or "=?" in name:
        return f"{encoded_words(name, 30)} <{address}>", f"{name} <{address}>"
    if any(char in _SPECIALS for char in name):
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        name = f'"{quoted}"'
    readable = f"{name} <{address}>"
    return readable, readable


def domain_of(address: str) -> str:
    domain = address.rpartition("@")[2].strip().lower()
    try:
        return domain.encode("idna").decode() if not domain.isascii() else domain
    except UnicodeError:
        return domain


_date: tuple[int, str] = (-1, "")


def date_header() -> str:
    global _date
    second, cached = _date
    if second != int(time.time()):
        now = datetime.now(UTC)
        cached = format_datetime(now)
        _date = (int(now.timestamp()), cached)
    return cached
