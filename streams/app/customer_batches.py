"""A customer batch's records -> each customer's items, in order (the customer stage's first step).

A record of an old consumer generation is skipped (fetched before a rebalance: faust delivers it
again from the committed offset), so is one whose items the states already hold (read again after
a hole, ``Membership.read_again``); a record that is not an envelope is dead-lettered.

With the Rust core's tag engine (``split``: ``NativeEngine.split``) the records are split into
their items' bytes, not decoded: a customer whose items are all plain events keeps them as bytes
(``events``), which the core folds as they are; the others' items are decoded (``by_key``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.app.customer_contracts import Delivered, Membership
from streams.app.envelope import decode_envelope
from streams.io.deadletter import DeadLetterWriter
from streams.io.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class CustomerItems:
    by_key: dict[bytes, list[dict[str, Any]]] = field(default_factory=dict)
    """Customer key -> its items of the batch, in order."""
    events: dict[bytes, list[bytes]] = field(default_factory=dict)
    """Customer key -> its items of the batch, in order, as bytes: customers with plain events
    only (the core's ``split`` only; such a customer is not in ``by_key``)."""
    record_of: dict[bytes, Delivered] = field(default_factory=dict)
    """Customer key -> the (last) record that carried its items."""
    slices: int = 0
    """Re-evaluation items (``reeval``) among them."""


Split = Callable[[bytes | None], list[tuple[bytes, bytes, bool]]]
"""``NativeEngine.split``: a record's items as (customer key, item bytes, plain event)."""


def group_by_customer(events: Sequence[Delivered], generation: int, membership: Membership,
                      deadletter: DeadLetterWriter, metrics: Metrics, split: Split | None = None) -> CustomerItems:
    """The items of ``events`` per customer (see the module docstring)."""
    out = CustomerItems()
    by_key, record_of = out.by_key, out.record_of
    raw: dict[bytes, list[bytes]] = {}
    mixed: set[bytes] = set()
    stale = again = 0
    for ev in events:
        if ev.message.generation_id != generation:
            stale += 1
            continue  # fetched before a rebalance: faust re-reads it from the committed offset
        if membership.read_again(ev):
            again += 1
            continue  # its items are in the states already
        try:
            if split is not None:
                for key, item, plain in split(ev.message.value):
                    raw.setdefault(key, []).append(item)
                    record_of[key] = ev
                    if not plain:
                        mixed.add(key)
                continue
            items = decode_envelope(ev.message.value)
        except ValueError as exc:
            deadletter.add(ev.message, "customers", "internal_error", f"{type(exc).__name__}: {exc}")
            continue
        for obj in items:
            if obj.get("reeval"):
                out.slices += 1
            key = obj["customer_id"].encode()
            by_key.setdefault(key, []).append(obj)
            record_of[key] = ev
    for key in mixed:  # decoded for the Python side of the stage
        objs = by_key[key] = [orjson.loads(item) for item in raw.pop(key)]
        out.slices += sum(1 for obj in objs if obj.get("reeval"))
    out.events = raw
    if stale:
        log.info("%d of %d records of an old consumer generation skipped (generation now %d)",
                 stale, len(events), generation)
    if again:
        metrics.records_read_again.inc(again)
    return out
