"""The customer stage's identity side (docs/identity.md): what a customer's item does when identity
resolution is on, before the stage folds events.

* an ``erase`` order replaces the state (or stub) by a tombstone and removes every tag; a live
  tombstone drops whatever comes;
* a stub forwards items to its survivor (or is revived by a merge from the id it points to);
* an ``absorb`` order makes a stub and a merge item; a ``merge`` item is folded in once;
* an anonymous-only customer lives ``anonymous_ttl_ms`` after its last event.

Items for other customers (forwards, merge items) are kept in order and sent, by ``send``, before
the stage saves the states that made them. With identity resolution off the stage has no
``IdentityItems`` and none of this runs.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import orjson

from streams.app.envelope import EnvelopeBuilder, EnvelopeSender
from streams.engine.features.state import CustomerState
from streams.engine.identity import moves
from streams.engine.native_engine import StoredState
from streams.engine.tag_engine import Change, TagEngine
from streams.io.metrics import Metrics, Tally

ANONYMOUS_PREFIX = "anonymous:"
"""Customer ids of anonymous-only customers (``schemas.ids.id_key``)."""
ANONYMOUS_KEY = ANONYMOUS_PREFIX.encode()


def attribution(key: bytes) -> str:
    """known (a member or an online account), contact (a contact hash only) or anonymous."""
    if key.startswith((b"member:", b"user:")):
        return "known"
    return "anonymous" if key.startswith(ANONYMOUS_KEY) else "contact"


def wake_at(state: StoredState) -> int | None:
    """When the due timer ticks the customer: its next due change, or an anonymous one's end if sooner."""
    due, expires = state.due_ms, state.expires_ms
    return due if expires is None else expires if due is None else min(due, expires)


@dataclass
class IdentityOutput:
    """Where items for other customers go (forwards to a survivor, merge items), and whether
    anonymous-only customers' tag changes are published."""

    forwards: EnvelopeSender
    partitions: int
    tag_anonymous: bool = False
    anonymous_ttl_ms: int = 0
    """An anonymous-only customer with no event for this long is forgotten (0: kept)."""


