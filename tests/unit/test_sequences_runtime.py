"""Sequence and absence features at run time: due times exactly at A + T, late and out-of-order
events, duplicates, and the caps on what a customer's state keeps (no network)."""

from __future__ import annotations

from pathlib import Path

from streams.engine.features.state import CustomerState
from streams.engine.features.windows import bucket_expiry_ms, bucket_of
from streams.engine.tag_engine import TagEngine
from tag_rules import load_rules

from .sequences_support import (
    MAX_PENDING,
    MAX_RUNS,
    MAX_UNMATCHED,
    T0,
    D,
    H,
    S,
    engine_fixture,  # noqa: F401  (the fixture `engine`)
    ev,
)

# -- absence at run time --------------------------------------------------------------------


def test_absence_arrives_exactly_at_a_plus_within_by_the_due_time(engine: TagEngine) -> None:
    state = CustomerState()
    out = engine.process_event(state, ev("cart", T0), T0 + S)
    assert out.changes == []
    assert state.due_ms == T0 + D  # no polling: the timer is due exactly at A + 24h
    assert engine.process_due(state, "c1", T0 + D - 1, T0 + D - 1) == []
    changes = engine.catch_up(state, "c1", T0 + D)
    assert {(c["tag"], c["op"], c["at_ms"], c["cause"]) for c in changes} == {
        ("abandoner", "add", T0 + D, "expiry"), ("abandoner_ever", "add", T0 + D, "expiry")}
    assert state.due_ms == T0 + 7 * D  # the cart leaves the 7-day window
    changes = engine.catch_up(state, "c1", T0 + 7 * D)
    assert [(c["tag"], c["op"], c["at_ms"]) for c in changes] == [("abandoner", "remove", T0 + 7 * D)]
    assert "abandoner_ever" in state.tags and state.due_ms is None  # lifetime: until a purchase


def test_a_purchase_in_time_cancels_and_after_it_removes(engine: TagEngine) -> None:
    state = CustomerState()
    engine.process_event(state, ev("cart", T0), T0)
    engine.process_event(state, ev("paid", T0 + 23 * H), T0 + 23 * H)
    assert engine.catch_up(state, "c1", T0 + 30 * D) == [] and not state.tags
    engine.process_event(state, ev("cart", T0 + 31 * D), T0 + 31 * D)
    engine.catch_up(state, "c1", T0 + 33 * D)
    assert {"abandoner", "abandoner_ever"} <= set(state.tags)
    out = engine.process_event(state, ev("paid", T0 + 33 * D), T0 + 33 * D)
    assert {(c["tag"], c["op"], c["cause"]) for c in out.changes} == {
        ("abandoner", "remove", "event"), ("abandoner_ever", "remove", "event")}


def test_a_late_purchase_removes_the_tag_and_the_change_says_it_was_late(engine: TagEngine) -> None:
    state = CustomerState()
    engine.process_event(state, ev("cart", T0), T0)
    engine.catch_up(state, "c1", T0 + 25 * H)
    assert state.tags["abandoner"] == T0 + D
    late = ev("paid", T0 + 23 * H, "pay-1")
    out = engine.process_event(state, late, T0 + 25 * H)
    removal = next(c for c in out.changes if c["tag"] == "abandoner")
    assert removal["op"] == "remove" and removal["cause"] == "event" and removal["event_id"] == "pay-1"
    # the cause: the purchase happened (event_ts_ms) before the tag was decided (its add's at_ms)
    assert removal["event_ts_ms"] == T0 + 23 * H < T0 + D < removal["at_ms"] == T0 + 25 * H
    assert removal["features"] == {"abandoned": False}
    assert engine.catch_up(state, "c1", T0 + 30 * D) == []


