"""DKIM signatures on composed messages, verified by dkimpy as a receiver would."""

from __future__ import annotations

import base64

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import ImproperlyConfigured

from massmail import dkim as massmail_dkim
from massmail.composition import prepare
from massmail.recipients import recipient_contexts
from tests.factories import make_contact, make_mass_email, make_template
from tests.fixtures.composition import make_item, parse


@pytest.fixture(scope="module")
def key_pair() -> tuple[bytes, bytes]:
    """A private key (PKCS#1 PEM) and its DNS TXT record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


@pytest.fixture
def dkim_settings(settings, tmp_path, key_pair):
    path = tmp_path / "dkim.pem"
    path.write_bytes(key_pair[0])
    settings.DKIM_PRIVATE_KEY_PATH = str(path)
    settings.DKIM_SELECTOR = "mm2026"
    settings.DKIM_DOMAIN = "example.com"
    settings.SITE_URL = "https://news.example.com"  # one-click headers need https
    massmail_dkim._signer.cache_clear()
    yield settings
    massmail_dkim._signer.cache_clear()


def dns_for(txt_record: bytes):
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return txt_record if name == b"mm2026._domainkey.example.com." else None

    return dnsfunc


def render_signed():
    contact = make_contact(first_name="Zoë", last_name="O'Neil & Co")
    template = make_template(
        subject="Grüße {Person.firstName}, a long subject line " + "that folds " * 8,
        body_html="<p>Hello {Person.name}</p>\n<p>  indented   text  </p>",
    )
    mass_email = make_mass_email(email_template=template, reply_to_address="help@example.com")
    item = make_item(mass_email, contact)
    return prepare(mass_email).render(item, recipient_contexts([item])[item.id])


@pytest.mark.django_db
def test_signed_message_verifies(dkim_settings, key_pair):
    rendered = render_signed()
    assert rendered.raw.startswith(b"DKIM-Signature: ")
    assert dkim.verify(rendered.raw, dnsfunc=dns_for(key_pair[1]))


@pytest.mark.django_db
def test_signature_covers_the_one_click_headers(dkim_settings, key_pair):
    rendered = render_signed()
    signature = parse(rendered.raw)["DKIM-Signature"]
    tags = dict(
        part.strip().split("=", 1) for part in "".join(signature.split()).split(";") if part
    )
    signed = tags["h"].split(":")
    for name in ("from", "to", "subject", "date", "message-id", "list-unsubscribe"):
        assert name in signed
    assert "list-unsubscribe-post" in signed and "list-id" in signed
    assert tags["d"] == "example.com" and tags["s"] == "mm2026"
    assert max(len(line) for line in rendered.raw.split(b"\r\n")) <= 998


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tamper",
    [
        lambda raw: raw.replace(b"List-Unsubscribe: <http", b"List-Unsubscribe: <ftp"),
        lambda raw: raw.replace(b"Hello", b"Hallo"),
        lambda raw: raw.replace(b"From: Example News", b"From: Evil News"),
    ],
)
def test_tampering_breaks_the_signature(dkim_settings, key_pair, tamper):
    rendered = render_signed()
    tampered = tamper(rendered.raw)
    assert tampered != rendered.raw
    assert not dkim.verify(tampered, dnsfunc=dns_for(key_pair[1]))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "added",
    [
        b"From: Bank <security@bank.example>",
        b"Subject: Your account is locked",
        b"List-Unsubscribe: <https://evil.example/u>",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
    ],
)
def test_a_second_copy_of_an_over_signed_header_breaks_the_signature(
    dkim_settings, key_pair, added
):
    """A forwarder adding its own From (or Subject, unsubscribe target) above ours: the
    reader shows the added one, so the signature must not vouch for it (RFC 6376 8.15)."""
    raw = render_signed().raw
    assert dkim.verify(raw, dnsfunc=dns_for(key_pair[1]))
    assert not dkim.verify(added + b"\r\n" + raw, dnsfunc=dns_for(key_pair[1]))


@pytest.mark.django_db
def test_a_header_that_is_not_over_signed_may_be_added(dkim_settings, key_pair):
    raw = render_signed().raw
    assert dkim.verify(b"Received: from relay.example\r\n" + raw, dnsfunc=dns_for(key_pair[1]))


@pytest.mark.django_db
def test_no_signature_without_configuration(settings):
    settings.DKIM_PRIVATE_KEY_PATH = settings.DKIM_SELECTOR = settings.DKIM_DOMAIN = ""
    assert not render_signed().raw.startswith(b"DKIM-Signature")


def test_half_configured_dkim_is_refused(settings):
    settings.DKIM_PRIVATE_KEY_PATH = "/nonexistent.pem"
    settings.DKIM_SELECTOR = ""
    settings.DKIM_DOMAIN = "example.com"
    with pytest.raises(ImproperlyConfigured, match="needs all of"):
        massmail_dkim.configured_signer()


def test_unreadable_key_is_refused(settings, tmp_path):
    path = tmp_path / "bad.pem"
    path.write_text("not a key")
    settings.DKIM_PRIVATE_KEY_PATH = str(path)
    settings.DKIM_SELECTOR = "s"
    settings.DKIM_DOMAIN = "example.com"
    massmail_dkim._signer.cache_clear()
    with pytest.raises(ImproperlyConfigured, match="unusable"):
        massmail_dkim.configured_signer()
