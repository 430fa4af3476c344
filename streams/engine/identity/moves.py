"""How a merge travels between partitions on the customer topic (docs/identity.md, *The wiring*).

Pure: items in, items and states out. Three kinds of customer-topic item carry identity:

* ``absorb`` — the identity stage decided that ``customer_id`` now belongs to another customer::

      {"customer_id": "anonymous:a-1", "absorb": {"into": "user:u-1", "merge_id": "…", "at_ms": …}}

  Its partition replaces the state by a *forwarding stub* (``CustomerState.moved``: where it went,
  the merge id and a copy of the state it sent) and sends a ``merge`` item to the survivor.
* ``merge`` — a state to fold into ``customer_id``::

      {"customer_id": "user:u-1", "merge": {"from": "anonymous:a-1", "merge_id": "…", "state": {…}}}

  The survivor folds it in with ``merge_customers`` once: the merge id is remembered
  (``CustomerState.merges``), so a replayed one changes nothing.
* anything reaching a stub (events, ``merge`` items) is *forwarded*: the same item keyed by the
  survivor, ``via`` naming the id it came in under. Ticks for a stub are dropped (it has no due time).
  One exception (``revives``): a ``merge`` from the customer the stub points to means the canonical id
  came back to this id; the stub ends and the merge is applied.

Why every event counts once: a stub is written by the partition that sends the ``merge`` item, and
every later item for the absorbed id goes out from that same partition after it, keyed by the
survivor, so Kafka delivers the state first and the events after it. A replayed ``absorb`` finds the
stub with its own merge id and sends the same state again (the survivor ignores it). Events counted
before the merge are in the state that moves; a redelivered one is recognised by the survivor's
de-duplication memory, which the merge joined.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from streams.engine.features.state import CustomerState
from streams.engine.identity.merge import merge_customers
from streams.engine.tag_engine import Change, TagEngine

MAX_HOPS: Final = 32
"""Forwards of one item beyond which it is dead-lettered (only a bug makes two stubs point at each other)."""
MERGE_MEMORY: Final = 64
"""Merge ids remembered per customer: a replayed ``merge`` item comes within one crash's replay."""


def merge_id_of(link_id: str, absorbed: str, survivor: str) -> str:
    """Deterministic: the same link replayed gives the same merge id."""
    return hashlib.blake2b(f"{link_id}\x1f{absorbed}\x1f{survivor}".encode(), digest_size=10).hexdigest()


def absorb_item(absorbed: str, survivor: str, merge_id: str, at_ms: int) -> dict[str, Any]:
    """The identity stage's order to ``absorbed``'s partition."""
    return {"customer_id": absorbed, "absorb": {"into": survivor, "merge_id": merge_id, "at_ms": at_ms}}


def is_identity_item(obj: dict[str, Any]) -> bool:
    return "absorb" in obj or "merge" in obj or "erase" in obj


def erase_item(key: str, erasure_id: str, until_ms: int) -> dict[str, Any]:
    """The identity stage's order to forget ``key`` (``tagstream forget``): its tags are removed, its
    state (or stub) replaced by a tombstone that drops its items until ``until_ms``."""
    return {"customer_id": key, "erase": {"erasure_id": erasure_id, "until_ms": until_ms}}


def tombstone(until_ms: int) -> CustomerState:
    """Its due time is its end: the tick then deletes it."""
    return CustomerState(moved={"erased_until": until_ms}, due_ms=until_ms)


def erased(state: CustomerState | None, now_ms: int) -> bool | None:
    """True: a live tombstone (drop the item); None: an expired one (start afresh); False: no tombstone."""
    if state is None or state.moved is None or "erased_until" not in state.moved:
        return False
    return True if now_ms < state.moved["erased_until"] else None