def test_a_late_cart_is_decided_on_arrival_and_a_too_late_one_is_late(engine: TagEngine) -> None:
    state = CustomerState()
    out = engine.process_event(state, ev("cart", T0), T0 + 2 * D)
    assert {c["tag"] for c in out.changes} == {"abandoner", "abandoner_ever"} and not out.late
    state = CustomerState()
    out = engine.process_event(state, ev("cart", T0), T0 + 8 * D)  # older than the 7-day window
    assert out.late and {c["tag"] for c in out.changes} == {"abandoner_ever"}


def test_duplicates_change_nothing(engine: TagEngine) -> None:
    state = CustomerState()
    cart, pay = ev("cart", T0, "cart-1"), ev("paid", T0 + 10 * H, "pay-1")
    engine.process_event(state, cart, T0)
    engine.process_event(state, pay, T0 + 10 * H)
    before = state.dumps()
    assert engine.process_event(state, cart, T0 + 11 * H).duplicate  # de-duplicated by event id
    assert engine.process_event(state, pay, T0 + 11 * H).duplicate
    assert state.dumps() == before and engine.feature_values(state, T0 + 2 * D)["abandoned"] is False
    # a redelivery beyond the de-duplication horizon: absence is a set of times, so it is idempotent
    eng = TagEngine(engine.rules, dedup_horizon_ms=0)
    a, b = CustomerState(), CustomerState()
    for e in (cart, cart):
        eng.process_event(a, e, T0)
    eng.process_event(b, cart, T0)
    assert a.features == b.features


# -- sequence at run time -------------------------------------------------------------------


def test_sequence_counts_b_after_a_within_t_and_slides(engine: TagEngine) -> None:
    state = CustomerState()
    engine.process_event(state, ev("view", T0), T0)
    engine.process_event(state, ev("paid", T0 + 30 * 60_000), T0 + 30 * 60_000)
    engine.process_event(state, ev("paid", T0 + 2 * H), T0 + 2 * H)  # more than 1h after the view
    v = engine.feature_values(state, T0 + 3 * H)
    assert (v["view_buy"], v["view_buy_ever"]) == (1, 1)
    assert {"impulse", "impulse_ever"} <= set(state.tags)
    res = D // 60
    leaves = bucket_expiry_ms(bucket_of(T0 + 30 * 60_000, res), res, D)
    assert state.due_ms == leaves
    changes = engine.catch_up(state, "c1", leaves)
    assert [(c["tag"], c["op"], c["at_ms"], c["cause"]) for c in changes] == [
        ("impulse", "remove", leaves, "expiry")]


def test_a_late_view_completes_a_purchase_already_seen(engine: TagEngine) -> None:
    state = CustomerState()
    engine.process_event(state, ev("paid", T0 + H), T0 + H)
    assert engine.feature_values(state, T0 + H)["view_buy"] == 0
    out = engine.process_event(state, ev("view", T0 + 20 * 60_000), T0 + 2 * H)
    assert {c["tag"] for c in out.changes} == {"impulse", "impulse_ever"}
    engine.process_event(state, ev("view", T0 + 10 * 60_000), T0 + 2 * H)  # the B already counted
    assert engine.feature_values(state, T0 + 2 * H)["view_buy"] == 1


def test_a_purchase_at_the_carts_instant_cancels_it(engine: TagEngine) -> None:
    state = CustomerState()
    engine.process_event(state, ev("cart", T0), T0)
    engine.process_event(state, ev("paid", T0), T0)
    assert engine.catch_up(state, "c1", T0 + 2 * D) == [] and not state.tags


def test_absence_is_exact_out_of_order_up_to_its_cap(engine: TagEngine) -> None:
    """MAX_PENDING carts an hour apart, then a late purchase between any two of them: the next
    cart after the purchase decides, 24 h after it."""
    for k in range(1, MAX_PENDING):
        state = CustomerState()
        for i in range(MAX_PENDING):
            engine.process_event(state, ev("cart", T0 + i * H), T0 + i * H)
        engine.process_event(state, ev("paid", T0 + k * H - 60_000), T0 + MAX_PENDING * H)
        assert state.due_ms == T0 + k * H + D
        engine.catch_up(state, "c1", T0 + k * H + D)
        assert state.tags.get("abandoner") == T0 + k * H + D


