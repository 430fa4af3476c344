"""A customer's state: the data of every feature, the tags currently held (and, for tags with a
cooldown, when they were last removed), the next due time.

One compact object per customer, stored in a Faust table (changelog-backed). It is never a
list of raw events: windowed features keep one accumulator per bucket.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Final

import orjson

from streams.engine.features import seen_filter

SEEN_ENTRY: Final = 12
"""Bytes per remembered event id in ``CustomerState.seen_log``."""


def seen_at(log: bytearray, fp: bytes) -> int:
    """Where the 8-byte fingerprint ``fp`` starts an entry of ``log`` (-1: nowhere). A byte search
    (C speed: ~1-2 µs through 1,000 entries) that skips matches straddling two entries; a long log's
    filter (``seen_filter``) spares it most new ids."""
    i = log.find(fp)
    while i >= 0 and i % SEEN_ENTRY:
        i = log.find(fp, i + 1)
    return i


class CustomerState:
    """Mutable per-customer state. Encodes to a small JSON object for the changelog."""

    __slots__ = ("backfill", "due_ms", "expires_ms", "features", "merges", "moved", "next_change",
                 "removed", "rule_version", "seen_filter", "seen_filter_ids", "seen_filter_log", "seen_log", "tags",
                 "value_cache")

    def __init__(self, features: dict[str, Any] | None = None, tags: dict[str, int] | None = None,
                 rule_version: str = "", due_ms: int | None = None, seen_log: bytes = b"",
                 removed: dict[str, int] | None = None, backfill: dict[str, Any] | None = None,
                 moved: dict[str, Any] | None = None, merges: tuple[str, ...] = (),
                 expires_ms: int | None = None) -> None:
        self.features: dict[str, Any] = features if features is not None else {}
        self.tags: dict[str, int] = tags if tags is not None else {}
        """tag -> since_ms: the tags this customer holds now (``min_duration`` counts from it)."""
        self.removed: dict[str, int] = removed if removed is not None else {}
        """tag -> removed_at_ms, only for tags with a ``cooldown`` and only until it has passed
        (streams/engine/flap.py): at most one entry per such tag."""
        self.backfill: dict[str, Any] = backfill if backfill is not None else {}
        """Per group of features a deployment added, while a backfill can reach them: which source
        offsets the live path and the backfill counted (streams/engine/backfill.py)."""
        self.rule_version = rule_version
        self.due_ms = due_ms
        """Next instant at which a tag may change with no new event (None: never)."""
        self.seen_log = bytearray(seen_log)
        """Recent event ids, oldest first, so an event delivered twice within the de-duplication
        horizon counts once: ``SEEN_ENTRY`` bytes each (8-byte fingerprint, 4-byte second it was
        processed). A flat byte log encodes in C speed; a Python dict of 1,000 ids did not. It is
        searched as it is (``seen_at``): a set of the fingerprints beside it, kept per customer, was
        ~40 % of the objects the garbage collector walks per state and ~0.7 KB of memory."""
        self.moved = moved
        """Identity: this id was absorbed into another customer (``streams/engine/identity/moves.py``):
        ``{"to": survivor id, "m": merge id, "x": the state it had then}``. Its items are forwarded there."""
        self.merges: tuple[str, ...] = merges
        """Identity: the ids of the last merges applied to this state (a replayed one is ignored).
        A tuple: the empty one is shared and, like one of strings, never walked by the collector."""
        self.expires_ms = expires_ms
        """Identity: an anonymous-only customer is forgotten at this instant unless an event comes
        (``identity.anonymous_ttl_ms`` after its last one)."""
        self.next_change: dict[str, float] | None = None
        """Engine's cache (never encoded): feature key -> its next change, as of the last
        evaluation, and the next flap-control gate; ``due_ms`` is their minimum. None after
        decoding: rebuilt on first use."""
        self.value_cache: dict[str, Any] | None = None
        """Engine's cache (never encoded), made and dropped with ``next_change``: feature key -> its
        value as a tag read it, until the feature is fed or changes (``TagEngine._read``)."""
        self.seen_filter: bytearray | None = None
        """Cache (never encoded): the ids of ``seen_log`` in a counting filter, so a new event's id is
        not searched for (streams/engine/features/seen_filter.py). Only for logs of ``seen_filter.FROM``
        ids or more; valid while ``seen_filter_log`` is ``seen_log`` and holds ``seen_filter_ids`` ids."""
        self.seen_filter_log: bytearray | None = None
        self.seen_filter_ids = 0

    def is_empty(self) -> bool:
        """Nothing left to remember (the worker then deletes the state, keeping its store bounded)."""
        return not (self.features or self.tags or self.removed or self.backfill or self.moved)

    def seen_set(self) -> set[int]:
        """The fingerprints in ``seen_log`` (made on each call: merges and tests)."""
        log = self.seen_log
        return {int.from_bytes(log[i:i + 8], "big") for i in range(0, len(log), SEEN_ENTRY)}

    def seen_before(self, event_id: str, now_ms: int, horizon_ms: int, max_ids: int) -> bool:
        """Remembers ``event_id`` (at most ``max_ids``, for ``horizon_ms``); True if it was already
        seen within the horizon."""
        log = self.seen_log
        horizon_start_s = (now_ms - horizon_ms) // 1000
        keep_bytes = (max_ids - 1) * SEEN_ENTRY
        drop = 0
        while drop < len(log) and (len(log) - drop > keep_bytes
                                   or int.from_bytes(log[drop + 8:drop + 12], "big") <= horizon_start_s):
            drop += SEEN_ENTRY
        counters = self.seen_filter_for(log)
        if drop:
            if counters is not None:
                for i in range(0, drop, SEEN_ENTRY):
                    seen_filter.remove(counters, bytes(log[i:i + 8]))
            del log[:drop]
        fp = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
        ids = len(log) // SEEN_ENTRY
        if counters is not None and ids * 8 > len(counters) and len(counters) < seen_filter.size_for(max_ids):
            counters = None  # outgrown: made again for twice the ids
        if counters is None and ids >= seen_filter.FROM:
            counters = self.seen_filter = seen_filter.build(log, min(max_ids, 2 * ids))
            self.seen_filter_log = log
        if (counters is None or seen_filter.may_hold(counters, fp)) and seen_at(log, fp) >= 0:
            self.seen_filter_ids = len(log) // SEEN_ENTRY
            return True
        log += fp + (now_ms // 1000).to_bytes(4, "big")
        if counters is not None:
            seen_filter.add(counters, fp)
        self.seen_filter_ids = len(log) // SEEN_ENTRY
        return False

    def seen_filter_for(self, log: bytearray) -> bytearray | None:
        """The filter of ``log`` if it still counts exactly its ids (the log was not replaced or
        changed behind ``seen_before``'s back: a merge's, a test's); else None, dropped."""
        counters = self.seen_filter
        if counters is not None and (self.seen_filter_log is not log
                                     or self.seen_filter_ids * SEEN_ENTRY != len(log)):
            counters = self.seen_filter = self.seen_filter_log = None
        return counters

    def absorb_seen(self, other: CustomerState, max_ids: int) -> int:
        """Adds ``other``'s remembered event ids to this state's (identity merge): one entry per id,
        the earliest time it was processed, oldest first, at most ``max_ids`` (the newest kept).
        Returns how many ids both had seen: events counted under both, which a merge cannot undo."""
        stamps: dict[bytes, bytes] = {}
        for log in (self.seen_log, other.seen_log):
            for i in range(0, len(log), SEEN_ENTRY):
                fp, at = bytes(log[i:i + 8]), bytes(log[i + 8:i + SEEN_ENTRY])
                old = stamps.get(fp)
                if old is None or at < old:  # big-endian seconds: bytes order is time order
                    stamps[fp] = at
        overlap = len(self.seen_set() & other.seen_set())
        entries = sorted(stamps.items(), key=lambda kv: kv[1])[-max_ids:] if max_ids > 0 else []
        self.seen_log = bytearray(b"".join(fp + at for fp, at in entries))
        self.seen_filter = self.seen_filter_log = None
        return overlap

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"f": self.features, "t": self.tags, "v": self.rule_version}
        if self.due_ms is not None:
            out["d"] = self.due_ms
        if self.seen_log:
            out["s"] = base64.b64encode(self.seen_log).decode("ascii")
        if self.removed:  # written only when present: states of rule sets without cooldowns are unchanged
            out["r"] = self.removed
        if self.backfill:  # only while a deployment's new features can be backfilled
            out["b"] = self.backfill
        if self.moved:  # identity only
            out["m"] = self.moved
        if self.merges:
            out["g"] = list(self.merges)
        if self.expires_ms is not None:
            out["e"] = self.expires_ms
        return out

    def dumps(self) -> bytes:
        # Bucket dicts have int keys: orjson writes them as strings in C, no Python copy.
        return orjson.dumps(self.to_json(), option=orjson.OPT_NON_STR_KEYS)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> CustomerState:
        # Windowed buckets keep their string keys until a feature touches them
        # (FeatureRuntime turns them back into ints), so recovery decodes fast.
        # States written before a key existed lack it: every key is optional.
        return cls(obj.get("f") or {}, obj.get("t") or {}, obj.get("v") or "", obj.get("d"),
                   base64.b64decode(obj["s"]) if obj.get("s") else b"", obj.get("r") or {}, obj.get("b") or {},
                   obj.get("m"), tuple(obj.get("g") or ()), obj.get("e"))

    @classmethod
    def loads(cls, raw: bytes) -> CustomerState:
        return cls.from_json(orjson.loads(raw))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CustomerState) and orjson.loads(self.dumps()) == orjson.loads(other.dumps())

    def __repr__(self) -> str:
        return f"CustomerState({self.to_json()!r})"