class IdentityItems:
    """One customer stage's identity handling; see the module docstring."""

    def __init__(self, output: IdentityOutput, metrics: Metrics) -> None:
        self.output = output
        self.metrics = metrics
        self._forwards: list[dict[str, Any]] = []
        self._events_by = Tally(metrics.identity_events)

    @staticmethod
    def plain(state: CustomerState | None, objs: list[dict[str, Any]]) -> bool:
        """No item of this batch is identity business for this customer (most customers): ``before``
        would pass every one of them through. Only an ``absorb`` item makes a stub of a plain state,
        so what holds for the first item holds for the batch."""
        if state is not None and state.moved is not None:
            return False
        for obj in objs:  # noqa: SIM110 (a generator in all() costs more than the 1-2 items it looks at)
            if "erase" in obj or "absorb" in obj or "merge" in obj:
                return False
        return True

    def before(self, engine: TagEngine, key: bytes, obj: dict[str, Any], state: CustomerState | None,
               now_ms: int, changes: list[Change]) -> tuple[bool, CustomerState | None]:
        """(True, new state) when the item was identity business and is done; (False, state) when the
        stage goes on with it (the state may have been renewed: an expired tombstone, a revived stub)."""
        if (state is None or state.moved is None) and "erase" not in obj and "absorb" not in obj \
                and "merge" not in obj:
            return False, state  # a plain item for a plain customer: most of them
        m = self.metrics
        erase = obj.get("erase")
        if erase is not None:
            return True, self._erase(engine, key, erase, state, now_ms, changes)
        gone = moves.erased(state, now_ms)
        if gone:  # the person was forgotten (tagstream forget): nothing of theirs is kept
            m.identity_erased_items.inc()
            return True, state
        if gone is None:
            state = CustomerState()  # the tombstone's period is over: a new customer (or nothing, on its tick)
        if state is not None and state.moved is not None:
            if not moves.revives(state, obj):  # absorbed into another customer: forward
                fwd = moves.at_stub(key.decode(), state, obj)
                if fwd is not None and fwd.get("hops", 0) > moves.MAX_HOPS:
                    raise ValueError(f"{key.decode()}: item forwarded {fwd['hops']} times (a forwarding loop): "
                                     f"{str(fwd)[:300]}")  # the stage dead-letters it, never loops on
                if fwd is not None:
                    self._forwards.append(fwd)
                    m.identity_forwarded.labels("merge" if "merge" in fwd else "event").inc()
                return True, state
            state = moves.revived(state, obj["merge"])  # the canonical id came back: the merge brings the state
        order = obj.get("absorb")
        if order is not None:
            if state is not None and order["merge_id"] in state.merges:
                # a replayed order (after a crash) of a merge this customer already took part in:
                # the state came back here since, and must not leave again
                m.identity_merges.labels("duplicate").inc()
                return True, state
            item, stub = moves.absorb(key.decode(), state, order)
            self._forwards.append(item)
            return True, stub
        merge = obj.get("merge")
        if merge is not None:
            state = state if state is not None else CustomerState()
            merged = moves.apply_merge(engine, key.decode(), state, merge, now_ms)
            m.identity_merges.labels("duplicate" if merged.duplicate else "applied").inc()
            if merged.overlap:
                m.identity_merge_overlap.inc(merged.overlap)
            # the absorbed id's changes name it, not this customer: filtered here (merges are rare)
            changes += [c for c in merged.changes if self.published(str(c["customer_id"]).encode())]
            return True, state
        return False, state

    def expired(self, engine: TagEngine, key: bytes, state: CustomerState, now_ms: int,
                changes: list[Change]) -> bool:
        """On a tick: an anonymous customer quiet for its time to live loses its tags (``expiry``)."""
        if state.expires_ms is None or now_ms < state.expires_ms:
            return False
        changes += engine.release(state, key.decode(), now_ms, "expiry", f"ttl-{state.expires_ms}")
        return True

    def after_events(self, key: bytes, state: CustomerState, events: int, now_ms: int) -> None:
        """After a customer's events of a batch: counted by attribution; an anonymous one lives on."""
        self._events_by.add(attribution(key), events)
        if self.output.anonymous_ttl_ms and key.startswith(ANONYMOUS_KEY):
            state.expires_ms = now_ms + self.output.anonymous_ttl_ms

    def flush_counts(self) -> None:
        """The batch's events by attribution, into the metric (once per batch)."""
        self._events_by.flush()

    def evaluated(self, key: bytes) -> bool:
        """Whether this customer's tags are evaluated: not an anonymous-only one's when they are not
        published (it keeps its features, and its tags are evaluated when it merges into a known one)."""
        return self.output.tag_anonymous or not key.startswith(ANONYMOUS_KEY)

    def published(self, key: bytes) -> bool:
        """Whether this customer's tag changes are published (anonymous ones only with tag_anonymous):
        asked once per customer and batch, for all its changes (they all name it)."""
        return self.output.tag_anonymous or not key.startswith(ANONYMOUS_KEY)

    def _erase(self, engine: TagEngine, key: bytes, order: dict[str, Any], state: CustomerState | None,
               now_ms: int, changes: list[Change]) -> CustomerState:
        """Erasure: every tag removed (``cause: "erasure"``), the state or stub replaced by a tombstone."""
        if state is not None and state.moved is None:
            changes += engine.release(state, key.decode(), now_ms, "erasure", order["erasure_id"])
        self.metrics.identity_erasures.inc()
        return moves.tombstone(order["until_ms"])

    def pending(self) -> bool:
        return bool(self._forwards)

    async def send(self) -> list[Awaitable[Any]]:
        """Hands the items for other customers to the producer, in the order they were made, and
        returns their acknowledgements: the stage awaits them (with its tag changes') before it saves
        the states (stubs) that made them."""
        items, self._forwards = self._forwards, []
        out = EnvelopeBuilder(self.output.partitions)
        for item in items:
            out.add(item["customer_id"].encode(), orjson.dumps(item))
        return await self.output.forwards.enqueue(out)
