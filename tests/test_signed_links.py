"""Tokens in public links and VERP addresses read back only when untouched."""

import uuid

from massmail.verp import read_verp_token, verp_address, verp_token
from tracking import links


def test_link_tokens_round_trip_and_reject_tampering():
    uid = uuid.uuid4()
    token = links.unsubscribe_token(uid)
    assert links.read_unsubscribe_token(token) == uid
    assert links.read_unsubscribe_token(token[:-1]) is None
    assert (
        links.read_unsubscribe_token(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
        is None
    )
    # A token made for one purpose does not work for another.
    assert links.read_open_token(token) is None
    assert links.read_click_token(links.click_token(uid, 7)) == (uid, 7)
    assert links.read_click_token(links.click_token(uid, 7).replace(".7:", ".8:")) is None
    assert str(uid) not in links.unsubscribe_url("https://x.test", uid)


def test_verp_address_carries_a_verifiable_token():
    uid = uuid.uuid4()
    address = verp_address("bounces@mail.example.com", uid)
    local, _, domain = address.partition("@")
    assert domain == "mail.example.com" and len(local) <= 64
    token = local.split("+bounce-", 1)[1]
    assert token == verp_token(uid)
    assert read_verp_token(token) == uid
    assert read_verp_token(token.upper()) == uid
    assert read_verp_token(token[:-1] + ("a" if token[-1] != "a" else "b")) is None
    assert read_verp_token("garbage") is None
