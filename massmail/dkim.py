"""Optional DKIM signing of mass email (RFC 6376, rsa-sha256, relaxed/simple).

Configured by the DKIM_PRIVATE_KEY_PATH (PEM RSA key, PKCS#1 or PKCS#8),
DKIM_SELECTOR and DKIM_DOMAIN settings; all three set turns signing on for every
message the composer renders. The signed headers include List-Unsubscribe and
List-Unsubscribe-Post, as RFC 8058 requires for one-click unsubscribe. The ones a
forwarder could add a second copy of to change what the recipient sees or what
an unsubscribe does (From, Subject, the two List-Unsubscribe headers) are
over-signed (RFC 6376 8.15): named once more than they occur, so a copy added
above the signed one breaks the signature instead of being shown.

Why not `dkim.sign()` from dkimpy: its pure-Python RSA and regex body
canonicalisation cost 10-15 ms per 40 KB message on this machine, which caps a
sender near 100 msg/s. Here the RSA operation is OpenSSL's (cryptography), the
body is hashed as it is ("simple": the composer's quoted-printable output has no
trailing whitespace to lose), and only the handful of signed headers are
canonicalised. dkimpy's `dkim.verify` checks these signatures in the tests.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
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
# Over-signed: the extra name in h= stands for "no further instance of this header".
OVER_SIGNED = frozenset({"From", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post"})
_WSP = re.compile(rb"[ \t]+")


class DkimSigner:
    def __init__(self, selector: str, domain: str, private_key: bytes) -> None:
        try:
            key = serialization.load_pem_private_key(private_key, password=None)
        except (ValueError, TypeError) as error:
            raise ImproperlyConfigured(f"DKIM private key unusable: {error}") from error
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ImproperlyConfigured("DKIM private key must be an RSA key.")
        self.key = key
        self.selector = selector
        self.domain = domain

    def signature(self, raw: bytes, headers: tuple[str, ...] = SIGNED_HEADERS) -> bytes:
        """The DKIM-Signature header, CRLF-terminated, to put before `raw`."""
        head, _, body = raw.partition(b"\r\n\r\n")
        # "simple" body: the body as is, trailing empty lines reduced to one CRLF.
        body = body.rstrip(b"\r\n") + b"\r\n"
        body_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
        fields = _header_fields(head)
        names = [name for name in headers if name.lower() in fields]
        # A name listed with no instance left is hashed as nothing (RFC 6376 5.4.2).
        extra = [name for name in names if name in OVER_SIGNED]
        tags = (
            f"v=1; a=rsa-sha256; c=relaxed/simple; d={self.domain}; s={self.selector};\r\n"
            f" t={int(time.time())}; h={':'.join(names + extra).lower()};\r\n"
            f" bh={body_hash}; b="
        )
        signed = b"".join(_relaxed(fields[name.lower()]) + b"\r\n" for name in names)
        signed += _relaxed(f"DKIM-Signature: {tags}".encode())
        value = self.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        encoded = base64.b64encode(value).decode()
        folded = "\r\n ".join(encoded[i : i + 72] for i in range(0, len(encoded), 72))
        return f"DKIM-Signature: {tags}{folded}\r\n".encode()

    def sign(self, raw: bytes, headers: tuple[str, ...] = SIGNED_HEADERS) -> bytes:
        return self.signature(raw, headers) + raw


def _header_fields(head: bytes) -> dict[str, bytes]:
    """Each header's whole (possibly folded) line by lower-case name; the last one wins,
    which is the instance a verifier picks first (RFC 6376 5.4.2)."""
    fields: dict[str, bytes] = {}
    current = b""
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and current:
            current += b"\r\n" + line
            continue
        if current:
            fields[current.partition(b":")[0].strip().lower().decode()] = current
        current = line
    if current:
        fields[current.partition(b":")[0].strip().lower().decode()] = current
    return fields


def _relaxed(field: bytes) -> bytes:
    """Relaxed header canonicalisation (RFC 6376 3.4.2), without the final CRLF."""
    name, _, value = field.partition(b":")
    value = _WSP.sub(b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip().lower() + b":" + value


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
