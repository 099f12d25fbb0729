"""Optional DKIM signing of mass email with dkimpy.

Configured by the DKIM_PRIVATE_KEY_PATH (PEM, PKCS#1 or PKCS#8 RSA), DKIM_SELECTOR
and DKIM_DOMAIN settings; all three set turns signing on for every message the
composer renders on the raw path. The signed headers include List-Unsubscribe and
List-Unsubscribe-Post, as RFC 8058 requires for one-click unsubscribe.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import dkim
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "Feedback-ID",
    "MIME-Version",
    "Content-Type",
)


class DkimSigner:
    def __init__(self, selector: str, domain: str, private_key: bytes) -> None:
        self.selector = selector.encode()
        self.domain = domain.encode()
        self.private_key = private_key
        # Fail at configuration time, not on the first message of a send.
        try:
            dkim.sign(b"From: a@b\r\n\r\n", self.selector, self.domain, private_key)
        except dkim.DKIMException as error:
            raise ImproperlyConfigured(f"DKIM private key unusable: {error}") from error

    def signature(self, raw: bytes, headers: tuple[str, ...] = SIGNED_HEADERS) -> bytes:
        """The DKIM-Signature header line(s), CRLF-terminated, to put before `raw`."""
        return dkim.sign(
            raw,
            self.selector,
            self.domain,
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[name.encode() for name in headers],
            linesep=b"\r\n",
        )

    def sign(self, raw: bytes, headers: tuple[str, ...] = SIGNED_HEADERS) -> bytes:
        return self.signature(raw, headers) + raw


def configured_signer() -> DkimSigner | None:
    """The signer the settings describe, or None when DKIM is not configured."""
    path, selector, domain = (
        settings.DKIM_PRIVATE_KEY_PATH,
        settings.DKIM_SELECTOR,
        settings.DKIM_DOMAIN,
    )
    if not (path or selector or domain):
        return None
    if not (path and selector and domain):
        raise ImproperlyConfigured(
            "DKIM needs all of DKIM_PRIVATE_KEY_PATH, DKIM_SELECTOR and DKIM_DOMAIN."
        )
    return _signer(path, selector, domain)


@cache
def _signer(path: str, selector: str, domain: str) -> DkimSigner:
    try:
        key = Path(path).read_bytes()
    except OSError as error:
        raise ImproperlyConfigured(f"DKIM private key {path}: {error}") from error
    return DkimSigner(selector, domain, key)
