"""Composing mass email fast: prepare once per mass email, render per recipient.

`prepare()` does everything that is the same for every recipient: it checks the
placeholders, parses the HTML once (BeautifulSoup) to add the mandatory opt-out
link, the open pixel and a hidden link for machine-hit detection, makes the text
alternative (html2text) with the placeholders still in it, splits subject, HTML
and text into literal segments and placeholder keys, quoted-printable-encodes the
literal segments, and serialises the headers that never change.

`PreparedMessage.render()` then does only lookups, escaping, joins and header
filling: each placeholder value is quoted-printable-encoded on its own and joined
to the pre-encoded literals with soft line breaks ("=\\r\\n"), which is valid QP
(RFC 2045) and keeps every line under 78 characters without re-encoding 20 KB of
HTML per recipient. The bytes are what `email.policy.SMTP` would accept: CRLF line
ends, RFC 2047 encoded non-ASCII headers, multipart/alternative, utf-8.

Django's email classes still serve the Send Test, previews and django-anymail
providers through `render_email_message()`, with the same content.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parseaddr
from typing import TYPE_CHECKING

import html2text
from bs4 import BeautifulSoup
from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from massmail import verp
from massmail.dkim import DkimSigner, configured_signer
from massmail.placeholders import (
    OPEN_PIXEL_KEY,
    OPT_OUT_KEYS,
    TRAP_KEY,
    RecipientContext,
    Resolver,
    context_for,
    keys_in,
    recipient_contexts,
    split,
    template_errors,
)

if TYPE_CHECKING:
    from campaigns.models import Campaign, EmailTemplate
    from massmail.models import MassEmail, OutboundSettings, QueueItem

__all__ = [
    "CompositionError",
    "PreparedMessage",
    "RecipientContext",
    "Rendered",
    "context_for",
    "prepare",
    "recipient_contexts",
    "validate_mass_email",
    "validate_template",
]

CRLF = "\r\n"
SOFT_BREAK = b"=\r\n"
# Folding limit for headers we fold ourselves (RFC 5322 recommends 78).
HEADER_WIDTH = 78
# Characters that force a display name into quotes (RFC 5322 specials).
_SPECIALS = frozenset('()<>[]:;@\\,."')
_CELL_END = re.compile(r"(</t[dh]\s*>)", re.IGNORECASE)
_BLANK_RUNS = re.compile(r"\n{3,}")
# {optOutLink} as an attribute value would put an <a> element inside an attribute.
_LINK_IN_ATTRIBUTE = re.compile(r"=\s*[\"']?\{optOutLink\}")


class CompositionError(ValueError):
    """The mass email cannot be composed; `errors` says why, for a person to fix."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


# -- validation ------------------------------------------------------------------------


def validate_template(template: EmailTemplate, campaign: Campaign | None = None) -> list[str]:
    """Errors for placeholders in the template that would not render; [] when fine.

    With a campaign, {trackingUrl:<id>} must be one of its tracking URLs; without,
    it must exist at all.
    """
    bodies = [template.body_html or "", template.body_text or ""]
    errors = template_errors(template.subject or "", bodies, _resolver(bodies, campaign))
    if _LINK_IN_ATTRIBUTE.search(bodies[0]):
        errors.append('{optOutLink} is a whole link; inside href="..." use {optOutUrl}.')
    return errors


def validate_mass_email(mass_email: MassEmail) -> list[str]:
    """Errors that would make the mass email's messages wrong; [] when fine."""
    campaign = mass_email.campaign
    template = mass_email.email_template
    errors = validate_template(template, campaign)
    if campaign.is_informational:
        used = set(keys_in(template.body_html or "")) | set(keys_in(template.body_text or ""))
        for key in sorted(used & OPT_OUT_KEYS):
            errors.append(
                f"{{{key}}}: informational emails have no unsubscribe page; remove the link."
            )
    return errors


