"""Signed public links put into messages, and reading them back.

Every public URL carries a token in Django's signing format (`value:signature`)
under a salt per purpose, naming the queue item by its random uid (never a
sequential id). A forged, altered or truncated token reads back as None.

`Links` is the one place links are made. The sending engine makes one per mass
email and calls it per recipient: Django's Signer derives its key from
SECRET_KEY and the salt on every call, `Links` derives each purpose's key once,
and the tokens are the very ones Signer makes and `read_*` below verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

from django.conf import settings
from django.core import signing
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes

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


def _unsign(salt: str, token: str) -> str | None:
    try:
        return signing.Signer(salt=salt).unsign(token)
    except signing.BadSignature:
        return None


class Links:
    """Makes the signed links of one site, each purpose's HMAC key derived once."""

    def __init__(self, site_url: str = "") -> None:
        self.site_url = site_url
        self._macs: dict[str, hmac.HMAC] = {}
        self._last: tuple[object, str] = (None, "")

    def token(self, salt: str, value: str) -> str:
        mac = self._macs.get(salt)
        if mac is None:
            # Django's Signer: HMAC-SHA256 keyed with sha256(salt + "signer" + SECRET_KEY).
            key = hashlib.sha256(force_bytes(salt + "signer") + force_bytes(settings.SECRET_KEY))
            mac = self._macs[salt] = hmac.new(key.digest(), digestmod=hashlib.sha256)
        mac = mac.copy()
        mac.update(value.encode())
        signature = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
        return f"{value}:{signature}"

    def uid(self, uid: uuid.UUID | str) -> str:
        # Read the memo once: with threads sharing this object, a second read could
        # see another recipient's uid (and put their token in this message).
        last = self._last
        if last[0] == uid:
            return last[1]
        encoded = _encode_uid(uid)
        self._last = (uid, encoded)
        return encoded

    def unsubscribe_url(self, uid: uuid.UUID | str) -> str:
        """The body link and the List-Unsubscribe URL (GET confirms, POST acts)."""
        return f"{self.site_url}/u/{self.token(SALT_UNSUBSCRIBE, self.uid(uid))}/"

    def click_url(self, uid: uuid.UUID | str, tracking_url_id: int) -> str:
        value = f"{self.uid(uid)}.{tracking_url_id}"
        return f"{self.site_url}/c/{self.token(SALT_CLICK, value)}/"

    def open_pixel_url(self, uid: uuid.UUID | str) -> str:
        return f"{self.site_url}/o/{self.token(SALT_OPEN, self.uid(uid))}/p.gif"

    def trap_url(self, uid: uuid.UUID | str) -> str:
        """A link hidden from people in HTML bodies: whatever follows it is a machine."""
        return f"{self.site_url}/h/{self.token(SALT_TRAP, self.uid(uid))}/"


def unsubscribe_token(uid: uuid.UUID | str) -> str:
    return Links().token(SALT_UNSUBSCRIBE, _encode_uid(uid))


def click_token(uid: uuid.UUID | str, tracking_url_id: int) -> str:
    return Links().token(SALT_CLICK, f"{_encode_uid(uid)}.{tracking_url_id}")


def open_token(uid: uuid.UUID | str) -> str:
    return Links().token(SALT_OPEN, _encode_uid(uid))


def trap_token(uid: uuid.UUID | str) -> str:
    return Links().token(SALT_TRAP, _encode_uid(uid))


def unsubscribe_url(site_url: str, uid: uuid.UUID | str) -> str:
    return Links(site_url).unsubscribe_url(uid)


def click_url(site_url: str, uid: uuid.UUID | str, tracking_url_id: int) -> str:
    return Links(site_url).click_url(uid, tracking_url_id)


def open_pixel_url(site_url: str, uid: uuid.UUID | str) -> str:
    return Links(site_url).open_pixel_url(uid)


def trap_url(site_url: str, uid: uuid.UUID | str) -> str:
    return Links(site_url).trap_url(uid)


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
