"""How a portion's messages leave: one connection per portion, errors that say what to do next.

Three transports, chosen once per portion (`transport_for`):

- the group email account's SMTP server, when the mass email's account is marked for mass
  email;
- raw SMTP with the EMAIL_* settings when EMAIL_BACKEND is Django's SMTP backend (the fast
  path: the composed bytes go out as they are, no Django message object per recipient);
- any other Django email backend (django-anymail providers with the queue item id in the
  metadata, locmem in tests); the .eml outbox of the embedded default takes the raw bytes.

Every failure is a `TransportError` whose flags decide the queue item's fate (see
massmail.sending): `permanent` fails the item, `recipient_unknown` also records a hard
bounce, `uncertain` means the server may have taken the message (the item becomes
"delivery unknown", never resent). Temporary failures are told apart by whom they are
about: `server_wide` (the server cannot be reached, or refuses us whatever the recipient:
any refusal at connect or of MAIL FROM) makes the mass email wait and charges nobody;
`domain_throttled` (421 or Gmail's 4.7.28 rate limit at RCPT or DATA) pauses the
recipient's domain and charges nobody; any other 4xx at RCPT or DATA is the recipient's
own and defers that item alone.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.core.mail import get_connection
from django.utils.module_loading import import_string

from massmail.composition import PreparedMessage, Rendered
from massmail.models import QueueItem
from massmail.recipients import RecipientContext

RECIPIENT_STAGES = frozenset({"RCPT", "DATA", "end of DATA"})
SERVER_STAGES = frozenset({"connect", "MAIL FROM"})
RATE_LIMITED = "4.7.28"  # Gmail: "unusual rate of unsolicited mail" from this sender
_ENHANCED_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_LEADING_DOT = re.compile(rb"(?m)^\.")
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def enhanced_status(reply: str) -> str | None:
    """The RFC 3463 enhanced status code in an SMTP reply ("5.1.1"), if it has one."""
    match = _ENHANCED_STATUS.search(reply)
    return match.group(0) if match else None


class TransportError(Exception):
    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        server_wide: bool = False,
        domain_throttled: bool = False,
        recipient_unknown: bool = False,
        uncertain: bool = False,
        connection_lost: bool = False,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.server_wide = server_wide
        self.domain_throttled = domain_throttled
        self.recipient_unknown = recipient_unknown
        self.uncertain = uncertain
        # The connection is gone: the rest of the portion cannot go out on it.
        self.connection_lost = connection_lost
        self.code = code


def error_for_reply(code: int, reply: bytes | str, *, stage: str) -> TransportError:
    """A reply code (and RFC 3463 enhanced status) as a TransportError."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    message = f"{stage}: {code} {text}".strip()
    status = _ENHANCED_STATUS.search(text)
    if stage in SERVER_STAGES:
        # Refused before any recipient was named: about us, never about a recipient.
        return TransportError(message, server_wide=True, code=code, connection_lost=code == 421)
    if 400 <= code < 500:
        about_recipient = stage in RECIPIENT_STAGES
        # (another stage: a backend's reply without one, e.g. Django's SMTP backend)
        rate_limited = enhanced_status(text) == RATE_LIMITED or code == 421
        return TransportError(
            message,
            server_wide=not about_recipient,
            domain_throttled=about_recipient and rate_limited,
            code=code,
            connection_lost=code == 421,
        )
    recipient_unknown = (
        stage == "RCPT" and status is not None and status.group(1, 2) == ("5", "1")
    ) or (stage == "RCPT" and status is None and code in (550, 551, 553))
    return TransportError(message, permanent=True, recipient_unknown=recipient_unknown, code=code)


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    security: str = "none"  # "tls" (implicit), "starttls" or "none"
    username: str = ""
    password: str = ""
    timeout: float = 30

    @classmethod
    def from_settings(cls) -> SmtpServer:
        security = (
            "tls" if settings.EMAIL_USE_SSL else "starttls" if settings.EMAIL_USE_TLS else "none"
        )
        return cls(
            host=settings.EMAIL_HOST,
            port=settings.EMAIL_PORT,
            security=security,
            username=settings.EMAIL_HOST_USER,
            password=settings.EMAIL_HOST_PASSWORD,
            timeout=settings.EMAIL_TIMEOUT or 30,
        )

    @classmethod
    def from_group_account(cls, account) -> SmtpServer:
        return cls(
            host=account.smtp_host,
            port=account.smtp_port,
            security=account.smtp_security,
            username=account.smtp_username,
            password=account.smtp_password,
            timeout=settings.EMAIL_TIMEOUT or 30,
        )


