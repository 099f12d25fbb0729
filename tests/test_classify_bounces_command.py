"""The classify_bounces management command: files in, one verdict per recipient out."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

DSN = b"""From: MAILER-DAEMON@mx.example.net
To: news+bounce-q42@massmail.example
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; gone@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--B
Content-Type: text/rfc822-headers

Message-ID: <m1@massmail.example>
X-Queue-Item-Id: 42
--B--
"""
NOT_A_BOUNCE = b"From: a@example.com\nTo: b@example.com\nSubject: hi\n\nhello\n"


def write(tmp_path: Path, name: str, raw: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(raw)
    return str(path)


def test_json_output_one_object_per_file(tmp_path: Path) -> None:
    bounce, plain = write(tmp_path, "b.eml", DSN), write(tmp_path, "p.eml", NOT_A_BOUNCE)
    out = StringIO()
    call_command("classify_bounces", bounce, plain, "--json", stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [
        {
            "file": bounce,
            "recipients": [
                {
                    "address": "gone@example.org",
                    "verdict": "hard",
                    "status": "5.1.1",
                    "reason": "user unknown",
                }
            ],
            "queue_item_id": "42",
            "verp_token": "q42",
        },
        {"file": plain, "recipients": [], "queue_item_id": None, "verp_token": None},
    ]


def test_table_output_is_aligned(tmp_path: Path) -> None:
    out = StringIO()
    call_command("classify_bounces", write(tmp_path, "b.eml", DSN), stdout=out)
    header, row = out.getvalue().splitlines()
    assert header.split() == ["file", "address", "verdict", "status", "reason"]
    assert header.index("address") == row.index("gone@example.org")
    assert row.split()[2:] == ["hard", "5.1.1", "user", "unknown"]


def test_unreadable_file_is_reported_and_the_rest_still_classified(tmp_path: Path) -> None:
    out, err = StringIO(), StringIO()
    missing = str(tmp_path / "missing.eml")
    with pytest.raises(CommandError) as raised:
        call_command(
            "classify_bounces",
            missing,
            write(tmp_path, "b.eml", DSN),
            "--json",
            stdout=out,
            stderr=err,
        )
    assert raised.value.returncode != 0
    assert missing in err.getvalue()
    assert json.loads(out.getvalue())["recipients"][0]["address"] == "gone@example.org"
