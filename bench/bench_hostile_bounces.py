"""Hostile bounce mail against the classifier's patterns, old and new, in the same run.

Anyone can mail the bounce address. Before issue 18 the address pattern was quadratic
on a long run of local-part characters without "@", and the returned-message marker
on long runs of "=" or blank lines. This prints, for 20k/40k/80k-character inputs,
the time of each old pattern (kept here verbatim) next to the one classify.py uses
now, and then the whole classify() on hostile 400 KB messages (the old code did not
finish those; the time budget, BOUNCE_TIME_BUDGET_SECONDS, is 10 s by default).

    .venv/bin/python bench/bench_hostile_bounces.py [--sizes 20000,40000,80000]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bounces import classify as current  # noqa: E402

OLD_ADDRESS_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
OLD_RETURNED_MARKER_RE = re.compile(
    r"^[\s>|*=_-]*(?:"
    r".*\bcopy of (?:the|your) (?:original )?message\b"
    r"|[\s>|*=_-]*(?:original|returned|undelivered|unsent) (?:message|mail)(?: headers)?"
    r"(?: follows| below| is attached)?:?[\s*=_-]*"
    r"|.*\b(?:original |returned )?message (?:headers|text) follows?\b"
    r"|.*\bheaders? of the (?:original |returned )?message\b"
    r"|content-type: message/rfc822"
    r")[\s.:*=_|-]*$",
    re.IGNORECASE | re.MULTILINE,
)
OLD_TAG_RE = re.compile(r"<[^>]+>")

# The old marker pattern is cubic: a few thousand characters already take seconds,
# so its inputs are 1/40 and 1/200 of the others (scale with --sizes).
CASES: list[tuple[str, re.Pattern, re.Pattern, Callable[[int], str], int]] = [
    ("address, run of local-part chars", OLD_ADDRESS_RE, current.ADDRESS_RE, lambda n: "x" * n, 1),
    ("address, run of '5.'", OLD_ADDRESS_RE, current.ADDRESS_RE, lambda n: "5." * (n // 2), 1),
    ("html tags, run of '<'", OLD_TAG_RE, re.compile(r"<[^<>]*>"), lambda n: "<" * n, 1),
    (
        "returned marker, run of '='",
        OLD_RETURNED_MARKER_RE,
        current.RETURNED_MARKER_RE,
        lambda n: "=" * n,
        40,
    ),
    (
        "returned marker, blank lines",
        OLD_RETURNED_MARKER_RE,
        current.RETURNED_MARKER_RE,
        lambda n: " \n" * (n // 2),
        200,
    ),
]


def seconds(work: Callable[[object], object], argument: object) -> float:
    start = time.perf_counter()
    work(argument)
    return time.perf_counter() - start


def hostile_message(body: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.net\nTo: bounces@example.test\n"
        "Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        f"--B\nContent-Type: text/plain\n\n{body}\n"
        "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
        "Final-Recipient: rfc822; gone@example.org\nAction: failed\nStatus: 5.1.1\n\n--B--\n"
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,40000,80000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    print(f"{'pattern and input':36} {'chars':>7} {'old':>10} {'new':>10} {'old/new':>8}")
    for name, old, new, make, divisor in CASES:
        for size in (s // divisor for s in sizes):
            text = make(size)
            old_s = seconds(old.search, text)
            new_s = seconds(new.search, text)
            ratio = old_s / new_s if new_s else float("inf")
            print(
                f"{name:36} {size:7} {old_s * 1000:8.1f}ms {new_s * 1000:8.1f}ms {ratio:7.0f}x",
                flush=True,
            )
    print()
    print("classify() now, on whole hostile messages (old code: did not finish)")
    bodies = {
        "400 KB run of local-part chars": "x" * 400_000,
        "400 KB line of '5.'": "5." * 200_000,
        "400 KB line of '='": "=" * 400_000,
        "200,000 blank lines": " \n" * 200_000,
        "20,000 addresses on one line": " ".join(f"u{i}@h{i}.example" for i in range(20_000)),
    }
    for name, body in bodies.items():
        raw = hostile_message(body)
        took = seconds(current.classify, raw)
        found = [v.address for v in current.classify(raw).recipients]
        print(f"{name:36} {len(raw) // 1000:5} KB {took * 1000:9.1f} ms  recipients {found}")


if __name__ == "__main__":
    main()
