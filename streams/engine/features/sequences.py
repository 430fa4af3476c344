"""Sequence and absence features at run time (docs/rules.md, *Sequences and absence*).

``absence`` — "A and no B within T after it": true at ``now`` when some A event has
``now - window < A.ts <= now - T`` and no B event has ``B.ts >= A.ts``. It turns true with no
event at exactly ``A.ts + T`` (a due time), false at a B or when that A leaves the window.

``sequence`` — "A then B within T": the number of B events in the window that had an A with
``B.ts - T <= A.ts <= B.ts`` (each B counts once), bucketed like ``count``.

Both are decided on event time. State is bounded: a few event times per customer, never a list of
raw events; the caps below are documented with their effect on out-of-order input.

State layouts (plain JSON, sorted, so equal states encode to equal bytes):

=========  ===================================================================================
absence    ``[last_b_ts | null, [pending A ts, ...]]`` — A times later than every B seen
sequence   ``[[[run_start, run_end], ...], [unmatched B ts, ...], buckets]`` — runs of A events
           (consecutive A's at most T apart: a B matches iff ``start <= B.ts <= end + T``), B
           events no A has matched yet (a late A may still match them), and the completions:
           ``[[bucket, n], ...]`` windowed, ``n`` lifetime
=========  ===================================================================================
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from typing import Any, Final

from streams.engine.features.base import Runtime
from streams.engine.features.windows import bucket_expiry_ms, bucket_of, default_resolution_ms, oldest_live_bucket
from tag_rules import FeatureDef, Pattern

MAX_PENDING: Final = 8
"""absence: pending A times remembered per customer. Beyond, the interior time whose neighbours
are closest is dropped (the earliest and latest are always kept): no effect on in-order input
when ``within <= 5/7 window`` (or lifetime), see docs/rules.md."""
MAX_RUNS: Final = 4
"""sequence: runs of A events remembered per customer; the oldest goes first."""
MAX_UNMATCHED: Final = 4
"""sequence: B events without an A remembered per customer (for a late A); the oldest goes first."""

NEVER: Final = math.inf


class PatternRuntime(Runtime):
    """What the engine needs of a feature, for sequence and absence (see ``FeatureRuntime``)."""

    def __init__(self, defn: FeatureDef) -> None:
        assert defn.pattern is not None
        self.takes_thresholds = False
        self.defn = defn
        self.name = defn.name
        self.key = defn.key
        self.pattern: Pattern = defn.pattern
        self.within_ms = defn.pattern.within_ms
        self.sources = defn.sources
        self.window_ms = defn.window_ms
        self.filter_key: str | None = f"pattern:{defn.key}"
        """Events that are neither A nor B do not feed the feature (the engine skips them)."""
        self.filter_names: frozenset[str] = frozenset().union(
            *(step.where.names for step in (self.pattern.first, self.pattern.then) if step.where is not None))

    def matches(self, event: Mapping[str, Any]) -> bool:
        return self.pattern.first.matches(event) or self.pattern.then.matches(event)

    def sides(self, event: Mapping[str, Any]) -> tuple[bool, bool]:
        """Whether the event is an A, a B (it may be both)."""
        return self.pattern.first.matches(event), self.pattern.then.matches(event)


class AbsenceRuntime(PatternRuntime):
    """``absence``: see the module docstring."""

    def fold(self, data: Any, event: Mapping[str, Any], now_ms: int) -> tuple[Any, bool]:
        is_a, is_b = self.sides(event)
        ts_ms = event["ts_ms"]
        last_b, pending = (None, []) if data is None else (data[0], data[1])
        late = False
        if is_b:
            if last_b is None or ts_ms > last_b:
                last_b = ts_ms
            # A B at or after an A cancels it (and every earlier one).
            del pending[:bisect.bisect_right(pending, ts_ms)]
        if is_a and not is_b:
            if self.window_ms is not None and ts_ms <= now_ms - self.window_ms:
                late = True  # already out of the window: it could never make the feature true
            elif (last_b is None or ts_ms > last_b) and ts_ms not in pending:
                if self.window_ms is not None:  # the cap must only ever weigh A's inside the window
                    del pending[:bisect.bisect_right(pending, now_ms - self.window_ms)]
                bisect.insort(pending, ts_ms)
                self._cap(pending)
        if last_b is None and not pending:
            return None, late
        return [last_b, pending], late

    def merge(self, a: Any, b: Any, now_ms: int) -> Any:
        """One customer made of two: the latest B of either cancels every A at or before it."""
        if a is None or b is None:
            return b if a is None else a
        bs = [t for t in (a[0], b[0]) if t is not None]
        last_b = max(bs) if bs else None
        pending = sorted({t for t in (*a[1], *b[1]) if last_b is None or t > last_b})
        self._cap(pending)
        return None if last_b is None and not pending else [last_b, pending]

    def _cap(self, pending: list[int]) -> None:
        while len(pending) > MAX_PENDING:
            # Drop the interior time whose neighbours are closest: while they are at most
            # window - within apart, its on-interval [a + T, a + W) lies inside theirs.
            i = min(range(1, len(pending) - 1), key=lambda j: pending[j + 1] - pending[j - 1])
            del pending[i]

    def value(self, data: Any, now_ms: int) -> bool:
        # After prune, every pending A is inside the window; the earliest decides.
        return data is not None and bool(data[1]) and data[1][0] <= now_ms - self.within_ms

    def prune(self, data: Any, now_ms: int) -> Any:
        if data is None or self.window_ms is None:
            return data
        start = now_ms - self.window_ms
        last_b, pending = data
        if pending and pending[0] <= start:
            del pending[:bisect.bisect_right(pending, start)]
        if last_b is not None and last_b <= start:
            last_b = None  # an A at or before it would be out of the window anyway
        return None if last_b is None and not pending else [last_b, pending]

    def next_change_ms(self, data: Any, now_ms: int) -> float:
        """Each pending A turns the feature on at ``A.ts + within`` and off at ``A.ts + window``."""
        if data is None:
            return NEVER
        best = NEVER
        for a in data[1]:
            on = a + self.within_ms
            if on > now_ms:
                return min(best, on)  # later A's turn on later still
            if self.window_ms is not None and a + self.window_ms > now_ms:
                best = min(best, a + self.window_ms)
        return best


class SequenceRuntime(PatternRuntime):
    """``sequence``: see the module docstring."""

    def __init__(self, defn: FeatureDef) -> None:
        super().__init__(defn)
        self.resolution_ms = (defn.resolution_ms or default_resolution_ms(defn.window_ms)
                              if defn.window_ms is not None else None)

    def fold(self, data: Any, event: Mapping[str, Any], now_ms: int) -> tuple[Any, bool]:
        is_a, is_b = self.sides(event)
        ts_ms = event["ts_ms"]
        runs, unmatched, done = ([], [], None) if data is None else data
        late = False
        if is_b:  # first, so an event that is both an A and a B does not complete itself
            if not self._live(ts_ms, now_ms):
                late = True  # out of the window already: it can neither count nor be counted later
            elif any(s <= ts_ms <= e + self.within_ms for s, e in runs):
                done = self._count(done, ts_ms, now_ms)
            else:
                bisect.insort(unmatched, ts_ms)
                del unmatched[:-MAX_UNMATCHED]
        if is_a:
            self._add_a(runs, ts_ms)
            # A late A completes the B's it now precedes (each B counts once).
            for y in [y for y in unmatched if ts_ms <= y <= ts_ms + self.within_ms and not (is_b and y == ts_ms)]:
                unmatched.remove(y)
                done = self._count(done, y, now_ms)
        if not runs and not unmatched and not done:
            return None, late
        return [runs, unmatched, done], late

    def merge(self, a: Any, b: Any, now_ms: int) -> Any:
        """One customer made of two: completions add up, runs join, and each side's unmatched B's are
        matched against the *other* side's runs (never its own: an event that is both an A and a B
        does not complete itself, and its own side already tried them)."""
        if a is None or b is None:
            return b if a is None else a
        (runs_a, unmatched_a, done), (runs_b, unmatched_b, done_b) = a, b
        done = self._add_done(done, done_b)
        unmatched: list[int] = []
        for mine, theirs in ((unmatched_a, runs_b), (unmatched_b, runs_a)):
            for y in mine:
                if any(s <= y <= e + self.within_ms for s, e in theirs):
                    done = self._count(done, y, now_ms)
                else:
                    bisect.insort(unmatched, y)
        del unmatched[:-MAX_UNMATCHED]
        runs = [list(r) for r in runs_a]
        for s, e in runs_b:
            self._add_run(runs, s, e)
        if not runs and not unmatched and not done:
            return None
        return [runs, unmatched, done]

    def _add_done(self, a: Any, b: Any) -> Any:
        if not a or not b:
            return a or b
        if self.resolution_ms is None:
            return a + b
        buckets = {k: n for k, n in a}
        for k, n in b:
            buckets[k] = buckets.get(k, 0) + n
        return [[k, buckets[k]] for k in sorted(buckets)]

    def _add_a(self, runs: list[list[int]], ts_ms: int) -> None:
        """Adds an A time to the runs (runs closer than ``within`` merge: their coverage
        ``[start, end + within]`` is then one interval, so nothing is lost)."""
        self._add_run(runs, ts_ms, ts_ms)

    def _add_run(self, runs: list[list[int]], start_ms: int, end_ms: int) -> None:
        t = self.within_ms
        runs.append([start_ms, end_ms])
        runs.sort()
        merged: list[list[int]] = []
        for s, e in runs:
            if merged and s <= merged[-1][1] + t:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        runs[:] = merged[-MAX_RUNS:]

    def _live(self, ts_ms: int, now_ms: int) -> bool:
        res, window_ms = self.resolution_ms, self.window_ms
        if res is None or window_ms is None:
            return True
        return bucket_expiry_ms(bucket_of(ts_ms, res), res, window_ms) > now_ms

    def _count(self, done: Any, ts_ms: int, now_ms: int) -> Any:
        """One more completion at ``ts_ms`` (a B time)."""
        res = self.resolution_ms
        if res is None:
            return (done or 0) + 1
        if not self._live(ts_ms, now_ms):
            return done
        buckets = {b: n for b, n in (done or [])}
        b = bucket_of(ts_ms, res)
        buckets[b] = buckets.get(b, 0) + 1
        return [[k, buckets[k]] for k in sorted(buckets)]

    def value(self, data: Any, now_ms: int) -> int:
        if data is None or not data[2]:
            return 0
        done = data[2]
        return int(done) if self.resolution_ms is None else sum(n for _, n in done)

    def prune(self, data: Any, now_ms: int) -> Any:
        res, window_ms = self.resolution_ms, self.window_ms
        if data is None or res is None or window_ms is None:
            return data
        lo = oldest_live_bucket(now_ms, res, window_ms)
        runs, unmatched, done = data
        runs = [r for r in runs if bucket_of(r[1] + self.within_ms, res) >= lo]
        unmatched = [y for y in unmatched if bucket_of(y, res) >= lo]
        done = [bn for bn in done or [] if bn[0] >= lo] or None
        return None if not runs and not unmatched and not done else [runs, unmatched, done]

    def next_change_ms(self, data: Any, now_ms: int) -> float:
        """The count drops when its oldest live bucket leaves the window."""
        res, window_ms = self.resolution_ms, self.window_ms
        if data is None or not data[2] or res is None or window_ms is None:
            return NEVER
        lo = oldest_live_bucket(now_ms, res, window_ms)
        live = [b for b, _ in data[2] if b >= lo]
        return bucket_expiry_ms(min(live), res, window_ms) if live else NEVER


def pattern_runtime(defn: FeatureDef) -> AbsenceRuntime | SequenceRuntime:
    """The run-time object of a sequence or absence feature."""
    return AbsenceRuntime(defn) if defn.agg == "absence" else SequenceRuntime(defn)
