"""The classifier against the shared corpus of real bounces, scored as its README says."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Beside the repository, or where MASSMAIL_BOUNCE_CORPUS says (git worktrees live elsewhere).
CORPUS = Path(
    os.environ.get("MASSMAIL_BOUNCE_CORPUS")
    or Path(__file__).resolve().parents[2] / "shared" / "bounce-corpus"
)

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


def test_no_false_bounces(score) -> None:
    # The corpus holds 10 messages that are not bounces (auto-replies, delivery
    # reports, notices): none of them may get a verdict.
    assert score.non_bounce_messages == 10
    assert score.false_bounces == 0


def test_no_exceptions(score) -> None:
    assert score.exceptions == 0
