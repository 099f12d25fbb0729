"""Group commit: concurrent threads share one write, and each gets only its own outcome."""

from __future__ import annotations

import threading
import time

import pytest

from tracking.group_commit import GroupCommit

THREADS = 12


def _run_together(commit: GroupCommit, rows: list) -> dict:
    """Submit each row from its own thread, all released at once; row -> result or error."""
    outcomes: dict = {}
    start = threading.Barrier(len(rows))

    def submit(row) -> None:
        start.wait()
        try:
            outcomes[row] = commit.submit(row)
        except Exception as error:
            outcomes[row] = error

    threads = [threading.Thread(target=submit, args=(row,)) for row in rows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads), "a thread never woke"
    return outcomes


class SlowWriter:
    """Takes long enough that the other threads queue up behind the first batch."""

    def __init__(self, fail_batch: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_batch = fail_batch
        self.lock = threading.Lock()

    def __call__(self, rows):
        with self.lock:
            self.batches.append(list(rows))
            number = len(self.batches)
        time.sleep(0.05)
        if number == self.fail_batch:
            raise ConnectionError("database went away")
        return [row * 10 if row % 5 else ValueError(f"row {row} refused") for row in rows]


def test_threads_share_batches_and_get_their_own_results():
    writer = SlowWriter()
    outcomes = _run_together(GroupCommit(writer), list(range(1, THREADS + 1)))
    for row in range(1, THREADS + 1):
        if row % 5:
            assert outcomes[row] == row * 10
        else:  # a per-row error is raised in that row's thread only
            assert isinstance(outcomes[row], ValueError) and str(row) in str(outcomes[row])
    written = [row for batch in writer.batches for row in batch]
    assert sorted(written) == list(range(1, THREADS + 1))  # each row written once
    assert len(writer.batches) < THREADS  # some rows were written together
    assert max(len(batch) for batch in writer.batches) > 1


def test_a_failed_batch_fails_its_rows_and_the_next_batch_is_written():
    writer = SlowWriter(fail_batch=1)
    commit = GroupCommit(writer)
    outcomes = _run_together(commit, list(range(1, THREADS + 1)))
    failed = set(writer.batches[0])
    for row, outcome in outcomes.items():
        if row in failed:
            assert isinstance(outcome, ConnectionError)
        elif row % 5:
            assert outcome == row * 10
    assert len(failed) < THREADS  # rows queued behind the failure were written
    # And the commit goes on working afterwards.
    assert commit.submit(7) == 70


def test_a_writer_returning_the_wrong_number_of_outcomes_fails_the_batch():
    commit = GroupCommit(lambda rows: [])
    with pytest.raises(RuntimeError, match="0 outcomes for 1 rows"):
        commit.submit(1)
    assert GroupCommit(lambda rows: [row + 1 for row in rows]).submit(1) == 2