def _resolver(bodies: list[str], campaign: Campaign | None, site_url: str = "") -> Resolver:
    from tracking.models import TrackingUrl

    named = {
        int(key.partition(":")[2])
        for body in bodies
        for key in keys_in(body)
        if key.startswith("trackingUrl:") and key.partition(":")[2].isdigit()
    }
    existing = dict(TrackingUrl.objects.filter(pk__in=named).values_list("pk", "campaign_id"))
    if campaign is None:
        return Resolver(site_url, tracking_urls=existing)
    allowed = [pk for pk, campaign_id in existing.items() if campaign_id == campaign.pk]
    foreign = [pk for pk, campaign_id in existing.items() if campaign_id != campaign.pk]
    return Resolver(site_url, tracking_urls=allowed, foreign_tracking_urls=foreign)


# -- encoding helpers ---------------------------------------------------------------------


def _crlf(text: str) -> str:
    if "\r" in text or "\n" in text:
        return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", CRLF)
    return text


def _qp(text: str) -> bytes:
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


def _encoded_words(text: str, used: int) -> str:
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


def _unstructured(name: str, value: str) -> str:
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
    return f"{name}: {_encoded_words(value, len(name) + 2)}{CRLF}"


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


def _ascii_address(address: str) -> str:
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


def _mailbox(name: str, address: str) -> tuple[str, str]:
    """(header form, readable form) of `Name <address>`."""
    address = _ascii_address(address)
    name = " ".join(name.split())
    if not name:
        return address, address
    if not name.isascii() or "=?" in name:
        return f"{_encoded_words(name, 30)} <{address}>", f"{name} <{address}>"
    if any(char in _SPECIALS for char in name):
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        name = f'"{quoted}"'
    readable = f"{name} <{address}>"
    return readable, readable


def _domain(address: str) -> str:
    domain = address.rpartition("@")[2].strip().lower()
    try:
        return domain.encode("idna").decode() if not domain.isascii() else domain
    except UnicodeError:
        return domain


_date: tuple[int, str] = (-1, "")


def _date_header() -> str:
    global _date
    second, cached = _date
    if second != int(time.time()):
        now = datetime.now(UTC)
        cached = format_datetime(now)
        _date = (int(now.timestamp()), cached)
    return cached


# -- the template split into literals and placeholders -----------------------------------


class _Body:
    """One body (HTML or text): literal segments, keys, and the literals QP-encoded."""

    def __init__(self, text: str) -> None:
        self.literals, self.keys = split(_crlf(text))
        self.encoded_literals = tuple(_qp(literal) for literal in self.literals)

    def join(self, values: dict[str, str]) -> str:
        out = [self.literals[0]]
        for key, literal in zip(self.keys, self.literals[1:], strict=True):
            out.append(values[key])
            out.append(literal)
        return "".join(out)

    def encoded(self, values: dict[str, bytes]) -> list[bytes]:
        out = [self.encoded_literals[0]]
        for key, literal in zip(self.keys, self.encoded_literals[1:], strict=True):
            value = values[key]
            if value:
                out.append(SOFT_BREAK)
                out.append(value)
            if literal:
                out.append(SOFT_BREAK)
                out.append(literal)
        return out


def _html_value(key: str, value: str) -> str:
    if key == "optOutLink":
        return f'<a href="{html.escape(value)}">Unsubscribe</a>'
    return _crlf(html.escape(value))


def _html_additions(prepared: PreparedMessage, html_keys: set[str]) -> list[str]:
    additions = []
    if prepared.mandatory_opt_out and not html_keys & OPT_OUT_KEYS:
        additions.append('<br><br><a href="{optOutUrl}">Unsubscribe</a>')
    if prepared.open_tracking:
        additions.append(
            f'<img src="{{{OPEN_PIXEL_KEY}}}" width="1" height="1" alt="" '
            'style="display:block;border:0;width:1px;height:1px">'
        )
    # Hidden from people (no text, not displayed, not focusable, not announced):
    # whatever fetches it is a link scanner.
    additions.append(
        f'<a href="{{{TRAP_KEY}}}" style="display:none;font-size:0;line-height:0" '
        'aria-hidden="true" tabindex="-1"></a>'
    )
    return additions


