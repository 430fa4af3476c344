"""Due times: what the tag engine does when time alone may change a tag (a bucket leaving a
window, a ``since_last`` threshold passing, a flap-control gate ending), with no new event.

A customer's state carries its next due time (``CustomerState.due_ms``, the earliest next change of
any of its features or gates, each remembered in ``CustomerState.next_change``); the due timer
(streams/app/due_timer.py) and every event run ``catch_up`` first, which walks the due times up to
now in order. At a due time only what changes at that instant is evaluated, through the tag index
as after an event (``_at_due_time``); ``process_due`` evaluates every tag (a state on other rules,
the reference with ``incremental=False``, a backlog of due times too long to walk).

``DueTimes`` is the tag engine's base class (streams/engine/tag_engine.py): the engine sets the
attributes declared here and gives the evaluation (``_diff``, ``_evaluate_flipped``, ``_upgrade``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from schemas.tags import ChangeCause
from streams.engine import flap
from streams.engine.backfill import BackfillTracker
from streams.engine.feature_reads import UNREAD, FeatureReads, value_at
from streams.engine.features.runtime import Runtime
from streams.engine.features.state import CustomerState
from streams.engine.flips import Flips
from streams.engine.since_due import SinceDue
from streams.engine.tag_change import Change
from streams.engine.tag_index import TagIndex

MAX_CATCH_UP_STEPS: Final = 1000
"""Due times ``catch_up`` walks one by one at most; past that it jumps to now (``process_due``)."""
GATE: Final = "\x00gate"
"""``CustomerState.next_change``'s entry for the next flap-control gate (feature keys are hex digests)."""


def earliest(cache: dict[str, float]) -> float:
    """The earliest of ``CustomerState.next_change``'s instants (inf: none). A loop compiled on
    doubles: ``min(cache.values(), default=inf)`` is a generic call of the builtin, ~6,300
    instructions for a customer's ~18 entries, at every event and due run."""
    best = math.inf
    for t in cache.values():
        if t < best:
            best = t
    return best


