"""Pieces of the raw SQL statements that the set-based paths build (queue, outcomes)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def sql_placeholders(values: Iterable[Any]) -> str:
    """ "%s, %s, ..." for each value: the parameters of an IN list."""
    return ", ".join("%s" for _ in values)


def flatten(pairs: Iterable[tuple[Any, Any]]) -> list[Any]:
    """The parameters of a CASE id WHEN %s THEN %s ... list, in order."""
    return [value for pair in pairs for value in pair]
