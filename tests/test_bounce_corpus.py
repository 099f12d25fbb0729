"""The classifier against the shared corpus of real bounces, scored as its README says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "bounce-corpus"

pytestmark = pytest.mark.skipif(
    not (CORPUS / "labels.jsonl").exists(),
    reason=f"bounce corpus not found at {CORPUS} (it is not copied into the repo)",
)


def load_scorer():
    # The bench script holds the one implementation of the README's scoring rules.
    spec = importlib.util.spec_from_file_location(
        "score_bounce_corpus", REPO_ROOT / "bench" / "score_bounce_corpus.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def score():
    scorer = load_scorer()
    return scorer.run(CORPUS, scorer.load_labels(CORPUS), scorer.ours)


def test_finds_recipients(score) -> None:
    assert score.found_pct >= 97.0


def test_hard_precision(score) -> None:
    assert score.hard_precision >= 97.0


def test_hard_recall(score) -> None:
    assert score.hard_recall >= 90.0


def test_complaints(score) -> None:
    assert score.complaints_pct >= 95.0


def test_false_bounces_regression_floor(score) -> None:
    # REGRESSION FLOOR, NOT THE TARGET (issue 6 asks for 0). The two messages left are
    # real failure notices whose labels.jsonl entry is empty: lhost-mimecast-02 (Action:
    # failed, 550 5.7.54 relay refused) and lhost-x1-04 (a "could not send mail for past
    # 8.5 hours" delay warning, the kind labelled soft everywhere else in the corpus).
    # Sisimai's own test suite (sisimai/p5-sisimai, Mimecast and X1 lhost tests) expects
    # exactly our soft verdicts for both (norelaying, expired); the labels come from a
    # Sisimai run without those parsers. Silencing them would take a rule keyed on these
    # two files, which the issue forbids.
    assert score.non_bounce_messages == 12  # the README's "x/12"
    assert score.false_bounces <= 2


def test_no_exceptions(score) -> None:
    assert score.exceptions == 0
