"""The customer stage's path through the Rust core's tag engine (``CoreTagEngine``, issue 9).

``CoreCustomers`` folds a customer's batch with the core when the core holds its state
(``CoreTagEngine.state_for``) and none of its items is identity business (the stage checks):
``events`` takes a batch of plain events as the bytes ``NativeEngine.split`` cut them to, in one
call; ``items`` takes decoded items, ticks among them. Both fold into a copy of the state: when the
core meets something it does not reproduce (it raises NotImplementedError) or an item only the
Python engine handles (a backfill replay, an anonymous customer's expiry), they return None having
changed nothing and counted nothing, and the stage folds the batch with the Python engine from the
stored state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from streams.app.customer_identity import IdentityItems
from streams.app.published import Published
from streams.engine.clock import Clock
from streams.engine.native_engine import CoreTagEngine
from streams.io.metrics import Metrics, Tally

Counts = list[tuple[str, int, int, int]]
"""Per source: (source, events, duplicates, late), as ``NativeEngine.fold_events`` returns them."""
Result = tuple[list[Published], Any]
"""A customer's changes and its new state (None: nothing to keep)."""


class CoreCustomers:
    """Customers' batches folded by the core, counted in the stage's metrics once kept."""

    def __init__(self, core: CoreTagEngine, clock: Clock, metrics: Metrics, processed: Tally,
                 identity: IdentityItems | None) -> None:
        self.core = core
        self.clock = clock
        self.metrics = metrics
        self.processed = processed
        self.identity = identity
        self._folded = metrics.customer_engine.labels("core")

    def events(self, key: bytes, items: list[bytes], stored: Any) -> Result | None:
        """Plain events (their bytes) in one call; an anonymous visitor whose tags are not published
        is folded only (``TagEngine.fold_only``)."""
        state = self.core.state_for(stored)
        if state is None:
            return None
        ident = self.identity
        now_ms = self.clock.now_ms()
        try:
            pairs, counts = self.core.fold_events(state, items, now_ms, ident is None or ident.evaluated(key))
        except NotImplementedError:
            return None
        self._kept(key, state, counts, len(items))
        return [Published(c, ts) for c, ts in pairs], state

    def items(self, key: bytes, objs: list[dict[str, Any]], stored: Any) -> Result | None:
        """Decoded items (events and ticks), one core call each."""
        state = self.core.state_for(stored)
        if state is None:
            return None
        try:
            folded = _fold(self.core, state, objs, self.clock, expiring=self.identity is not None)
        except NotImplementedError:
            return None
        if folded is None:
            return None
        published, counts = folded
        events = sum(n for _, n, _, _ in counts)
        if not events and stored is None:
            self._folded.inc()
            return published, None  # ticks only, for a customer with no state: nothing to keep
        self._kept(key, state, counts, events)
        return published, state

    def _kept(self, key: bytes, state: Any, counts: Iterable[tuple[str, int, int, int]], events: int) -> None:
        m = self.metrics
        for source, n, duplicates, late in counts:
            self.processed.add(source, n)
            if duplicates:
                m.events_duplicate.labels(source).inc(duplicates)
            if late:
                m.events_late.labels(source).inc(late)
        if events and self.identity is not None:
            self.identity.after_events(key, state, events, self.clock.now_ms())
        self._folded.inc()


def _fold(core: CoreTagEngine, state: Any, objs: list[dict[str, Any]], clock: Clock,
          expiring: bool) -> tuple[list[Published], Counts] | None:
    """One customer's decoded items folded into ``state`` (a native state of ``core``'s);
    ``expiring``: anonymous customers expire (identity resolution), which the Python engine does.
    None: an item only the Python engine handles (``state`` is then to be dropped)."""
    published: list[Published] = []
    counts: dict[str, list[int]] = {}
    for obj in objs:
        now_ms = clock.now_ms()
        tick = obj.get("tick")
        if tick is not None:
            if expiring and state.expires_ms is not None and now_ms >= state.expires_ms:
                return None
            if state.due_ms == tick:  # else stale: an event since then already moved the due time
                published += [Published(c, None) for c in core.catch_up(state, obj["customer_id"], now_ms)]
            continue
        if "bf" in obj:
            return None
        changes, late, duplicate = core.process_event(state, orjson.dumps(obj), now_ms)
        n = counts.setdefault(obj["source"], [0, 0, 0])
        n[0] += 1
        n[1] += duplicate
        n[2] += late
        if changes:
            via = obj.get("via")
            if via is not None:  # forwarded from an absorbed id: the change says which
                for c in changes:
                    c["via"] = via
            ts = obj["src_ts_ms"]
            published += [Published(c, ts if c["cause"] == "event" else None) for c in changes]
    return published, [(source, n[0], n[1], n[2]) for source, n in counts.items()]