def _add_to_html(body_html: str, additions: list[str]) -> str:
    soup = BeautifulSoup(body_html, "html.parser")
    container = soup.body or soup.html or soup
    for fragment in additions:
        container.append(BeautifulSoup(fragment, "html.parser"))
    return str(soup)


def text_from_html(body_html: str) -> str:
    converter = html2text.HTML2Text()
    converter.ignore_images = True
    converter.unicode_snob = True
    converter.ignore_emphasis = True
    # Email layouts are tables: their cells are paragraphs, not data to draw as grids.
    converter.ignore_tables = True
    converter.wrap_links = False
    converter.body_width = 78
    # ...but each cell ends a line, or neighbouring cells run into one word.
    body_html = _CELL_END.sub(r"<br>\1", body_html)
    lines = [line.rstrip() for line in converter.handle(body_html).splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip() + "\n"


# -- the result of rendering --------------------------------------------------------------


@dataclass(slots=True)
class Rendered:
    """One recipient's message: `raw` is what goes to SMTP (DATA), the rest describes it.

    `headers` holds every header except the MIME structure ones, readable (not
    RFC 2047-encoded). `html` and `text` are joined on first access only, so the
    sending hot path never pays for them.
    """

    raw: bytes
    mail_from: str
    rcpt_to: str
    message_id: str
    subject: str
    headers: dict[str, str]
    _bodies: tuple = field(repr=False, default=())
    _html: str | None = field(repr=False, default=None)
    _text: str | None = field(repr=False, default=None)

    @property
    def html(self) -> str:
        if self._html is None:
            html_body, html_values = self._bodies[0], self._bodies[1]
            self._html = html_body.join(html_values)
        return self._html

    @property
    def text(self) -> str:
        if self._text is None:
            text_body, text_values = self._bodies[2], self._bodies[3]
            self._text = text_body.join(text_values)
        return self._text


# -- prepared once per mass email ---------------------------------------------------------


class PreparedMessage:
    """Everything about a mass email's message that does not depend on the recipient."""

    def __init__(
        self, mass_email: MassEmail, outbound: OutboundSettings, *, is_test: bool = False
    ) -> None:
        errors = validate_mass_email(mass_email)
        if errors:
            raise CompositionError(errors)
        self.mass_email = mass_email
        self.campaign = campaign = mass_email.campaign
        self.is_test = is_test
        self.site_url = outbound.effective_site_url
        informational = campaign.is_informational
        self.mandatory_opt_out = not informational and not outbound.disable_mandatory_opt_out_link
        self.list_unsubscribe = self.mandatory_opt_out
        self.open_tracking = outbound.open_tracking and not informational
        self._senders(mass_email, outbound)
        self._bodies(mass_email.email_template)
        self._static_headers(mass_email, campaign, outbound)
        self.dkim: DkimSigner | None = configured_signer()
        # Message-ID's random part: fresh per preparation (so per tick), the same
        # for every render of an item within it, so that render() and
        # render_email_message() name the same message.
        self.nonce = secrets.token_hex(5)

    # -- set-up --

    def _senders(self, mass_email: MassEmail, outbound: OutboundSettings) -> None:
        group = mass_email.group_email_account
        default_name, default_address = parseaddr(settings.DEFAULT_FROM_EMAIL)
        levels = [
            (mass_email.from_address, mass_email.from_name),
            (group.email_address, group.from_name) if group else ("", ""),
            (outbound.from_address, outbound.from_name),
            (default_address, default_name),
        ]
        address, name = next(((a, n) for a, n in levels if a), ("", ""))
        if not address:
            raise CompositionError(
                [
                    "No sender address: set one on the mass email, its group email account, "
                    "the outbound settings or DEFAULT_FROM_EMAIL."
                ]
            )
        self.from_address = address
        self.from_name = mass_email.from_name or name
        self.domain = _domain(address)
        if mass_email.reply_to_address:
            self.reply_to = (mass_email.reply_to_address, mass_email.reply_to_name)
        elif group and group.reply_to_address:
            self.reply_to = (group.reply_to_address, group.reply_to_name)
        else:
            self.reply_to = None
        # Bounces go where someone reads them: the configured bounce address, else
        # the group account's mailbox (the bounce reader scans it), else From.
        group_mailbox = group.email_address if group and group.handles_bounces else ""
        self.bounce_address = outbound.bounce_address or group_mailbox or address
        self.use_verp = outbound.use_verp

    def _bodies(self, template: EmailTemplate) -> None:
        body_text = template.body_text or text_from_html(template.body_html or "")
        html_keys = set(keys_in(template.body_html or ""))
        body_html = _add_to_html(template.body_html or "", _html_additions(self, html_keys))
        if self.mandatory_opt_out and not set(keys_in(body_text)) & OPT_OUT_KEYS:
            body_text = body_text.rstrip() + "\n\n{optOutUrl}\n"
        self.subject_literals, self.subject_keys = split(template.subject or "")
        self.html = _Body(body_html)
        self.text = _Body(body_text)
        bodies = [body_html, body_text]
        resolver = _resolver(bodies, self.campaign, self.site_url)
        getters = {key: resolver.getter(key, in_subject=True) for key in self.subject_keys}
        for key in (*self.html.keys, *self.text.keys):
            getters.setdefault(key, resolver.getter(key))
        if self.list_unsubscribe:
            getters.setdefault("optOutUrl", resolver.getter("optOutUrl"))
        self.getters = getters

    def _static_headers(
        self, mass_email: MassEmail, campaign: Campaign, outbound: OutboundSettings
    ) -> None:
        from_header, from_readable = _mailbox(self.from_name, self.from_address)
        head = [f"From: {from_header}"]
        readable = {"From": from_readable}
        if self.reply_to:
            reply_header, reply_readable = _mailbox(self.reply_to[1], self.reply_to[0])
            head.append(f"Reply-To: {reply_header}")
            readable["Reply-To"] = reply_readable
        list_id = outbound.list_id or self._default_list_id(campaign)
        tail = []
        if self.list_unsubscribe:
            tail.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        tail.append(_unstructured("List-Id", list_id).rstrip(CRLF))
        tail.append("Precedence: bulk")
        if campaign.type in (campaign.Type.NEWSLETTER, campaign.Type.INFORMATIONAL):
            tail += ["Auto-Submitted: auto-generated", "X-Auto-Response-Suppress: AutoReply"]
        tail.append(f"Feedback-ID: {campaign.pk}:{mass_email.pk}:massmail")
        for line in tail:
            name, _, value = line.partition(": ")
            readable[name] = value if name != "List-Id" else " ".join(list_id.split())
        self.readable_static = readable
        self.head = (CRLF.join(head) + CRLF).encode()
        self.tail = (CRLF.join(tail) + CRLF).encode()
        # "=_" never occurs in quoted-printable output, so the boundary cannot
        # appear inside a part.
        boundary = f"=_mm_{secrets.token_hex(12)}"
        part = (
            'Content-Type: text/{}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self.mime_head = (
            f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n'
            f"\r\n--{boundary}\r\n{part.format('plain')}"
        ).encode()
        self.mime_middle = f"\r\n--{boundary}\r\n{part.format('html')}".encode()
        self.mime_end = f"\r\n--{boundary}--\r\n".encode()

    def _default_list_id(self, campaign: Campaign) -> str:
        phrase = "".join(char for char in campaign.name if char not in '<>"\r\n').strip()
        return f"{phrase} <campaign-{campaign.pk}.{self.domain}>"

    # -- per recipient --

    def envelope_sender(self, item: QueueItem) -> str:
        if self.use_verp:
            return verp.verp_address(self.bounce_address, item.uid)
        return self.bounce_address

    def render(self, item: QueueItem, context: RecipientContext) -> Rendered:
        values = {key: getter(item, context) for key, getter in self.getters.items()}
        subject = self._subject(values)
        html_values = {key: _html_value(key, values[key]) for key in self.html.keys}
        text_values = {key: _crlf(values[key]) for key in self.text.keys}
        uid = str(item.uid)
        message_id = f"q-{uid}.{self.nonce}@{self.domain}"
        to_header, to_readable = _mailbox(context.name, context.address)
        date = _date_header()
        lines = [
            f"To: {to_header}\r\n",
            _unstructured("Subject", subject),
            f"Date: {date}\r\nMessage-ID: <{message_id}>\r\nX-Queue-Item-Id: {uid}\r\n",
        ]
        headers = dict(self.readable_static)
        headers.update(
            {"To": to_readable, "Subject": subject, "Date": date, "Message-ID": f"<{message_id}>"}
        )
        headers["X-Queue-Item-Id"] = uid
        if self.list_unsubscribe:
            lines.append(f"List-Unsubscribe: <{values['optOutUrl']}>\r\n")
            headers["List-Unsubscribe"] = f"<{values['optOutUrl']}>"
        raw = b"".join(
            [
                self.head,
                "".join(lines).encode(),
                self.tail,
                self.mime_head,
                *self.text.encoded({key: _qp(value) for key, value in text_values.items()}),
                self.mime_middle,
                *self.html.encoded({key: _qp(value) for key, value in html_values.items()}),
                self.mime_end,
            ]
        )
        if self.dkim is not None:
            raw = self.dkim.sign(raw)
        return Rendered(
            raw=raw,
            mail_from=self.envelope_sender(item),
            rcpt_to=_ascii_address(context.address),
            message_id=message_id,
            subject=subject,
            headers=headers,
            _bodies=(self.html, html_values, self.text, text_values),
        )

    def _subject(self, values: dict[str, str]) -> str:
        literals, keys = self.subject_literals, self.subject_keys
        if not keys:
            return " ".join(literals[0].split())
        out = [literals[0]]
        for key, literal in zip(keys, literals[1:], strict=True):
            out.append(values[key])
            out.append(literal)
        # One line, single spaces: what the folded header unfolds to.
        return " ".join("".join(out).split())

    def render_email_message(
        self,
        item: QueueItem,
        context: RecipientContext,
        *,
        rendered: Rendered | None = None,
        for_anymail: bool | None = None,
    ) -> EmailMultiAlternatives:
        """The same message as a Django email, for Django's and django-anymail's backends.

        Django's SMTP backend uses `from_email` as the envelope sender and the From
        header from `extra_headers`, so the VERP address travels that way. Anymail
        providers handle bounces themselves: there From is `from_email`, no
        envelope sender is set, and `metadata` carries the queue item's uid (the
        provider's webhooks hand it back). DKIM, when configured, applies to the raw
        path only; providers sign with their own keys. Pass `rendered` when the
        caller already has it, to skip rendering twice.
        """
        rendered = rendered or self.render(item, context)
        if for_anymail is None:
            for_anymail = settings.EMAIL_BACKEND.startswith("anymail.")
        # Providers set Date themselves and some refuse it as a custom header.
        skipped = (
            ("To", "Subject", "Reply-To", "Date") if for_anymail else ("To", "Subject", "Reply-To")
        )
        extra = {name: value for name, value in rendered.headers.items() if name not in skipped}
        visible_from = extra.pop("From")
        message = EmailMultiAlternatives(
            subject=rendered.subject,
            body=rendered.text,
            from_email=visible_from if for_anymail else rendered.mail_from,
            to=[rendered.headers["To"]],
            reply_to=[rendered.headers["Reply-To"]] if "Reply-To" in rendered.headers else None,
            headers=extra if for_anymail else {"From": visible_from, **extra},
        )
        message.attach_alternative(rendered.html, "text/html")
        if for_anymail:
            message.metadata = {"queue_item_id": str(item.uid)}
        return message


def prepare(
    mass_email: MassEmail, *, outbound: OutboundSettings | None = None, is_test: bool = False
) -> PreparedMessage:
    """Prepare a mass email's message once; raises CompositionError when it cannot be.

    `is_test` is kept on the result for the caller: a Send Test sends the real
    message, so it changes nothing in the content.
    """
    from massmail.models import OutboundSettings

    return PreparedMessage(mass_email, outbound or OutboundSettings.load(), is_test=is_test)
