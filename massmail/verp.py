"""VERP: the envelope sender names the queue item, with an HMAC so forged bounces can't
suppress contacts. Form: <local>+bounce-<uid base32>-<mac>@<domain>; the local part
stays under 64 characters and survives case-folding MTAs (base32, lower case).
"""

from __future__ import annotations

import base64
import hmac
import uuid
from hashlib import sha256

from django.conf import settings

_MAC_LEN = 10


def _mac(uid_text: str) -> str:
    key = f"massmail.verp:{settings.SECRET_KEY}".encode()
    digest = hmac.new(key, uid_text.encode(), sha256).digest()
    return base64.b32encode(digest).decode().lower()[:_MAC_LEN]


def verp_token(uid: uuid.UUID | str) -> str:
    raw = uid.bytes if isinstance(uid, uuid.UUID) else uuid.UUID(str(uid)).bytes
    uid_text = base64.b32encode(raw).decode().rstrip("=").lower()
    return f"{uid_text}-{_mac(uid_text)}"


def verp_address(bounce_address: str, uid: uuid.UUID | str) -> str:
    local, _, domain = bounce_address.partition("@")
    local = local.split("+", 1)[0]
    return f"{local}+bounce-{verp_token(uid)}@{domain}"


def read_verp_token(token: str) -> uuid.UUID | None:
    """The queue item's uid, or None for a token that is malformed or forged."""
    token = token.strip().lower().removeprefix("bounce-")
    uid_text, _, mac = token.rpartition("-")
    if not uid_text or not hmac.compare_digest(mac, _mac(uid_text)):
        return None
    try:
        raw = base64.b32decode(uid_text.upper() + "=" * (-len(uid_text) % 8))
        return uuid.UUID(bytes=raw)
    except (ValueError, TypeError):
        return None