class DueTimes:
    """The due-time path of the tag engine (see the module docstring)."""

    incremental: bool
    version: str
    runtimes: list[Runtime]
    _runtime_by_key: dict[str, Runtime]
    tracker: BackfillTracker
    _reads: FeatureReads
    _index: TagIndex
    _names_by_key: dict[str, list[str]]
    _gated: flap.Gates
    _gated_names: frozenset[str]
    _gated_indexes: list[int]
    _cooldown_ms: dict[str, int]
    _since: SinceDue

    def process_due(self, state: CustomerState, customer_id: str, due_ms: int, now_ms: int) -> list[Change]:
        """Re-evaluates ``state`` at its due time (no new event); changes carry ``at_ms = due_ms``.

        A due time that fell while no worker owned the partition is evaluated at that past
        instant, so the message tells the true time; the next due time then follows at once.
        """
        changes: list[Change] = []
        at_ms = min(due_ms, now_ms)
        if state.removed:  # cooldowns that have passed are forgotten at their own due time
            flap.forget_passed(state.removed, self._cooldown_ms, at_ms)
        if state.backfill:
            self.tracker.prune(state.backfill, at_ms)
        if state.rule_version != self.version:
            changes += self._upgrade(state, customer_id, at_ms)
        values = self._reads.all(state, at_ms)
        changes += self._diff(state, customer_id, values, at_ms, "expiry", None)
        state.due_ms = self.next_due_ms(state, at_ms)
        return changes

    def catch_up(self, state: CustomerState, customer_id: str, now_ms: int) -> list[Change]:
        """Runs every due time up to ``now_ms`` in order; each change carries its own instant."""
        changes: list[Change] = []
        for _ in range(MAX_CATCH_UP_STEPS):
            due_ms = state.due_ms
            if due_ms is None or due_ms > now_ms:
                break
            changes += self._at_due_time(state, customer_id, due_ms)
        else:
            # A pathological backlog of due instants: jump to now instead of walking each one.
            changes += self.process_due(state, customer_id, now_ms, now_ms)
        return changes

    def next_due_ms(self, state: CustomerState, now_ms: int) -> int | None:
        """The next instant after ``now_ms`` at which a tag may change with time alone: the
        earliest per-feature next change (cached in ``state.next_change``) or flap-control gate."""
        best = math.inf
        feats = state.features
        cache = state.next_change = {}
        state.value_cache = {}
        held = state.tags
        for rt in self.runtimes:
            data = feats.get(rt.key)
            if data is not None:
                t = cache[rt.key] = self.next_change_of(rt, data, now_ms, held)
                if t < best:
                    best = t
        if self._gated:
            gate = cache[GATE] = self._next_gate(state, now_ms)
            best = min(best, gate)
        return None if best == math.inf else int(best)

    def next_change_of(self, rt: Runtime, data: Any, now_ms: int, held: dict[str, int]) -> float:
        """The next instant after ``now_ms`` at which feature ``rt`` (state ``data``) can change a
        tag of a customer holding ``held``: its next change, or for a time-since value the next
        threshold that matters (streams/engine/since_due.py)."""
        if data is not None and rt.takes_thresholds:
            return self._since.next_ms(rt.key, data, now_ms, held)
        return rt.next_change_ms(data, now_ms)

    def _renew_since(self, state: CustomerState, changes: list[Change], now_ms: int) -> None:
        """After tag changes: the next threshold of the time-since values whose thresholds matter
        depending on a changed tag (``SinceDue.keys_of``), in ``state.next_change``."""
        cache = state.next_change
        keys_of = self._since.keys_of
        if cache is None or not keys_of:
            return
        feats = state.features
        for change in changes:
            keys = keys_of.get(change["tag"])
            if keys is None:
                continue
            for key in keys:
                data = feats.get(key)
                if data is not None:
                    cache[key] = self._since.next_ms(key, data, now_ms, state.tags)

    def _next_gate(self, state: CustomerState, now_ms: int) -> float:
        """The first instant after ``now_ms`` at which a min_duration or cooldown ends (inf: none)."""
        gate = self._gated.next_ms(state.tags, state.removed, now_ms)
        return math.inf if gate is None else gate

    def _at_due_time(self, state: CustomerState, customer_id: str, due_ms: int) -> list[Change]:
        """``process_due`` at the due time itself, evaluating only the tags that what changes at
        this instant can flip, as after an event: the features whose next change it is (their value
        just before against their value now, through the ``TagIndex``) and, when a flap-control gate
        ends, the gated tags. Nothing else changed since the last evaluation (the due time is the
        earliest next change), so the others keep their outcome. A full evaluation of 1,000 tags at
        every bucket that leaves a window was most of their cost once time passes
        (benchmarks/RULES.md). Not incremental, or a state on another rule version: ``process_due``."""
        if not self.incremental or state.rule_version != self.version:
            return self.process_due(state, customer_id, due_ms, due_ms)
        cache = state.next_change
        just_before = due_ms - 1
        gate_ends = False
        if self._gated:  # before the passed cooldowns are forgotten: their end is a gate
            gate = cache.get(GATE) if cache is not None else None
            gate_ends = (self._next_gate(state, just_before) if gate is None else gate) <= due_ms
        if state.removed:  # cooldowns that have passed are forgotten at their own due time
            flap.forget_passed(state.removed, self._cooldown_ms, due_ms)
        if state.backfill:
            self.tracker.prune(state.backfill, due_ms)
        feats = state.features
        read = state.value_cache
        steady = self._reads.steady
        values: dict[str, Any] = {}
        flips = self._index.flips(self._gated_indexes if gate_ends else ())
        changed: list[Runtime] = []
        for rt in self._due_features(state, due_ms):
            key = rt.key
            # a steady value remembered since its last change or feed is the one just before this one
            old = read.get(key, UNREAD) if read is not None and key in steady else UNREAD
            if old is UNREAD:
                old = value_at(feats, rt, just_before)
            new = value_at(feats, rt, due_ms)
            changed.append(rt)
            if read is not None:  # a steady value holds until its next change; the others are read again
                if key in steady:
                    read[key] = new
                else:
                    read.pop(key, None)
            for name in self._names_by_key[key]:
                values[name] = new
            self._index.flipped(key, old, new, flips)
        changes = self._evaluate_flipped(state, customer_id, flips, values, due_ms, "expiry", None)
        state.due_ms = self._next_due_after(state, due_ms, changed, changes, gate_ends)
        return changes

    def _due_features(self, state: CustomerState, due_ms: int) -> list[Runtime]:
        """The features with data whose next change is at ``due_ms`` (none is earlier: it is the
        state's due time): from ``state.next_change``, which has an entry for each feature with
        data (``next_due_ms``, kept by events and due times), else from each runtime."""
        feats = state.features
        cache = state.next_change
        if cache is not None:
            by_key = self._runtime_by_key
            due: list[Runtime] = []
            for key, nxt in cache.items():
                if nxt <= due_ms:
                    rt = by_key.get(key)  # None: the flap-control gate (``GATE``)
                    if rt is not None and key in feats:
                        due.append(rt)
            return due
        # a state read back from its encoding has no cache
        return [rt for rt in self.runtimes
                if (data := feats.get(rt.key)) is not None and rt.next_change_ms(data, due_ms - 1) <= due_ms]

    def _next_due_after(self, state: CustomerState, due_ms: int, changed: list[Runtime], changes: list[Change],
                        gate_ends: bool) -> int | None:
        """``next_due_ms`` after the due time ``due_ms``, from the cached next changes: only the
        features that changed at it (``changed``) and, when a gate ended or a gated tag changed, the
        next gate are computed again. The others keep theirs, which are after ``due_ms`` (it was the
        earliest), and their remembered values (``state.value_cache``) stay true until then."""
        cache = state.next_change
        if cache is None:
            return self.next_due_ms(state, due_ms)
        feats = state.features
        held = state.tags
        for rt in changed:
            data = feats.get(rt.key)
            if data is None:  # its last bucket left the window
                cache.pop(rt.key, None)
            else:
                cache[rt.key] = self.next_change_of(rt, data, due_ms, held)
        if changes:  # a time-since threshold may matter now, or no longer (``SinceDue``)
            self._renew_since(state, changes, due_ms)
        if self._gated and (gate_ends or (changes and not self._gated_names.isdisjoint([c["tag"] for c in changes]))):
            cache[GATE] = self._next_gate(state, due_ms)
        best = earliest(cache)
        if best <= due_ms:  # an entry not renewed here (cannot happen): compute every one
            return self.next_due_ms(state, due_ms)
        return None if best == math.inf else int(best)


    # -- given by the engine ---------------------------------------------------------------

    def _upgrade(self, state: CustomerState, customer_id: str, now_ms: int) -> list[Change]:
        raise NotImplementedError

    def _diff(self, state: CustomerState, customer_id: str, values: dict[str, Any], at_ms: int,
              cause: ChangeCause, event: Mapping[str, Any] | None, tags: list[int] | None = None,
              ref: str | None = None) -> list[Change]:
        raise NotImplementedError

    def _evaluate_flipped(self, state: CustomerState, customer_id: str, flips: Flips, values: dict[str, Any],
                          now_ms: int, cause: ChangeCause, event: Mapping[str, Any] | None) -> list[Change]:
        raise NotImplementedError
