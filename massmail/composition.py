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

import html
import re
import secrets
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import TYPE_CHECKING

import html2text
from bs4 import BeautifulSoup
from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from massmail import verp
from massmail.dkim import DkimSigner, configured_signer
from massmail.mime import (
    CRLF,
    SOFT_BREAK,
    ascii_address,
    crlf,
    date_header,
    domain_of,
    mailbox,
    qp,
    unstructured,
)
from massmail.models import MassEmail, OutboundSettings, QueueItem
from massmail.placeholders import (
    OPEN_PIXEL_KEY,
    OPT_OUT_KEYS,
    TRAP_KEY,
    CompositionError,
    keys_in,
    resolver_for,
    split,
    validate_mass_email,
)
from massmail.recipients import RecipientContext

if TYPE_CHECKING:
    from campaigns.models import Campaign, EmailTemplate


_CELL_END = re.compile(r"(</t[dh]\s*>)", re.IGNORECASE)
_BLANK_RUNS = re.compile(r"\n{3,}")


# -- the template split into literals and placeholders -----------------------------------


class _Body:
    """One body (HTML or text): literal segments, keys, and the literals QP-encoded."""

    def __init__(self, text: str) -> None:
        self.literals, self.keys = split(crlf(text))
        self.encoded_literals = tuple(qp(literal) for literal in self.literals)

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
    return crlf(html.escape(value))


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
        # RFC 8058: one-click unsubscribe is for HTTPS URIs only; over http the
        # header would invite a POST that a receiver must not make.
        self.one_click = self.list_unsubscribe and self.site_url.startswith("https://")
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
        self.domain = domain_of(address)
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
        resolver = resolver_for(bodies, self.campaign, self.site_url)
        getters = {key: resolver.getter(key, in_subject=True) for key in self.subject_keys}
        for key in (*self.html.keys, *self.text.keys):
            getters.setdefault(key, resolver.getter(key))
        if self.list_unsubscribe:
            getters.setdefault("optOutUrl", resolver.getter("optOutUrl"))
        self.getters = getters

    def _static_headers(
        self, mass_email: MassEmail, campaign: Campaign, outbound: OutboundSettings
    ) -> None:
        from_header, from_readable = mailbox(self.from_name, self.from_address)
        head = [f"From: {from_header}"]
        readable = {"From": from_readable}
        if self.reply_to:
            reply_header, reply_readable = mailbox(self.reply_to[1], self.reply_to[0])
            head.append(f"Reply-To: {reply_header}")
            readable["Reply-To"] = reply_readable
        list_id = outbound.list_id or self._default_list_id(campaign)
        tail = []
        if self.one_click:
            tail.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        tail.append(unstructured("List-Id", list_id).rstrip(CRLF))
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
        text_values = {key: crlf(values[key]) for key in self.text.keys}
        uid = str(item.uid)
        message_id = f"q-{uid}.{self.nonce}@{self.domain}"
        to_header, to_readable = mailbox(context.name, context.address)
        date = date_header()
        lines = [
            f"To: {to_header}\r\n",
            unstructured("Subject", subject),
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
                *self.text.encoded({key: qp(value) for key, value in text_values.items()}),
                self.mime_middle,
                *self.html.encoded({key: qp(value) for key, value in html_values.items()}),
                self.mime_end,
            ]
        )
        if self.dkim is not None:
            raw = self.dkim.sign(raw)
        return Rendered(
            raw=raw,
            mail_from=self.envelope_sender(item),
            rcpt_to=ascii_address(context.address),
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
    return PreparedMessage(mass_email, outbound or OutboundSettings.load(), is_test=is_test)
