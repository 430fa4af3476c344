"""Feature values at an instant, under the names the tags read them by: the tag engine's reads.

Features with the same definition share one state entry (a key) and may be read under several
names. A windowed value is read at ``now``: its buckets that left the window are dropped then.
A tag that reads a feature the event did not feed (a guard such as ``spend_30d >= 1000``, checked
at every view) reads it through ``read``, which keeps the value in ``state.value_cache`` until the
feature is fed or changes, when the value does not move with the clock (not a time-since).
"""

from __future__ import annotations

from typing import Any, Final

from streams.engine.features.runtime import FeatureRuntime, Runtime
from streams.engine.features.state import CustomerState

UNREAD: Final[Any] = object()
"""A value not read yet (not in ``state.value_cache``, not in an evaluation's values). ``Final``:
compiled as a C static (a module global is a dictionary look-up at every use: 2 per guard checked)."""


def value_at(feats: dict[str, Any], rt: Runtime, now_ms: int) -> Any:
    """One feature's value at ``now_ms`` (drops its buckets that left the window)."""
    data = feats.get(rt.key)
    if data is not None and rt.window_ms is not None:
        data = rt.prune(data, now_ms)
        if data is None:
            del feats[rt.key]
        else:
            feats[rt.key] = data
    return rt.value(data, now_ms)


class FeatureReads:
    """The engine's features: each runtime once (``runtimes``), by name and the names of each key."""

    def __init__(self, runtimes: list[Runtime], runtime_of: dict[str, Runtime],
                 names_by_key: dict[str, list[str]]) -> None:
        self.runtimes = runtimes
        self.runtime_of = runtime_of
        self.names_by_key = names_by_key
        self.steady = frozenset(rt.key for rt in runtimes if isinstance(rt, FeatureRuntime) and not rt.takes_thresholds)
        """Keys whose value changes only when fed or at their next change (``read``)."""
        self.plans: dict[str, tuple[Runtime, str, bool, list[str]]] = {
            name: (rt, rt.key, rt.key in self.steady, names_by_key[rt.key]) for name, rt in runtime_of.items()}
        """What ``read`` needs of a name, in one look-up: its runtime, state key, whether the key is
        ``steady``, and every name of the key."""

    def all(self, state: CustomerState, now_ms: int) -> dict[str, Any]:
        """Every feature's value at ``now_ms``, by name."""
        feats = state.features
        values: dict[str, Any] = {}
        for rt in self.runtimes:
            v = value_at(feats, rt, now_ms)
            for name in self.names_by_key[rt.key]:
                values[name] = v
        return values

    def read(self, name: str, state: CustomerState, values: dict[str, Any], now_ms: int) -> Any:
        """Feature ``name``'s value at ``now_ms``, put in ``values`` under every name of its key.

        A value in ``state.value_cache`` holds until the feature's next change or an event that
        feeds it: the first empties the cache (a due time: ``TagEngine.next_due_ms``, run by
        ``catch_up`` before any later event), the second drops the value from it
        (``TagEngine.process_event``)."""
        rt, key, steady, names = self.plans[name]
        cache = state.value_cache
        if cache is None or not steady:
            v = value_at(state.features, rt, now_ms)
        else:
            v = cache.get(key, UNREAD)
            if v is UNREAD:
                v = cache[key] = value_at(state.features, rt, now_ms)
        for n in names:
            values[n] = v
        return v
