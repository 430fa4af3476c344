"""One feature at run time: how it folds an event into a customer's state and reads its value.

The state of a feature lives in ``CustomerState.features[feature.key]`` as plain JSON data:

============================  =============================================================
windowed count/sum/min/...    ``{bucket: acc}`` (JSON object keys are strings: converted back on first use)
windowed distinct_count       ``{value: newest bucket}``
lifetime count/sum/min/...    ``acc``
lifetime distinct_count       ``{value: 0}`` (capped at ``MAX_DISTINCT`` values)
since_last                    ``ts_ms`` of the newest matching event
============================  =============================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final

from streams.engine.features.aggregations import AGGREGATIONS, Aggregation
from streams.engine.features.base import Runtime
from streams.engine.features.sequences import pattern_runtime
from streams.engine.features.windows import bucket_expiry_ms, bucket_of, default_resolution_ms, oldest_live_bucket
from tag_rules import FeatureDef

MAX_DISTINCT: Final = 1000
"""Distinct values remembered per feature and customer; the oldest are forgotten first."""

NEVER: Final = math.inf
_EXACT_MS: Final = 1 << 50
"""Milliseconds a float holds exactly with room to spare (``_value_since``)."""

LIFETIME: Final = 0
WINDOW: Final = 1
DISTINCT: Final = 2
"""``FeatureRuntime.shape``: ``LIFETIME`` or ``WINDOW``, plus ``DISTINCT`` for a distinct count."""


def runtime_for(defn: FeatureDef, thresholds_s: Iterable[float] = ()) -> Runtime:
    """The run-time object of a compiled feature."""
    if defn.pattern is not None:
        return pattern_runtime(defn)
    return FeatureRuntime(defn, thresholds_s)


def shared_runtimes(features: Mapping[str, FeatureDef], used: Iterable[str],
                    thresholds: Mapping[str, Collection[float]]) -> tuple[dict[str, Runtime], dict[str, list[str]]]:
    """The run-time object per state key of the ``used`` features, and the names that use each key:
    features with the same definition share one state entry (same key), and a shared key merges
    the time-since thresholds of every name that uses it."""
    by_key: dict[str, Runtime] = {}
    names_by_key: dict[str, list[str]] = {}
    for name in sorted(used):
        fdef = features[name]
        by_key.setdefault(fdef.key, runtime_for(fdef, thresholds.get(name, ())))
        names_by_key.setdefault(fdef.key, []).append(name)
    for key, names in names_by_key.items():
        if len(names) > 1 and by_key[key].takes_thresholds:
            merged = sorted({t for n in names for t in thresholds.get(n, ())})
            by_key[key] = runtime_for(features[names[0]], merged)
    return by_key, names_by_key


class FeatureRuntime(Runtime):
    """Folds events into one feature's state and reads its value at an instant.

    The feature's shape (lifetime or windowed; a plain accumulator, distinct values, or the
    time since the last event) is resolved once, here: ``fold``, ``value``, ``prune`` and
    ``next_change_ms`` are bound to the methods for that shape, so the per-event path does not
    ask which shape it is.
    """

    __slots__ = ("agg", "defn", "field", "filter_key", "filter_names", "key", "name", "resolution_ms", "shape",
                 "sources", "takes_thresholds", "thresholds_ms", "values_of", "where", "window_ms")

    def __init__(self, defn: FeatureDef, thresholds_s: Iterable[float] = ()) -> None:
        self.defn = defn
        self.name = defn.name
        self.key = defn.key
        self.agg: Aggregation = AGGREGATIONS[defn.agg]
        self.field = defn.field
        self.sources = defn.sources
        self.where = defn.where
        self.filter_key = defn.where.source if defn.where is not None else None
        """Features with the same filter text share one evaluation of it per event (None: no filter)."""
        self.filter_names = defn.where.names if defn.where is not None else frozenset()
        self.window_ms = defn.window_ms
        self.resolution_ms = (defn.resolution_ms or default_resolution_ms(defn.window_ms)
                              if defn.window_ms is not None else None)
        distinct = defn.agg == "distinct_count"
        self.takes_thresholds = defn.agg == "since_last"
        """Its value moves with the clock: ``since >= T`` rules flip at instants the thresholds give."""
        # Instants (relative to the newest event) at which `since >= T`-style rules flip;
        # ">" needs the next millisecond, so both are candidates.
        self.thresholds_ms = tuple(sorted({ms for t in thresholds_s
                                           for ms in (math.ceil(t * 1000), math.ceil(t * 1000) + 1)}))
        self.values_of: Callable[[Mapping[str, Any]], list[Any]] = (
            self._each_value if distinct else self._one_value)
        self.shape = (LIFETIME if self.window_ms is None else WINDOW) + (DISTINCT if distinct else 0)
        """How ``fold``, ``value``, ``prune``, ``next_change_ms`` and ``merge`` go: lifetime or windowed,
        plain or distinct (``LIFETIME`` ..., with ``takes_thresholds`` for a time-since's value)."""

    # -- what the engine calls: each picks its shape's way (``shape``) -----------------------

    def fold(self, data: Any, event: Mapping[str, Any], now_ms: int) -> tuple[Any, bool]:
        shape = self.shape
        if shape == WINDOW:
            return self._fold_window(data, event, now_ms)
        if shape == LIFETIME:
            return self._fold_lifetime(data, event, now_ms)
        if shape == WINDOW + DISTINCT:
            return self._fold_window_distinct(data, event, now_ms)
        return self._fold_lifetime_distinct(data, event, now_ms)

    def value(self, data: Any, now_ms: int) -> Any:
        if self.takes_thresholds:
            return self._value_since(data, now_ms)
        shape = self.shape
        if shape == WINDOW:
            return self._value_window(data, now_ms)
        if shape == LIFETIME:
            return self._value_lifetime(data, now_ms)
        if shape == WINDOW + DISTINCT:
            return self._value_window_distinct(data, now_ms)
        return self._value_lifetime_distinct(data, now_ms)

    def prune(self, data: Any, now_ms: int) -> Any:
        shape = self.shape
        if shape == WINDOW:
            return self._prune_window(data, now_ms)
        if shape == WINDOW + DISTINCT:
            return self._prune_window_distinct(data, now_ms)
        return self._keep(data, now_ms)

    def next_change_ms(self, data: Any, now_ms: int) -> float:
        if self.takes_thresholds:
            return self._next_since(data, now_ms)
        shape = self.shape
        if shape == WINDOW:
            return self._next_window(data, now_ms)
        if shape == WINDOW + DISTINCT:
            return self._next_window_distinct(data, now_ms)
        return self._never(data, now_ms)

    def merge(self, a: Any, b: Any, now_ms: int) -> Any:
        shape = self.shape
        if shape == WINDOW:
            return self._merge_window(a, b, now_ms)
        if shape == LIFETIME:
            return self._merge_acc(a, b, now_ms)
        if shape == WINDOW + DISTINCT:
            return self._merge_window_distinct(a, b, now_ms)
        return self._merge_distinct(a, b, now_ms)

    # -- folding events ---------------------------------------------------------------------

    def matches(self, event: Mapping[str, Any]) -> bool:
        """True when the event feeds this feature (source and ``where`` filter)."""
        if event["source"] not in self.sources:
            return False
        return self.where is None or bool(self.where(event))

    def _one_value(self, event: Mapping[str, Any]) -> list[Any]:
        """The value the event contributes (none when the field is missing; a list counts as its
        first element)."""
        if self.field is None:
            return [None]
        value = event.get(self.field)
        if value is None:
            return []
        if isinstance(value, list):
            return [value[0]] if value else []
        return [value]

    def _each_value(self, event: Mapping[str, Any]) -> list[Any]:
        """distinct_count: every element of a list field counts."""
        if self.field is None:
            return [None]
        value = event.get(self.field)
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    # ``fold(data, event, now_ms) -> (new data, late)``. ``late`` is True when the event is
    # already outside this feature's window at ``now_ms``; such an event leaves the window
    # untouched (it still feeds longer windows and lifetime).

    def _fold_lifetime(self, data: Any, event: Mapping[str, Any], now_ms: int) -> tuple[Any, bool]:
        agg, ts_ms = self.agg, event["ts_ms"]
        for v in self.values_of(event):
            data = agg.initialize(v, ts_ms) if data is None else agg.update(data, v, ts_ms)
        return data, False

    def _fold_lifetime_distinct(self, data: Any, event: Mapping[str, Any], now_ms: int) -> tuple[Any, bool]:
        values = self.values_of(event)
        if not values:
            return data, False
        data = data if data is not None else {}
        for v in values:
            data[_distinct_key(v)] = 0
        _cap(data)
        return data, False

    def _live_bucket(self, event: Mapping[str, Any], now_ms: int) -> int | None:
        """The event's bucket, or None when the bucket already left the window."""
        res, window_ms = self.resolution_ms, self.window_ms
        assert res is not None and window_ms is not None
        bucket = bucket_of(event["ts_ms"], res)
        return None if bucket_expiry_ms(bucket, res, window_ms) <= now_ms else bucket

    def _fold_window(self, data: Any, event: Mapping[str, Any], now_ms: int) -> tuple[Any, bool]:
        values = self.values_of(event)
        if not values:
            return data, False
        bucket = self._live_bucket(event, now_ms)
        if bucket is None:
            return data, True
        data = {} if data is None else _as_buckets(data)
        agg, ts_ms = self.agg, event["ts_ms"]
        acc = data.get(bucket)
        for v in values:
            acc = agg.initialize(v, ts_ms) if acc is None else agg.update(acc, v, ts_ms)
        data[bucket] = acc
        return data, False

    def _fold_window_distinct(self, data: Any, event: Mapping[str, Any], now_ms: int) -> tuple[Any, bool]:
        values = self.values_of(event)
        if not values:
            return data, False
        bucket = self._live_bucket(event, now_ms)
        if bucket is None:
            return data, True
        data = {} if data is None else data
        for v in values:
            k = _distinct_key(v)
            old = data.get(k)
            if old is None or old < bucket:
                data[k] = bucket
        _cap(data)
        return data, False

    # -- reading: ``value(data, now_ms)``; ``data`` must have been through ``prune`` ---------------

    def _value_since(self, data: Any, now_ms: int) -> Any:
        """Seconds since the newest event, to the millisecond: ``round((now_ms - data) / 1000, 3)``.
        For a whole number of milliseconds (an int ``data``) the quotient is already the double
        nearest to that 3-decimal number, so the costly ``round`` (a decimal string and back) is
        the identity there and is skipped."""
        if data is None:
            return None
        if type(data) is int:
            m: int = now_ms - data
            if -_EXACT_MS < m < _EXACT_MS:
                return m / 1000
        return round((now_ms - data) / 1000, 3)

    def _value_lifetime(self, data: Any, now_ms: int) -> Any:
        return self.agg.empty if data is None else self.agg.finish(data)

    def _value_lifetime_distinct(self, data: Any, now_ms: int) -> Any:
        return 0 if data is None else len(data)

    def _value_window(self, data: Any, now_ms: int) -> Any:
        return self.agg.result(data.values()) if data else self.agg.empty

    def _value_window_distinct(self, data: Any, now_ms: int) -> Any:
        return len(data) if data else self.agg.empty

    # -- ``prune(data, now_ms)``: drops buckets that left the window; None when nothing is left --

    def _keep(self, data: Any, now_ms: int) -> Any:
        return data

    def _oldest_live(self, now_ms: int) -> int:
        """Bucket b is live iff b >= this (same as bucket_expiry_ms(b) > now_ms)."""
        res, window_ms = self.resolution_ms, self.window_ms
        assert res is not None and window_ms is not None
        return oldest_live_bucket(now_ms, res, window_ms)

    def _prune_window(self, data: Any, now_ms: int) -> Any:
        if not data:
            return None
        data = _as_buckets(data)
        lo = self._oldest_live(now_ms)
        if _oldest(data) < lo:
            for b in [b for b in data if b < lo]:
                del data[b]
        return data or None

    def _prune_window_distinct(self, data: Any, now_ms: int) -> Any:
        if not data:
            return None
        lo = self._oldest_live(now_ms)
        if _oldest(data.values()) < lo:
            for k in [k for k, b in data.items() if b < lo]:
                del data[k]
        return data or None

    # -- ``next_change_ms(data, now_ms)``: the next instant after ``now_ms`` at which the value can
    # change with no new event ----------------------------------------------------------------

    def _never(self, data: Any, now_ms: int) -> float:
        return NEVER

    def _next_since(self, data: Any, now_ms: int) -> float:
        if data is None:
            return NEVER
        for t in self.thresholds_ms:
            if data + t > now_ms:
                return data + t
        return NEVER

    def _next_window(self, data: Any, now_ms: int) -> float:
        return self._next_expiry(_as_buckets(data).keys() if data else (), now_ms)

    def _next_window_distinct(self, data: Any, now_ms: int) -> float:
        return self._next_expiry(data.values() if data else (), now_ms)

    def _next_expiry(self, buckets: Collection[int], now_ms: int) -> float:
        """Expiry grows with the bucket index: the next change is the oldest live bucket's expiry."""
        if not buckets:
            return NEVER
        res, window_ms = self.resolution_ms, self.window_ms
        assert res is not None and window_ms is not None
        lo = oldest_live_bucket(now_ms, res, window_ms)
        oldest = _oldest(buckets)
        if oldest < lo:
            live = min((b for b in buckets if b >= lo), default=None)
            if live is None:
                return NEVER
            oldest = live
        return bucket_expiry_ms(oldest, res, window_ms)


    # -- ``merge(a, b, now_ms)``: the data of one customer made of two (identity merge, docs/identity.md).
    # Equal to folding both customers' events into one, whatever the split (accumulators merge like
    # buckets of one window); only the MAX_DISTINCT cap may keep other values than one fold would.

    def _merge_acc(self, a: Any, b: Any, now_ms: int) -> Any:
        return b if a is None else a if b is None else self.agg.merge(a, b)

    def _merge_window(self, a: Any, b: Any, now_ms: int) -> Any:
        if not a or not b:
            return _as_buckets(a or b) if (a or b) else None
        out = dict(_as_buckets(a))
        for bucket, acc in _as_buckets(b).items():
            mine = out.get(bucket)
            out[bucket] = acc if mine is None else self.agg.merge(mine, acc)
        return out

    def _merge_distinct(self, a: Any, b: Any, now_ms: int) -> Any:
        if not a or not b:
            return dict(a or b) if (a or b) else None
        out = dict(a)
        for k, bucket in b.items():
            mine = out.get(k)
            if mine is None or mine < bucket:  # the newest bucket a value was seen in
                out[k] = bucket
        _cap(out)
        return out

    def _merge_window_distinct(self, a: Any, b: Any, now_ms: int) -> Any:
        return self._merge_distinct(a, b, now_ms)


def _distinct_key(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _cap(data: dict[str, int]) -> None:
    if len(data) > MAX_DISTINCT:
        for k in sorted(data, key=data.__getitem__)[: len(data) - MAX_DISTINCT]:
            del data[k]


def _oldest(buckets: Iterable[int]) -> int:
    """``min(buckets)`` of a non-empty collection, as a loop: compiled, it costs ~1/10 of the builtin
    (whose call parses its arguments as a generic one) for the one or two buckets a window usually
    holds; the builtin was ~10 % of the engine's instructions (benchmarks/RULES.md, session 28)."""
    first = True
    oldest = 0
    for b in buckets:
        if first or b < oldest:
            oldest = b
            first = False
    return oldest


def _as_buckets(data: Any) -> dict[int, Any]:
    """Bucket dicts have int keys; a state fresh from its JSON encoding has them as strings."""
    if data and type(next(iter(data))) is str:
        return {int(b): acc for b, acc in data.items()}
    buckets: dict[int, Any] = data
    return buckets
