"""The partition progress watchdog: an assigned partition with records waiting (lag > 0) whose
committed offset has not moved for ``stall_after_s`` is *stalled* — its customers silently stop
getting tags. The worker then says so (readiness false, a metric per partition, a log line with
the offsets) and recovers by itself: it seeks the partition back to its committed offset, which
makes the consumer fetch it afresh. A partition that is still stalled a period later gets
another seek, and stays reported until it moves.

A partition with a *hole* (records unacknowledged behind acknowledged ones: dropped on their
way to the agent, ``faust_commits.py``) cannot commit past it, so it would stall; it is
recovered sooner, once the hole has lasted ``hole_after_s``.

Pure logic: the Faust binding (``topology.py``) feeds it the consumer's offsets each check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Progress:
    committed: int | None
    since_s: float
    """When ``committed`` last changed (or lag was last 0)."""
    recovered_at_s: float | None = None


@dataclass(frozen=True)
class Offsets:
    committed: int | None
    """Next offset to read as last committed; None before the group's first commit."""
    highwater: int | None
    """Offset the next record written to the partition gets; None when not known yet."""
    hole_since_s: float | None = None
    """Since when records before acknowledged ones are unacknowledged (None: no hole)."""

    @property
    def lag(self) -> int:
        if self.highwater is None:
            return 0
        return max(0, self.highwater - (self.committed or 0))


@dataclass
class Verdict:
    lag: dict[Any, int] = field(default_factory=dict)
    stalled: list[Any] = field(default_factory=list)
    """Partitions with lag whose committed offset has not moved for ``stall_after_s``."""
    recover: list[Any] = field(default_factory=list)
    """Stalled partitions due for a recovery (a seek to their committed offset) now."""


class PartitionWatchdog:
    def __init__(self, stall_after_s: float, hole_after_s: float = 5.0) -> None:
        if stall_after_s <= 0 or hole_after_s <= 0:
            raise ValueError("stall_after_s and hole_after_s must be > 0")
        self.stall_after_s = stall_after_s
        self.hole_after_s = hole_after_s
        self._seen: dict[Any, _Progress] = {}

    def check(self, offsets: Mapping[Any, Offsets], now_s: float) -> Verdict:
        """Judges every assigned partition; partitions no longer assigned are forgotten."""
        for tp in [tp for tp in self._seen if tp not in offsets]:
            del self._seen[tp]
        verdict = Verdict()
        for tp, o in offsets.items():
            lag = verdict.lag[tp] = o.lag
            p = self._seen.get(tp)
            if o.hole_since_s is not None and now_s - o.hole_since_s >= self.hole_after_s:
                if p is None:
                    p = self._seen[tp] = _Progress(o.committed, now_s)
                verdict.stalled.append(tp)
                if p.recovered_at_s is None or now_s - p.recovered_at_s >= self.hole_after_s:
                    p.recovered_at_s = now_s
                    verdict.recover.append(tp)
                continue
            if p is None or p.committed != o.committed or lag == 0:
                self._seen[tp] = _Progress(o.committed, now_s)
                continue
            if now_s - p.since_s < self.stall_after_s:
                continue
            verdict.stalled.append(tp)
            if p.recovered_at_s is None or now_s - p.recovered_at_s >= self.stall_after_s:
                p.recovered_at_s = now_s
                verdict.recover.append(tp)
        return verdict

    def reset(self) -> None:
        """A rebalance started: offsets restart from what the new assignment says."""
        self._seen.clear()
