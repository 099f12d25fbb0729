"""Group commit: the threads of one process that have a row to write share one statement.

A web process serves several requests at once (gunicorn gthread). Each tracked
click used to be its own statement and its own commit: a round trip, a parse,
an execute and a WAL flush per hit. With group commit a request hands its row
over and the first thread to arrive (the leader) writes every row waiting at
that moment in one statement, on its own database connection, then wakes the
others with their outcomes. Rows that arrive while it writes wait for the next
leader: the first of them, woken to lead. No thread is added and no request is
answered before its row is committed.

The writer is given the whole batch and returns one outcome per row, in order:
a result, or an exception to raise in that row's thread only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Row = TypeVar("Row")
Result = TypeVar("Result")


class _Waiter(Generic[Row]):
    __slots__ = ("row", "woken", "outcome", "lead")

    def __init__(self, row: Row) -> None:
        self.row = row
        # Held until a leader has this row's outcome, or asks this thread to lead.
        self.woken = threading.Lock()
        self.woken.acquire()
        self.outcome: object = None
        self.lead = False


class GroupCommit(Generic[Row, Result]):
    """Writes the rows that threads submit together, one call of `write` per batch."""

    def __init__(self, write: Callable[[Sequence[Row]], Sequence[object]]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._waiting: list[_Waiter[Row]] = []
        self._leading = False

    def submit(self, row: Row) -> Result:
        """Write the row (with whatever else is waiting); its result, or raise its error."""
        waiter = _Waiter(row)
        with self._lock:
            self._waiting.append(waiter)
            follow = self._leading
            self._leading = True
        if follow:
            waiter.woken.acquire()
        if not follow or waiter.lead:
            self._lead(waiter)
        if isinstance(waiter.outcome, BaseException):
            raise waiter.outcome
        return waiter.outcome  # type: ignore[return-value]

    def _lead(self, me: _Waiter[Row]) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
        try:
            outcomes = self._write([waiter.row for waiter in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} rows")
        except BaseException as error:  # every waiter must wake, whatever happened
            outcomes = [error] * len(batch)
        for waiter, outcome in zip(batch, outcomes, strict=True):
            waiter.outcome = outcome
        with self._lock:
            successor = self._waiting[0] if self._waiting else None
            self._leading = successor is not None
        if successor is not None:
            successor.lead = True
            successor.woken.release()
        for waiter in batch:
            if waiter is not me:
                waiter.woken.release()
