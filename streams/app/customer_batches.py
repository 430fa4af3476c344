"""A customer batch's records -> each customer's items, in order (the customer stage's first step).

A record of an old consumer generation is skipped (fetched before a rebalance: faust delivers it
again from the committed offset), so is one whose items the states already hold (read again after
a hole, ``Membership.read_again``); a record that is not an envelope is dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.app.customer_contracts import Delivered, Membership
from streams.app.envelope import decode_envelope
from streams.io.deadletter import DeadLetterWriter
from streams.io.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class CustomerItems:
    by_key: dict[bytes, list[dict[str, Any]]] = field(default_factory=dict)
    """Customer key -> its items of the batch, in order."""
    record_of: dict[bytes, Delivered] = field(default_factory=dict)
    """Customer key -> the (last) record that carried its items."""
    slices: int = 0
    """Re-evaluation items (``reeval``) among them."""


def group_by_customer(events: Sequence[Delivered], generation: int, membership: Membership,
                      deadletter: DeadLetterWriter, metrics: Metrics) -> CustomerItems:
    """The items of ``events`` per customer (see the module docstring)."""
    out = CustomerItems()
    by_key, record_of = out.by_key, out.record_of
    stale = again = 0
    for ev in events:
        if ev.message.generation_id != generation:
            stale += 1
            continue  # fetched before a rebalance: faust re-reads it from the committed offset
        if membership.read_again(ev):
            again += 1
            continue  # its items are in the states already
        try:
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
    if stale:
        log.info("%d of %d records of an old consumer generation skipped (generation now %d)",
                 stale, len(events), generation)
    if again:
        metrics.records_read_again.inc(again)
    return out
