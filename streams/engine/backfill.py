"""Backfill bookkeeping: which source records a new feature has counted, so that seeding it from
the source topics' retained history (``tagstream backfill``) counts every record exactly once.

Pure: no Kafka, no clock. Words used below:

* a feature *key* (``FeatureDef.key``) is *born* at the deployment that first brought it into the
  rule set in force (``next_births``); the keys of the worker's local rule set have no birth.
  All keys born together form a *group*, named by the birth instant.
* a group is *tracked* for ``window_ms`` after its birth (``TAGSTREAM_ENGINE__BACKFILL_WINDOW_MS``,
  the source topics' retention): only then can a backfill reach it.
* a *source position* is the source topic-partition (``sp``, e.g. ``"pos:1"``) and offset
  (``so``) of a record; ingest stamps both on every canonical event, the backfill tool too.

Per customer and tracked group the state keeps a small *book* (``CustomerState.backfill``)::

    {"<birth_ms>": {"l": {sp: the first offset the live path processed under a rule set with the group},
                    "d": {key: {sp: [[a, b], ...]}}}}   # offsets the backfill applied to key: [a, b) ranges

A replay *run* reads each source partition in offset order from a start offset ``F`` (carried by
every replayed event), and the worker sees one partition's records of a customer in order (one
customer-topic partition, one producer per run), so after a replayed event at offset ``o`` every
record of this customer in ``[F, min(o + 1, l))`` has been applied: that range joins ``d``.

* the live path counts an event for a tracked key iff its offset is not in ``d``;
* the backfill applies a replayed event to a key iff its offset is not in ``d`` (not applied by
  an earlier run) and is below ``l`` (the live path starts at ``l`` and goes up: it never counts
  an offset below ``l``; at or above it, it counts every offset not in ``d``).

So every offset is counted once, whichever path comes first, however often and from wherever
the backfill runs (tests/unit/test_backfill.py checks every interleaving it can draw).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tag_rules import CompiledRuleSet

Book = dict[str, Any]
"""``CustomerState.backfill``: birth (as a string, JSON object keys are) -> {"l": …, "d": …}."""

NO_KEYS: frozenset[str] = frozenset()


def state_keys(rules: CompiledRuleSet) -> frozenset[str]:
    """The feature state keys a worker under ``rules`` keeps: those of the features its tags read."""
    return frozenset(rules.features[n].key for tag in rules.tags.values() for n in tag.features)


def next_births(births: Mapping[str, int], old_keys: Iterable[str], new_keys: Iterable[str],
                deployed_at_ms: int) -> dict[str, int]:
    """The births after a deployment at ``deployed_at_ms`` replaces a rule set with ``old_keys``
    by one with ``new_keys``: a key already there keeps its birth (or its lack of one), a key that
    was not is born now, a key that leaves is forgotten (its state is dropped at the switch)."""
    old = frozenset(old_keys)
    out: dict[str, int] = {}
    for key in new_keys:
        if key not in old:
            out[key] = deployed_at_ms
        elif key in births:
            out[key] = births[key]
    return out


def position(event: Mapping[str, Any]) -> tuple[str, int] | None:
    """The event's source position, or None when it carries none (written by an older ingest)."""
    sp, so = event.get("sp"), event.get("so")
    if isinstance(sp, str) and isinstance(so, int):
        return sp, so
    return None


class BackfillTracker:
    """Keeps the books of one rule set's born keys (``births``: key -> birth_ms)."""

    def __init__(self, births: Mapping[str, int], window_ms: int) -> None:
        self.births = dict(births)
        self.window_ms = window_ms
        groups: dict[int, set[str]] = {}
        for key, birth in self.births.items():
            groups.setdefault(birth, set()).add(key)
        self._groups = {str(b): frozenset(keys) for b, keys in sorted(groups.items())}
        self._last_birth = max(groups, default=None)

    def __bool__(self) -> bool:
        return bool(self.births)

    def tracked(self, key: str, now_ms: int) -> bool:
        """A backfill can still reach ``key`` at ``now_ms``."""
        birth = self.births.get(key)
        return birth is not None and now_ms < birth + self.window_ms

    def _live_groups(self, now_ms: int) -> list[str]:
        return [g for g in self._groups if now_ms < int(g) + self.window_ms]

    def prune(self, book: Book, now_ms: int) -> None:
        """Forgets groups no longer tracked (their window passed, or their keys left the rule set)
        and the marks of keys that left."""
        for g in [g for g in book if g not in self._groups or now_ms >= int(g) + self.window_ms]:
            del book[g]
        for g, entry in book.items():
            marks = entry.get("d")
            if marks:
                for key in [k for k in marks if k not in self._groups[g]]:
                    del marks[key]

    def on_live(self, book: Book, event: Mapping[str, Any], now_ms: int) -> frozenset[str]:
        """A live event is about to be folded: records its source position as the group's first
        live one (per source partition) and returns the tracked keys it must NOT feed (the
        backfill already applied this offset to them)."""
        if book:
            self.prune(book, now_ms)
        if self._last_birth is None or now_ms >= self._last_birth + self.window_ms:
            return NO_KEYS  # nothing tracked (the common case): no book is started
        pos = position(event)
        if pos is None:
            return NO_KEYS
        sp, so = pos
        skip: set[str] = set()
        for g in self._live_groups(now_ms):
            entry = book.setdefault(g, {})
            entry.setdefault("l", {}).setdefault(sp, so)
            for key, marks in (entry.get("d") or {}).items():
                if covered(marks.get(sp) or [], so):
                    skip.add(key)
        return frozenset(skip) if skip else NO_KEYS

    def on_replay(self, book: Book, event: Mapping[str, Any], keys: Iterable[str], start: int,
                  now_ms: int) -> list[str]:
        """A replayed event for ``keys``, from a run that began its source partition at offset
        ``start``: returns the keys it must feed now (tracked, not applied by a run before, not
        counted live) and records the run's progress for each."""
        if book:
            self.prune(book, now_ms)
        pos = position(event)
        if pos is None:
            return []
        sp, so = pos
        out: list[str] = []
        for key in keys:
            if not self.tracked(key, now_ms):
                continue
            entry = book.setdefault(str(self.births[key]), {})
            live = (entry.get("l") or {}).get(sp)
            ranges = entry.setdefault("d", {}).setdefault(key, {}).setdefault(sp, [])
            if not covered(ranges, so) and (live is None or so < live):
                out.append(key)
            end = so + 1 if live is None else min(so + 1, live)
            if start < end:
                add_range(ranges, start, end)
        return out


def covered(ranges: list[list[int]], offset: int) -> bool:
    """``offset`` lies in one of the sorted, disjoint ``[a, b)`` ranges."""
    return any(a <= offset < b for a, b in ranges)


def add_range(ranges: list[list[int]], start: int, end: int) -> None:
    """Adds ``[start, end)`` to sorted, disjoint ranges, merging what touches (in place)."""
    merged: list[list[int]] = []
    for a, b in sorted([*ranges, [start, end]]):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    ranges[:] = merged
