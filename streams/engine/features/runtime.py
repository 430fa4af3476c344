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
from collections.abc import Iterable, Mapping
from typing import Any

from streams.engine.features.aggregations import AGGREGATIONS, Aggregation
from streams.engine.features.windows import bucket_expiry_ms, bucket_of, default_resolution_ms, oldest_live_bucket
from tag_rules import FeatureDef

MAX_DISTINCT = 1000
"""Distinct values remembered per feature and customer; the oldest are forgotten first."""

NEVER = math.inf


class FeatureRuntime:
    """Folds events into one feature's state and reads its value at an instant."""

    __slots__ = ("agg", "defn", "field", "is_distinct", "is_since", "key", "name", "resolution_ms",
                 "sources", "thresholds_ms", "where", "window_ms")

    def __init__(self, defn: FeatureDef, thresholds_s: Iterable[float] = ()) -> None:
        self.defn = defn
        self.name = defn.name
        self.key = defn.key
        self.agg: Aggregation = AGGREGATIONS[defn.agg]
        self.field = defn.field
        self.sources = defn.sources
        self.where = defn.where
        self.window_ms = defn.window_ms
        self.resolution_ms = (defn.resolution_ms or default_resolution_ms(defn.window_ms)
                              if defn.window_ms is not None else None)
        self.is_distinct = defn.agg == "distinct_count"
        self.is_since = defn.agg == "since_last"
        # Instants (relative to the newest event) at which `since >= T`-style rules flip;
        # ">" needs the next millisecond, so both are candidates.
        self.thresholds_ms = tuple(sorted({ms for t in thresholds_s
                                           for ms in (math.ceil(t * 1000), math.ceil(t * 1000) + 1)}))

    # -- folding events ---------------------------------------------------------------------

    def matches(self, event: Mapping[str, Any]) -> bool:
        """True when the event feeds this feature (source and ``where`` filter)."""
        if event["source"] not in self.sources:
            return False
        return self.where is None or bool(self.where(event))

    def values_of(self, event: Mapping[str, Any]) -> list[Any]:
        """The values the event contributes (none when the field is missing)."""
        if self.field is None:
            return [None]
        value = event.get(self.field)
        if value is None:
            return []
        if isinstance(value, list):
            # distinct_count counts every element; count/first/last take the list as one value.
            if self.is_distinct:
                return value
            return [value[0]] if value else []
        return [value]

    def fold(self, data: Any, event: Mapping[str, Any], now_ms: int) -> tuple[Any, bool]:
        """Folds ``event`` into ``data`` and returns ``(new data, late)``.

        ``late`` is True when the event is already outside this feature's window at ``now_ms``;
        such an event leaves the window untouched (it still feeds longer windows and lifetime).
        """
        ts_ms: int = event["ts_ms"]
        values = self.values_of(event)
        if not values:
            return data, False
        agg = self.agg
        if self.window_ms is None:  # lifetime
            if self.is_distinct:
                data = data if data is not None else {}
                for v in values:
                    data[_distinct_key(v)] = 0
                _cap(data)
                return data, False
            for v in values:
                data = agg.initialize(v, ts_ms) if data is None else agg.update(data, v, ts_ms)
            return data, False
        res = self.resolution_ms
        assert res is not None
        bucket = bucket_of(ts_ms, res)
        if bucket_expiry_ms(bucket, res, self.window_ms) <= now_ms:
            return data, True
        if data is None:
            data = {}
        elif not self.is_distinct:
            data = _as_buckets(data)
        if self.is_distinct:
            for v in values:
                k = _distinct_key(v)
                old = data.get(k)
                if old is None or old < bucket:
                    data[k] = bucket
            _cap(data)
            return data, False
        acc = data.get(bucket)
        for v in values:
            acc = agg.initialize(v, ts_ms) if acc is None else agg.update(acc, v, ts_ms)
        data[bucket] = acc
        return data, False

    # -- reading ----------------------------------------------------------------------------

    def value(self, data: Any, now_ms: int) -> Any:
        """The feature's value at ``now_ms``; ``data`` must have been through ``prune``."""
        if self.is_since:
            return None if data is None else round((now_ms - data) / 1000, 3)
        if self.window_ms is None:
            if self.is_distinct:
                return 0 if data is None else len(data)
            return self.agg.empty if data is None else self.agg.finish(data)
        if not data:
            return self.agg.empty
        if self.is_distinct:
            return len(data)
        return self.agg.result(data.values())

    def prune(self, data: Any, now_ms: int) -> Any:
        """Drops buckets that left the window; returns None when nothing is left."""
        if self.window_ms is None or data is None:
            return data
        if not self.is_distinct:
            data = _as_buckets(data)
        res, window_ms = self.resolution_ms, self.window_ms
        assert res is not None
        if not data:
            return None
        # Bucket b is live iff b >= oldest_live_bucket (same as bucket_expiry_ms(b) > now_ms).
        lo = oldest_live_bucket(now_ms, res, window_ms)
        if self.is_distinct:
            if min(data.values()) < lo:
                for k in [k for k, b in data.items() if b < lo]:
                    del data[k]
        elif min(data) < lo:
            for b in [b for b in data if b < lo]:
                del data[b]
        return data or None

    def next_change_ms(self, data: Any, now_ms: int) -> float:
        """The next instant after ``now_ms`` at which the value can change with no new event."""
        if data is None:
            return NEVER
        if self.is_since:
            for t in self.thresholds_ms:
                if data + t > now_ms:
                    return data + t
            return NEVER
        if self.window_ms is None:
            return NEVER
        res = self.resolution_ms
        assert res is not None
        if not data:
            return NEVER
        buckets: Iterable[int] = data.values() if self.is_distinct else _as_buckets(data).keys()
        # Expiry grows with the bucket index: the next change is the oldest live bucket's expiry.
        lo = oldest_live_bucket(now_ms, res, self.window_ms)
        oldest = min(buckets)
        if oldest < lo:
            live = min((b for b in buckets if b >= lo), default=None)
            if live is None:
                return NEVER
            oldest = live
        return bucket_expiry_ms(oldest, res, self.window_ms)


def _distinct_key(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _cap(data: dict[str, int]) -> None:
    if len(data) > MAX_DISTINCT:
        for k in sorted(data, key=data.__getitem__)[: len(data) - MAX_DISTINCT]:
            del data[k]


def _as_buckets(data: Any) -> dict[int, Any]:
    """Bucket dicts have int keys; a state fresh from its JSON encoding has them as strings."""
    if data and type(next(iter(data))) is str:
        return {int(b): acc for b, acc in data.items()}
    buckets: dict[int, Any] = data
    return buckets
