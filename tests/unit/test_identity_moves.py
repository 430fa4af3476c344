"""How a merge travels on the customer topic (streams/engine/identity/moves.py): absorb -> stub + merge
item, forwards, replays, the canonical id coming back, erasure tombstones."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from schemas.canonical import to_canonical
from schemas.decode import decode_event
from streams.engine.features.state import CustomerState
from streams.engine.identity import moves
from streams.engine.tag_engine import TagEngine
from tag_rules import load_rules

RULES = Path(__file__).resolve().parents[1] / "integration" / "rules_lifetime"
NOW = int(time.time() * 1000)


def engine() -> TagEngine:
    return TagEngine(load_rules(RULES))


def event(eid: str, customer: str, amount: float) -> dict[str, Any]:
    raw = orjson.dumps({"event_id": eid, "ts": NOW - 1000, "order_id": f"o-{eid}", "user_id": "x", "status": "paid",
                        "amount": amount, "currency": "EUR", "channel": "web", "items": []})
    c = to_canonical("orders", decode_event("orders", raw), NOW)
    c["customer_id"] = customer
    return c


def state_of(eng: TagEngine, customer: str, *amounts: float, prefix: str = "e") -> CustomerState:
    s = CustomerState()
    for i, a in enumerate(amounts):
        eng.process_event(s, event(f"{prefix}{i}", customer, a), NOW)
    return s


def wire(item: dict[str, Any]) -> dict[str, Any]:
    """As the item comes back from the topic."""
    out: dict[str, Any] = orjson.loads(orjson.dumps(item))
    return out


def test_absorb_leaves_a_stub_and_the_survivor_folds_the_state_in_once() -> None:
    eng = engine()
    absorbed = state_of(eng, "anonymous:a", 100.0, 300.0, prefix="a")
    survivor = state_of(eng, "user:u", 250.0, prefix="u")
    order = moves.absorb_item("anonymous:a", "user:u", "m1", NOW)["absorb"]
    item, stub = moves.absorb("anonymous:a", absorbed, order)
    assert item["customer_id"] == "user:u" and stub.moved is not None and stub.moved["to"] == "user:u"
    assert not stub.is_empty() and stub.due_ms is None
    merged = moves.apply_merge(eng, "user:u", survivor, wire(item)["merge"], NOW)
    assert not merged.duplicate and merged.overlap == 0
    assert eng.feature_values(survivor, NOW)["spend"] == 650.0
    assert any(c["customer_id"] == "user:u" and c["tag"] == "big_spender" and c.get("via") == "anonymous:a"
               for c in merged.changes)
    again = moves.apply_merge(eng, "user:u", survivor, wire(item)["merge"], NOW)
    assert again.duplicate and again.changes == [] and eng.feature_values(survivor, NOW)["spend"] == 650.0


def test_a_stub_forwards_events_drops_ticks_and_answers_a_replayed_absorb_with_the_same_state() -> None:
    eng = engine()
    order = {"into": "user:u", "merge_id": "m1", "at_ms": NOW}
    item, stub = moves.absorb("anonymous:a", state_of(eng, "anonymous:a", 10.0), order)
    fwd = moves.at_stub("anonymous:a", stub, event("late", "anonymous:a", 5.0))
    assert fwd is not None and fwd["customer_id"] == "user:u" and fwd["via"] == "anonymous:a"
    assert moves.at_stub("anonymous:a", stub, {"customer_id": "anonymous:a", "tick": NOW}) is None
    replayed = moves.at_stub("anonymous:a", stub, {"customer_id": "anonymous:a", "absorb": order})
    assert replayed == item
    # a second hop keeps the id the event first came in under
    _, stub2 = moves.absorb("user:u", None, {"into": "member:m", "merge_id": "m2", "at_ms": NOW})
    assert fwd is not None
    hop = moves.at_stub("user:u", stub2, fwd)
    assert hop is not None and hop["customer_id"] == "member:m" and hop["via"] == "anonymous:a"


def test_the_canonical_id_coming_back_revives_the_stub_and_nothing_loops() -> None:
    eng = engine()
    # x was absorbed into s; later an older link makes x canonical again: s is absorbed into x
    item_x, stub_x = moves.absorb("user:x", state_of(eng, "user:x", 100.0, prefix="x"),
                                  {"into": "user:s", "merge_id": "m1", "at_ms": NOW})
    s = state_of(eng, "user:s", 50.0, prefix="s")
    moves.apply_merge(eng, "user:s", s, wire(item_x)["merge"], NOW)
    item_s, _ = moves.absorb("user:s", s, {"into": "user:x", "merge_id": "m2", "at_ms": NOW})
    assert moves.revives(stub_x, wire(item_s))
    revived = CustomerState(merges=stub_x.merges)
    moves.apply_merge(eng, "user:x", revived, wire(item_s)["merge"], NOW)
    assert eng.feature_values(revived, NOW)["spend"] == 150.0
    # a merge from anyone else reaching the stub is forwarded, not applied
    other = {"customer_id": "user:x", "merge": {"from": "user:y", "merge_id": "m3", "state": None}}
    assert not moves.revives(stub_x, other)
    # nor is a replay of an old merge from s into x (redelivered after a crash): its id is known
    stub_x.merges = (*stub_x.merges, "m0")
    replay = {"customer_id": "user:x", "merge": {"from": "user:s", "merge_id": "m0", "state": None}}
    assert not moves.revives(stub_x, replay)


def test_a_merge_overtaking_the_state_the_stub_sent_loses_nothing_and_counts_nothing_twice() -> None:
    eng = engine()
    # x is absorbed into s (m1), but s is absorbed back into x (m2) before x's merge item reaches s
    item_x, stub_x = moves.absorb("user:x", state_of(eng, "user:x", 100.0, prefix="x"),
                                  {"into": "user:s", "merge_id": "m1", "at_ms": NOW})
    item_s, stub_s = moves.absorb("user:s", state_of(eng, "user:s", 50.0, prefix="s"),
                                  {"into": "user:x", "merge_id": "m2", "at_ms": NOW})
    assert moves.revives(stub_x, wire(item_s))
    x = moves.revived(stub_x, wire(item_s)["merge"])
    moves.apply_merge(eng, "user:x", x, wire(item_s)["merge"], NOW)
    assert eng.feature_values(x, NOW)["spend"] == 150.0
    # x's own item arrives at s's stub late, comes back to x, and is known
    back = moves.at_stub("user:s", stub_s, wire(item_x))
    assert back is not None and back["customer_id"] == "user:x"
    assert not moves.revives(CustomerState(), back)
    assert moves.apply_merge(eng, "user:x", x, back["merge"], NOW).duplicate
    assert eng.feature_values(x, NOW)["spend"] == 150.0
    # when the merge did carry it (the usual order), the stub starts from nothing
    s = state_of(eng, "user:s", 50.0, prefix="s")
    moves.apply_merge(eng, "user:s", s, wire(item_x)["merge"], NOW)
    item_s2, _ = moves.absorb("user:s", s, {"into": "user:x", "merge_id": "m2", "at_ms": NOW})
    assert moves.revived(stub_x, wire(item_s2)["merge"]).is_empty()


def test_a_tombstone_drops_items_until_its_end() -> None:
    t = moves.tombstone(NOW + 1000)
    assert moves.erased(t, NOW) is True and moves.erased(t, NOW + 1000) is None
    assert moves.erased(None, NOW) is False and moves.erased(CustomerState(), NOW) is False
    assert t.due_ms == NOW + 1000 and not t.is_empty()
    assert CustomerState.loads(t.dumps()).moved == {"erased_until": NOW + 1000}


def test_an_anonymous_state_knows_when_it_ends() -> None:
    from streams.app.customer_identity import wake_at

    s = CustomerState(due_ms=NOW + 5, expires_ms=NOW + 3)
    assert CustomerState.loads(s.dumps()).expires_ms == NOW + 3
    assert wake_at(s) == NOW + 3 and wake_at(CustomerState(due_ms=NOW)) == NOW
    assert wake_at(CustomerState(expires_ms=NOW + 1)) == NOW + 1 and wake_at(CustomerState()) is None


def test_recovery_keeps_the_newest_record_of_every_id() -> None:
    from streams.app.identity_stage import newest_records

    old_a = [1, ["anonymous:a-1", 5, "user:u-1", 5]]
    old_m = [2, ["email_sha256:" + "e" * 64, 7, "member:m-1", 7]]
    merged = [9, ["anonymous:a-1", 5, "email_sha256:" + "e" * 64, 7, "member:m-1", 7, "user:u-1", 5]]
    other = [3, ["user:u-2", 1, "member:m-2", 1]]
    # a crash between writing the merged record and deleting the two it absorbed left all four
    kept = newest_records([(v, f) for v, f in (old_a, merged, old_m, other)])  # type: ignore[misc]
    assert kept == [merged[1], other[1]]


def test_a_replayed_absorb_order_does_not_send_a_state_away_again_and_loops_are_cut() -> None:
    import pytest
    from prometheus_client import CollectorRegistry

    from streams.app.customer_identity import IdentityItems, IdentityOutput
    from streams.app.envelope import EnvelopeSender
    from streams.io.metrics import Metrics
    from tests.unit.stages_support import FakeProducer

    eng = engine()
    items = IdentityItems(IdentityOutput(EnvelopeSender(FakeProducer(), "t"), 4), Metrics.create(CollectorRegistry()))
    order = {"customer_id": "user:x", "absorb": {"into": "user:s", "merge_id": "m1", "at_ms": NOW}}
    came_back = state_of(eng, "user:x", 10.0)
    came_back.merges = (*came_back.merges, "m1")  # x's state went to s (m1) and came back with s's merges
    done, state = items.before(eng, b"user:x", order, came_back, NOW, [])
    assert done and state is came_back and state.moved is None and not items.pending()
    _, stub = moves.absorb("user:x", None, {"into": "user:s", "merge_id": "m2", "at_ms": NOW})
    looping = {**event("e9", "user:x", 1.0), "hops": moves.MAX_HOPS}
    with pytest.raises(ValueError, match="forwarding loop"):
        items.before(eng, b"user:x", looping, stub, NOW, [])
