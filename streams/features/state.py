"""A customer's state: the data of every feature, the tags currently held, the next due time.

One compact object per customer, stored in a Faust table (changelog-backed). It is never a
list of raw events: windowed features keep one accumulator per bucket.
"""

from __future__ import annotations

from typing import Any

import orjson


class CustomerState:
    """Mutable per-customer state. Encodes to a small JSON object for the changelog."""

    __slots__ = ("due_ms", "features", "rule_version", "seen", "tags")

    def __init__(self, features: dict[str, Any] | None = None, tags: dict[str, int] | None = None,
                 rule_version: str = "", due_ms: int | None = None, seen: dict[int, int] | None = None) -> None:
        self.features: dict[str, Any] = features if features is not None else {}
        self.tags: dict[str, int] = tags if tags is not None else {}
        """tag -> since_ms: the tags this customer holds now."""
        self.rule_version = rule_version
        self.due_ms = due_ms
        """Next instant at which a tag may change with no new event (None: never)."""
        self.seen: dict[int, int] = seen if seen is not None else {}
        """Fingerprints of recent event ids -> when they were processed (oldest first), so an
        event delivered twice within the de-duplication horizon counts once."""

    def to_json(self) -> dict[str, Any]:
        features = {}
        for key, data in self.features.items():
            if isinstance(data, dict) and data and isinstance(next(iter(data)), int):
                data = [[b, acc] for b, acc in sorted(data.items())]
            features[key] = data
        out: dict[str, Any] = {"f": features, "t": self.tags, "v": self.rule_version}
        if self.due_ms is not None:
            out["d"] = self.due_ms
        if self.seen:
            out["s"] = [[h, t] for h, t in self.seen.items()]
        return out

    def dumps(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> CustomerState:
        # Windowed buckets stay as [[bucket, acc], ...] lists until a feature touches them
        # (FeatureRuntime.prune turns them back into dicts), so recovery decodes fast.
        return cls(obj.get("f") or {}, obj.get("t") or {}, obj.get("v") or "", obj.get("d"),
                   {h: t for h, t in obj.get("s") or ()})

    @classmethod
    def loads(cls, raw: bytes) -> CustomerState:
        return cls.from_json(orjson.loads(raw))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CustomerState) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"CustomerState({self.to_json()!r})"