def absorb(absorbed: str, state: CustomerState | None, order: dict[str, Any]) -> tuple[dict[str, Any], CustomerState]:
    """``absorbed`` leaves: returns the ``merge`` item for the survivor and the stub that replaces it."""
    snapshot = orjson.loads(state.dumps()) if state is not None and not state.is_empty() else None
    merges = state.merges if state is not None else ()
    stub = CustomerState(moved={"to": order["into"], "m": order["merge_id"], "x": snapshot},
                         merges=(*merges, order["merge_id"])[-MERGE_MEMORY:])
    return _merge_item(absorbed, order["into"], order["merge_id"], snapshot), stub


def _merge_item(absorbed: str, survivor: str, merge_id: str, snapshot: dict[str, Any] | None) -> dict[str, Any]:
    return {"customer_id": survivor, "merge": {"from": absorbed, "merge_id": merge_id, "state": snapshot}}


def revives(stub: CustomerState, obj: dict[str, Any]) -> bool:
    """A new ``merge`` from the very customer the stub points to: the cluster's canonical id came back
    to this id (an older link made it win again, docs/identity.md). The stub ends; the merge brings
    everything it had sent along, with all that joined since. (A fault test found a replayed old
    merge from that customer — its id already in the stub's memory — reviving the stub.)"""
    merge = obj.get("merge")
    # a replay of the merge that once brought that customer here is not a return: it has a known id
    return (merge is not None and stub.moved is not None and merge["from"] == stub.moved["to"]
            and merge["merge_id"] not in stub.merges)


def revived(stub: CustomerState, merge: dict[str, Any]) -> CustomerState:
    """The state a stub starts from when ``merge`` brings the canonical id back (``revives``).

    Usually nothing: the merge carries the state the stub once sent (its merge id is among the
    merge's). But the merge can overtake that state: the other side may have been absorbed back
    before the stub's own ``merge`` item reached it. Then the stub's copy of what it sent is the
    start, and its merge id, kept in the memory, makes the item ignored when it is forwarded back."""
    moved = stub.moved
    assert moved is not None
    carried = merge["state"] or {}
    if moved.get("x") and moved["m"] not in (carried.get("g") or ()):
        start = CustomerState.from_json(moved["x"])
        start.merges = stub.merges
        return start
    return CustomerState(merges=stub.merges)


def at_stub(key: str, stub: CustomerState, obj: dict[str, Any]) -> dict[str, Any] | None:
    """What an item reaching the stub of ``key`` becomes: forwarded to the survivor, the stub's own
    ``merge`` item again (a replayed absorb), or nothing (a tick; an absorb of another merge)."""
    moved = stub.moved
    assert moved is not None
    if "tick" in obj:
        return None
    order = obj.get("absorb")
    if order is not None:
        if order["merge_id"] == moved["m"]:
            return _merge_item(key, moved["to"], moved["m"], moved["x"])
        return None  # the identity stage only absorbs current canonical ids: a foreign writer's item
    fwd = dict(obj)
    fwd["customer_id"] = moved["to"]
    fwd.setdefault("via", key)
    fwd["hops"] = obj.get("hops", 0) + 1
    return fwd


@dataclass
class Merged:
    changes: list[Change] = field(default_factory=list)
    """The survivor's changes, then the absorbed id's (its tags removed)."""
    duplicate: bool = False
    """The merge id was applied before: nothing changed."""
    overlap: int = 0


def apply_merge(engine: TagEngine, key: str, state: CustomerState, merge: dict[str, Any], now_ms: int) -> Merged:
    """Folds a ``merge`` item's state into ``state`` (in place), once per merge id."""
    merge_id = merge["merge_id"]
    if merge_id in state.merges:
        return Merged(duplicate=True)
    absorbed = CustomerState.from_json(merge["state"]) if merge["state"] else CustomerState()
    memory = tuple(dict.fromkeys([*state.merges, *absorbed.merges, merge_id]))[-MERGE_MEMORY:]
    out = merge_customers(engine, state, key, absorbed, merge["from"], now_ms, merge_id)
    state.merges = memory
    changes = out.survivor_changes + out.absorbed_changes
    for c in out.survivor_changes:
        c["via"] = merge["from"]
    return Merged(changes, overlap=out.overlap)
