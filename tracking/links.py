"""Signed public links put into messages, and reading them back.

Every public URL carries a token made with Django's signing under a salt per
purpose, naming the queue item by its random uid (never a sequential id). A
forged, altered or truncated token reads back as None. The sending engine calls
the *_url functions per recipient, so they are plain string work plus one HMAC.
"""

from __future__ import annotations

import base64
import uuid

from django.core import signing
from django.utils.crypto import constant_time_compare

SALT_UNSUBSCRIBE = "massmail.unsubscribe"
SALT_CLICK = "massmail.click"
SALT_OPEN = "massmail.open"
SALT_TRAP = "massmail.trap"


def _encode_uid(uid: uuid.UUID | str) -> str:
    raw = uid.bytes if isinstance(uid, uuid.UUID) else uuid.UUID(str(uid)).bytes
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_uid(text: str) -> uuid.UUID | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return uuid.UUID(bytes=raw)
    except (ValueError, TypeError):
        return None


def _sign(salt: str, value: str) -> str:
    return signing.Signer(salt=salt).sign(value)


def _unsign(salt: str, token: str) -> str | None:
    try:
        return signing.Signer(salt=salt).unsign(token)
    except signing.BadSignature:
        return None


def unsubscribe_token(uid: uuid.UUID | str) -> str:
    return _sign(SALT_UNSUBSCRIBE, _encode_uid(uid))


def click_token(uid: uuid.UUID | str, tracking_url_id: int) -> str:
    return _sign(SALT_CLICK, f"{_encode_uid(uid)}.{tracking_url_id}")


def open_token(uid: uuid.UUID | str) -> str:
    return _sign(SALT_OPEN, _encode_uid(uid))


def trap_token(uid: uuid.UUID | str) -> str:
    return _sign(SALT_TRAP, _encode_uid(uid))


def unsubscribe_url(site_url: str, uid: uuid.UUID | str) -> str:
    """The body link and the List-Unsubscribe URL (GET confirms, POST acts)."""
    return f"{site_url}/u/{unsubscribe_token(uid)}/"


def click_url(site_url: str, uid: uuid.UUID | str, tracking_url_id: int) -> str:
    return f"{site_url}/c/{click_token(uid, tracking_url_id)}/"


def open_pixel_url(site_url: str, uid: uuid.UUID | str) -> str:
    return f"{site_url}/o/{open_token(uid)}/p.gif"


def trap_url(site_url: str, uid: uuid.UUID | str) -> str:
    """A link hidden from people in HTML bodies: whatever follows it is a machine."""
    return f"{site_url}/h/{trap_token(uid)}/"


def read_unsubscribe_token(token: str) -> uuid.UUID | None:
    value = _unsign(SALT_UNSUBSCRIBE, token)
    return _decode_uid(value) if value else None


def read_click_token(token: str) -> tuple[uuid.UUID, int] | None:
    value = _unsign(SALT_CLICK, token)
    if not value or "." not in value:
        return None
    uid_text, _, url_id = value.partition(".")
    uid = _decode_uid(uid_text)
    return (uid, int(url_id)) if uid and url_id.isdigit() else None


def read_open_token(token: str) -> uuid.UUID | None:
    value = _unsign(SALT_OPEN, token)
    return _decode_uid(value) if value else None


def read_trap_token(token: str) -> uuid.UUID | None:
    value = _unsign(SALT_TRAP, token)
    return _decode_uid(value) if value else None


# The address form, for templates sent outside mass emails: no queue item, so the
# link names the address itself (base64) with an HMAC over it.
SALT_ADDRESS = "massmail.unsubscribe-address"


def _address_signature(encoded_address: str) -> str:
    return signing.Signer(salt=SALT_ADDRESS).signature(encoded_address)


def address_unsubscribe_url(site_url: str, address: str) -> str:
    encoded = base64.urlsafe_b64encode(address.strip().lower().encode()).rstrip(b"=").decode()
    return f"{site_url}/unsubscribe/{encoded}/{_address_signature(encoded)}/"


def read_address_unsubscribe(encoded_address: str, signature: str) -> str | None:
    """The address an address-form link names, or None when the HMAC does not match."""
    if not constant_time_compare(signature, _address_signature(encoded_address)):
        return None
    try:
        raw = base64.urlsafe_b64decode(encoded_address + "=" * (-len(encoded_address) % 4))
        return raw.decode()
    except (ValueError, UnicodeDecodeError):
        return None