def test_over_the_cap_the_closest_packed_cart_is_forgotten(engine: TagEngine) -> None:
    """Carts at 0, 1m, 2m, 1d ... 5d, then 6d: the 1m cart goes (its neighbours are closest), so a
    purchase that arrives late with a time between the 4d and 5d carts leaves 5d deciding."""
    state = CustomerState()
    for ts in (0, 60_000, 120_000, D, 2 * D, 3 * D, 4 * D, 5 * D, 6 * D):
        engine.process_event(state, ev("cart", T0 + ts), T0 + ts)
    rt = next(rt for rt in engine.runtimes if rt.defn.name == "abandoned")
    assert state.features[rt.key][1] == [T0 + t for t in (0, 120_000, D, 2 * D, 3 * D, 4 * D, 5 * D, 6 * D)]
    engine.process_event(state, ev("paid", T0 + 4 * D + H), T0 + 6 * D + H)
    assert state.features[rt.key][1] == [T0 + 5 * D, T0 + 6 * D] and "abandoner" in state.tags


def test_an_event_that_is_both_a_and_b_does_not_complete_itself(tmp_path: Path) -> None:
    p = tmp_path / "twice.yaml"
    p.write_text("""
features:
  - name: two_views
    agg: sequence
    first: {sources: [clickstream], where: type == "product_view"}
    then: {sources: [clickstream], where: type == "product_view"}
    within: 1h
tags:
  - {name: t, when: two_views >= 1}
""")
    eng, state = TagEngine(load_rules(p)), CustomerState()
    eng.process_event(state, ev("view", T0 + H), T0 + H)
    assert eng.feature_values(state, T0 + H)["two_views"] == 0
    eng.process_event(state, ev("view", T0 + 30 * 60_000), T0 + H)  # a late one before it: a pair
    assert eng.feature_values(state, T0 + H)["two_views"] == 1


def test_views_in_order_beyond_the_run_cap_still_match(engine: TagEngine) -> None:
    state = CustomerState()
    for i in range(MAX_RUNS + 2):  # views 3 h apart: one run each
        engine.process_event(state, ev("view", T0 + i * 3 * H), T0 + i * 3 * H)
        engine.process_event(state, ev("view", T0 + i * 3 * H + 10 * 60_000), T0 + i * 3 * H + 10 * 60_000)
    last = T0 + (MAX_RUNS + 1) * 3 * H
    engine.process_event(state, ev("paid", last + 40 * 60_000), last + 40 * 60_000)
    assert engine.feature_values(state, last + H)["view_buy"] == 1
    rt = next(rt for rt in engine.runtimes if rt.defn.name == "view_buy")
    assert state.features[rt.key][0][-1] == [last, last + 10 * 60_000]  # views 10 min apart: one run


def test_a_late_purchase_matches_an_older_run_of_views(engine: TagEngine) -> None:
    state = CustomerState()
    for i in range(MAX_RUNS):  # views 3 h apart: separate runs
        engine.process_event(state, ev("view", T0 + i * 3 * H), T0 + i * 3 * H)
    engine.process_event(state, ev("paid", T0 + 30 * 60_000), T0 + MAX_RUNS * 3 * H)
    assert engine.feature_values(state, T0 + MAX_RUNS * 3 * H)["view_buy"] == 1
    for i in range(MAX_UNMATCHED):  # purchases with no view yet, then a late view before them all
        engine.process_event(state, ev("paid", T0 + 20 * H + i * 60_000), T0 + 21 * H)
    engine.process_event(state, ev("view", T0 + 20 * H - 60_000), T0 + 21 * H)
    assert engine.feature_values(state, T0 + 21 * H)["view_buy"] == 1 + MAX_UNMATCHED
