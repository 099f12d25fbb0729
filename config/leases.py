"""Leases: one process at a time works on a row, and a crashed process's claim runs out.

A lease is a nullable datetime column saying until when the row is claimed. It
is taken with one conditional UPDATE (of two processes, one gets it), renewed
as work progresses, and released when the work ends. A process that dies
without releasing it holds the row only until the time runs out. Used by CSV
import runs (targets) and the IMAP bounce poller (bounces).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone


@dataclass(frozen=True)
class Lease:
    field: str  # the row's "claimed until" column
    duration: timedelta

    def take(self, row: models.Model, **changes) -> bool:
        """Claim the row unless another process holds it; `changes` are written with the claim."""
        now = timezone.now()
        free = Q(**{f"{self.field}__isnull": True}) | Q(**{f"{self.field}__lt": now})
        claimed = self._row(row).filter(free).update(**{self.field: now + self.duration}, **changes)
        return bool(claimed)

    def renew(self, row: models.Model, **changes) -> None:
        """Hold the row for another `duration` from now (with `changes`)."""
        self._row(row).update(**{self.field: timezone.now() + self.duration}, **changes)

    def release(self, row: models.Model, **changes) -> None:
        self._row(row).update(**{self.field: None}, **changes)

    @property
    def minutes(self) -> int:
        return int(self.duration.total_seconds() // 60)

    @staticmethod
    def _row(row: models.Model) -> models.QuerySet:
        return type(row)._default_manager.filter(pk=row.pk)