class Transport(Protocol):
    """Hands one composed message to its way out; raises TransportError."""

    def send(
        self,
        rendered: Rendered,
        *,
        prepared: PreparedMessage,
        item: QueueItem,
        context: RecipientContext | None,
    ) -> None: ...

    def close(self) -> None: ...


class SmtpTransport:
    """Prebuilt bytes over one SMTP connection, opened on the first message."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server
        self.smtp: smtplib.SMTP | None = None

    def send(self, rendered: Rendered, **_: object) -> None:
        self.send_raw(rendered.mail_from, [rendered.rcpt_to], rendered.raw)

    def send_raw(self, mail_from: str, rcpt_to: list[str], raw: bytes) -> None:
        smtp = self.smtp or self._connect()
        try:
            self._transaction(smtp, mail_from, rcpt_to, raw)
        except TransportError as error:
            if error.connection_lost:
                self._drop()
            elif not error.uncertain:
                self._reset(smtp)
            raise
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            # Before DATA's final reply nothing was accepted: a plain transient error.
            self._drop()
            raise TransportError(
                f"connection lost: {error}", connection_lost=True, server_wide=True
            ) from error

    def _transaction(
        self, smtp: smtplib.SMTP, mail_from: str, rcpt_to: list[str], raw: bytes
    ) -> None:
        if smtp.has_extn("pipelining"):
            self._envelope_pipelined(smtp, mail_from, rcpt_to)
        else:
            self._envelope(smtp, mail_from, rcpt_to)
        payload = _LEADING_DOT.sub(b"..", raw)
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        try:
            smtp.send(payload + b".\r\n")
            code, reply = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            # The server had the whole message and may have queued it: don't resend.
            self._drop()
            raise TransportError(
                f"connection lost after the message was sent, delivery unknown: {error}",
                uncertain=True,
                connection_lost=True,
            ) from error
        if code != 250:
            raise error_for_reply(code, reply, stage="end of DATA")

    def _envelope(self, smtp: smtplib.SMTP, mail_from: str, rcpt_to: list[str]) -> None:
        # Addresses were validated long before: skip smtplib's per-call address parsing,
        # which cost more CPU than the rest of a message's SMTP dialogue.
        code, reply = smtp.docmd("MAIL", f"FROM:<{mail_from}>")
        if code != 250:
            raise error_for_reply(code, reply, stage="MAIL FROM")
        for address in rcpt_to:
            code, reply = smtp.docmd("RCPT", f"TO:<{address}>")
            if code not in (250, 251):
                raise error_for_reply(code, reply, stage="RCPT")
        code, reply = smtp.docmd("DATA")
        if code != 354:
            raise error_for_reply(code, reply, stage="DATA")

    def _envelope_pipelined(self, smtp: smtplib.SMTP, mail_from: str, rcpt_to: list[str]) -> None:
        """RFC 2920: MAIL, RCPT and DATA in one write, then their replies: one round trip
        instead of three per message (what Postfix's client does too)."""
        commands = [f"MAIL FROM:<{mail_from}>", *(f"RCPT TO:<{a}>" for a in rcpt_to), "DATA"]
        smtp.send("".join(f"{command}\r\n" for command in commands))
        replies = [smtp.getreply() for _ in commands]
        stages = ["MAIL FROM", *(["RCPT"] * len(rcpt_to)), "DATA"]
        expected = [(250,), *([(250, 251)] * len(rcpt_to)), (354,)]
        failure = next(
            (
                error_for_reply(code, reply, stage=stage)
                for (code, reply), stage, ok in zip(replies, stages, expected, strict=True)
                if code not in ok
            ),
            None,
        )
        if failure is None:
            return
        if replies[-1][0] == 354:
            # The server wants a message although the envelope failed: end it empty.
            smtp.send(b".\r\n")
            smtp.getreply()
        raise failure

    def _connect(self) -> smtplib.SMTP:
        server = self.server
        try:
            if server.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    server.host,
                    server.port,
                    timeout=server.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
            smtp.ehlo_or_helo_if_needed()
            if server.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if server.username:
                smtp.login(server.username, server.password)
        except smtplib.SMTPAuthenticationError as error:
            raise TransportError(
                f"SMTP login to {server.host} refused: {error.smtp_code}",
                connection_lost=True,
                server_wide=True,
                code=error.smtp_code,
            ) from error
        except smtplib.SMTPConnectError as error:
            raise error_for_reply(error.smtp_code, error.smtp_error, stage="connect") from error
        except (TimeoutError, smtplib.SMTPException, OSError) as error:
            raise TransportError(
                f"cannot reach SMTP server {server.host}:{server.port}: {error}",
                connection_lost=True,
                server_wide=True,
            ) from error
        self.smtp = smtp
        return smtp

    def _reset(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.close()
            finally:
                self.smtp = None

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._drop()


class OutboxTransport:
    """The embedded default: the composed bytes as .eml files."""

    def __init__(self, backend) -> None:
        self.backend = backend

    def send(self, rendered: Rendered, **_: object) -> None:
        self.backend.write(rendered.raw)

    def close(self) -> None:
        pass


class DjangoBackendTransport:
    """Any other Django email backend, e.g. a django-anymail provider, one connection."""

    def __init__(self) -> None:
        self.connection = get_connection(fail_silently=False)
        self.opened = False

    def send(
        self,
        rendered: Rendered,
        *,
        prepared: PreparedMessage,
        item: QueueItem,
        context: RecipientContext | None,
    ) -> None:
        message = prepared.render_email_message(item, context, rendered=rendered)
        # django-anymail: lets provider webhooks name the queue item.
        message.metadata = {**getattr(message, "metadata", {}), "queue_item_id": str(item.uid)}
        if not self.opened:
            self.connection.open()
            self.opened = True
        try:
            sent = self.connection.send_messages([message])
        except Exception as error:  # backends raise their own types: judge what we can
            raise _error_from_backend(error) from error
        if not sent:
            raise TransportError("the email backend did not send the message")
        # The provider's id for the message (django-anymail): its webhooks name the
        # message by it (Postal, MailerSend send no metadata back), so it is what the
        # queue item records as its Message-ID.
        esp_id = getattr(getattr(message, "anymail_status", None), "message_id", None)
        if esp_id not in (None, ""):
            rendered.message_id = str(esp_id)[:255]

    def close(self) -> None:
        if self.opened:
            self.connection.close()


def _error_from_backend(error: Exception) -> TransportError:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(error.recipients.values()))
        return error_for_reply(code, reply, stage="RCPT")
    if isinstance(error, smtplib.SMTPResponseException):
        return error_for_reply(error.smtp_code, error.smtp_error, stage="SMTP")
    if isinstance(error, OSError) or isinstance(error.__cause__, OSError):
        # The backend's server or API cannot be reached (requests' errors are OSErrors).
        return TransportError(
            f"cannot reach the email backend: {error}", server_wide=True, connection_lost=True
        )
    # django-anymail marks recipients its provider rejected.
    if type(error).__name__ == "AnymailRecipientsRefused":
        return TransportError(f"rejected by the provider: {error}", permanent=True)
    return TransportError(f"{type(error).__name__}: {error}")


def smtp_server_for(mass_email) -> SmtpServer | None:
    """The SMTP server a mass email's messages go through (None: another email backend)."""
    account = mass_email.group_email_account
    if account is not None and account.use_smtp_for_mass_email and account.smtp_host:
        return SmtpServer.from_group_account(account)
    if settings.EMAIL_BACKEND == SMTP_BACKEND:
        return SmtpServer.from_settings()
    return None


def server_key(mass_email) -> str:
    """What a wait for the server is recorded under: host:port, or the email backend."""
    server = smtp_server_for(mass_email)
    return f"{server.host}:{server.port}" if server else settings.EMAIL_BACKEND


def transport_for(mass_email) -> Transport:
    server = smtp_server_for(mass_email)
    if server is not None:
        return SmtpTransport(server)
    backend_class = import_string(settings.EMAIL_BACKEND)
    if hasattr(backend_class, "write"):
        return OutboxTransport(backend_class())
    return DjangoBackendTransport()
