"""Score the bounce classifier on the shared corpus, with flufl.bounce alone as baseline.

Usage: .venv/bin/python bench/score_bounce_corpus.py [--failures] [CORPUS_DIR]

Scoring follows ../shared/bounce-corpus/README.md: a labelled hard/soft recipient is
found when an output address equals its address or alias; hard precision counts every
hard verdict, including ones on addresses no label names; false bounces are messages
labelled as no bounce at all (empty recipients or only kind "none"; the README's
"x/12") that still got a hard or soft verdict. Run it to see flufl.bounce's row match
the README's published baseline (77.0 / 32.8 / 74.5 / 0% / 3 of 12).
"""

from __future__ import annotations

import email
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import policy
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bounces.classify import classify  # noqa: E402

DEFAULT_CORPUS = Path(
    os.environ.get("MASSMAIL_BOUNCE_CORPUS") or REPO_ROOT.parent / "shared" / "bounce-corpus"
)

# One verdict as the scorer sees it: (address, "hard" | "soft" | "complaint").
Outcome = list[tuple[str, str]]


@dataclass
class Score:
    labelled: int = 0
    found: int = 0
    hard_verdicts: int = 0
    hard_correct: int = 0
    hard_labelled: int = 0
    hard_recalled: int = 0
    complaints_labelled: int = 0
    complaints_found: int = 0
    non_bounce_messages: int = 0
    false_bounces: int = 0
    exceptions: int = 0
    failures: list[str] = field(default_factory=list)

    def percent(self, part: int, whole: int) -> float:
        return 100.0 * part / whole if whole else 100.0

    @property
    def found_pct(self) -> float:
        return self.percent(self.found, self.labelled)

    @property
    def hard_precision(self) -> float:
        return self.percent(self.hard_correct, self.hard_verdicts)

    @property
    def hard_recall(self) -> float:
        return self.percent(self.hard_recalled, self.hard_labelled)

    @property
    def complaints_pct(self) -> float:
        return self.percent(self.complaints_found, self.complaints_labelled)


def load_labels(corpus: Path) -> list[dict]:
    lines = (corpus / "labels.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def names(label: dict) -> set[str]:
    return {a.lower() for a in (label["address"], label["alias"]) if a}


def score_message(score: Score, label: dict, outcome: Outcome) -> None:
    recipients = label["recipients"]
    verdict_for = {address: verdict for address, verdict in outcome}
    hard_names = set().union(*[names(r) for r in recipients if r["kind"] == "hard"])
    for recipient in recipients:
        given = [verdict_for[a] for a in names(recipient) if a in verdict_for]
        if recipient["kind"] in ("hard", "soft"):
            score.labelled += 1
            score.found += bool(given)
        if recipient["kind"] == "hard":
            score.hard_labelled += 1
            score.hard_recalled += "hard" in given
        if recipient["kind"] == "complaint":
            score.complaints_labelled += 1
            score.complaints_found += "complaint" in given
        wrong = given and recipient["kind"] not in given
        if not given and recipient["kind"] != "none" or wrong:
            score.failures.append(f"{label['file']}: {recipient} -> {outcome}")
    for address, verdict in outcome:
        if verdict == "hard":
            score.hard_verdicts += 1
            score.hard_correct += address in hard_names
            if address not in hard_names:
                score.failures.append(f"{label['file']}: false hard {address} -> {outcome}")
    # The README's "x/12": messages labelled as no bounce at all (empty recipients or
    # only kind "none"); complaint-only messages are scored under complaints instead.
    if all(r["kind"] == "none" for r in recipients):
        score.non_bounce_messages += 1
        if any(verdict in ("hard", "soft") for _, verdict in outcome):
            score.false_bounces += 1
            score.failures.append(f"{label['file']}: false bounce -> {outcome}")


class _ErrorCounter(logging.Handler):
    """classify() never raises; it logs instead, so errors are counted from its log."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def ours(raw: bytes) -> Outcome:
    report = classify(raw)
    return [(v.address, v.verdict) for v in report.recipients]


def flufl_alone(raw: bytes) -> Outcome:
    from flufl.bounce import all_failures

    msg = email.message_from_bytes(raw, policy=policy.compat32)
    temporary, permanent = all_failures(msg)
    decode = lambda a: a.decode("utf-8", "replace").lower()  # noqa: E731
    hard = [(decode(a), "hard") for a in permanent]
    return hard + [(decode(a), "soft") for a in temporary - permanent]


def run(corpus: Path, labels: Iterable[dict], classifier: Callable[[bytes], Outcome]) -> Score:
    score = Score()
    errors = _ErrorCounter()
    logging.getLogger("bounces").addHandler(errors)
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
    try:
        for label in labels:
            raw = (corpus / "messages" / label["file"]).read_bytes()
            try:
                outcome = classifier(raw)
            except Exception:
                score.exceptions += 1
                outcome = []
            score_message(score, label, outcome)
    finally:
        logging.getLogger("bounces").removeHandler(errors)
    score.exceptions += errors.count
    return score


def print_table(rows: list[tuple[str, Score]]) -> None:
    header = ("classifier", "found", "hard prec.", "hard recall", "complaints", "false b.", "exc.")
    print("{:<22} {:>8} {:>11} {:>12} {:>11} {:>9} {:>5}".format(*header))
    for name, s in rows:
        false_bounces = f"{s.false_bounces}/{s.non_bounce_messages}"
        print(
            f"{name:<22} {s.found_pct:>7.1f}% {s.hard_precision:>10.1f}% "
            f"{s.hard_recall:>11.1f}% {s.complaints_pct:>10.1f}% {false_bounces:>9} "
            f"{s.exceptions:>5}"
        )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def main(argv: list[str]) -> int:
    show_failures = "--failures" in argv
    paths = [a for a in argv if not a.startswith("--")]
    corpus = Path(paths[0]) if paths else DEFAULT_CORPUS
    if not (corpus / "labels.jsonl").exists():
        print(f"corpus not found at {corpus}", file=sys.stderr)
        return 2
    labels = load_labels(corpus)
    mine = run(corpus, labels, ours)
    baseline = run(corpus, labels, flufl_alone)
    print(f"{len(labels)} messages in {corpus}")
    print_table([("bounces.classify", mine), ("flufl.bounce alone", baseline)])
    print(
        "ratio ours/flufl: found "
        f"{ratio(mine.found_pct, baseline.found_pct)}, hard precision "
        f"{ratio(mine.hard_precision, baseline.hard_precision)}, hard recall "
        f"{ratio(mine.hard_recall, baseline.hard_recall)}"
    )
    if show_failures:
        print("\n".join(mine.failures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
