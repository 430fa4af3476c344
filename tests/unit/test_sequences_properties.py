"""Sequence and absence features: bounded state, round trips through the state's encoding, and
property tests of the engine against a brute-force reference (no network)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine.features.state import CustomerState
from streams.engine.features.windows import bucket_expiry_ms, bucket_of
from streams.engine.tag_engine import TagEngine

from .sequences_support import (
    MAX_PENDING,
    MAX_RUNS,
    MAX_UNMATCHED,
    T0,
    D,
    H,
    engine_fixture,  # noqa: F401  (the fixture `engine`)
    ev,
)

# -- bounded state and round trips ----------------------------------------------------------


def test_state_stays_bounded_under_many_events(engine: TagEngine) -> None:
    state = CustomerState()
    now = T0
    for i in range(2000):
        now = T0 + i * 7 * 60_000
        kind = ("cart", "view", "paid", "view")[i % 4] if i % 50 else "paid"
        engine.process_event(state, ev(kind, now - (i % 5) * 60_000), now)
    assert sum(len(state.features[rt.key][1]) for rt in engine.runtimes if rt.defn.agg == "absence") <= 2 * MAX_PENDING
    for rt in engine.runtimes:
        data = state.features.get(rt.key)
        if rt.defn.agg == "sequence" and data is not None:
            assert len(data[0]) <= MAX_RUNS and len(data[1]) <= MAX_UNMATCHED
    state = CustomerState()
    for i in range(5000):  # carts only, never paid: the worst case of an absence
        engine.process_event(state, ev("cart", T0 + i * 60_000), T0 + i * 60_000)
    data = {rt.defn.name: state.features[rt.key] for rt in engine.runtimes if rt.defn.agg == "absence"}
    assert all(len(d[1]) == MAX_PENDING for d in data.values())
    assert data["abandoned_ever"][1][0] == T0  # the earliest cart is kept: it decides the instant
    feature_bytes = len(CustomerState(dict(state.features)).dumps()) - len(CustomerState().dumps())
    assert feature_bytes <= 2 * 140  # both absence features at their cap: ~125 bytes each


def test_state_round_trips_through_its_encoding(engine: TagEngine) -> None:
    script = [("cart", 0, 0), ("view", H, H), ("paid", 90 * 60_000, 90 * 60_000), ("paid", 3 * H, 3 * H),
              ("view", 2 * H, 4 * H), ("cart", 5 * H, 5 * H), ("paid", 28 * H, 31 * H)]
    plain, trip = CustomerState(), CustomerState()
    changes_plain, changes_trip = [], []
    for kind, ts, at in script:
        e = ev(kind, T0 + ts)
        changes_plain += engine.catch_up(plain, "c1", T0 + at) + engine.process_event(plain, e, T0 + at).changes
        trip = CustomerState.loads(trip.dumps())
        changes_trip += engine.catch_up(trip, "c1", T0 + at) + engine.process_event(trip, e, T0 + at).changes
    assert changes_plain == changes_trip and plain.dumps() == trip.dumps()
    assert len(changes_plain) >= 4
    assert engine.feature_values(CustomerState.loads(plain.dumps()), T0 + 2 * D) == \
        engine.feature_values(plain, T0 + 2 * D)


# -- properties: the engine against a brute-force reference ---------------------------------


Step = tuple[str, int, int]  # (kind, ts offset, arrival delay), both in minutes


def steps(max_events: int, max_delay: int) -> st.SearchStrategy[list[Step]]:
    # Event times on a 10-minute grid over two days: ties (a purchase at the cart's instant) and
    # several runs of views inside the 1-day window are common.
    ts = st.integers(0, 2 * 24 * 6).map(lambda n: n * 10)
    return st.lists(st.tuples(st.sampled_from(["cart", "paid", "view", "page"]), ts, st.integers(0, max_delay)),
                    max_size=max_events)


def reference_absence(seen: list[dict[str, Any]], arrived: list[int], now: int, within: int,
                      window: int | None) -> bool:
    carts = [e["ts_ms"] for e, at in zip(seen, arrived, strict=True) if e["type"] == "add_to_cart"
             and (window is None or e["ts_ms"] > at - window)]
    pays = [e["ts_ms"] for e in seen if e["type"] == "paid"]
    return any((window is None or a > now - window) and a <= now - within and not any(b >= a for b in pays)
               for a in carts)


def reference_sequence(seen: list[dict[str, Any]], arrived: list[int], now: int, within: int) -> int:
    res = D // 60
    views = [e["ts_ms"] for e in seen if e["type"] == "product_view"]
    live = [e["ts_ms"] for e, at in zip(seen, arrived, strict=True) if e["type"] == "paid"
            and bucket_expiry_ms(bucket_of(e["ts_ms"], res), res, D) > max(at, now)]
    return sum(1 for b in live if any(b - within <= a <= b for a in views))


def run_against_reference(engine: TagEngine, script: list[Step]) -> None:
    state = CustomerState()
    seen: list[dict[str, Any]] = []
    arrived: list[int] = []
    timed = sorted(((ts + delay) * 60_000, ts * 60_000, kind) for kind, ts, delay in script)
    for at, ts, kind in timed:
        e = ev(kind, T0 + ts)
        engine.catch_up(state, "c1", T0 + at)
        engine.process_event(state, e, T0 + at)
        seen.append(e)
        arrived.append(T0 + at)
        for probe in (T0 + at, T0 + at + 13 * 60_000, T0 + at + 23 * H):
            v = engine.feature_values(CustomerState.loads(state.dumps()), probe)
            assert v["abandoned"] == reference_absence(seen, arrived, probe, D, 7 * D)
            assert v["abandoned_ever"] == reference_absence(seen, arrived, probe, D, None)
            assert v["view_buy"] == reference_sequence(seen, arrived, probe, H)
    # the tags follow the features, also with time alone: walk the due times to the end
    end = T0 + 20 * D
    engine.catch_up(state, "c1", end)
    assert ("abandoner" in state.tags) == reference_absence(seen, arrived, end, D, 7 * D)
    assert ("abandoner_ever" in state.tags) == reference_absence(seen, arrived, end, D, None)


@settings(max_examples=150, deadline=None)
@given(script=steps(max_events=MAX_UNMATCHED, max_delay=3 * 24 * 60))
def test_out_of_order_input_gives_the_reference_values(engine: TagEngine, script: list[Step]) -> None:
    """Any arrival order (up to 3 days late), few enough events that no cap applies: exact."""
    run_against_reference(engine, script)


@settings(max_examples=80, deadline=None)
@given(script=steps(max_events=60, max_delay=0))
def test_in_order_input_gives_the_reference_values_beyond_the_caps(engine: TagEngine, script: list[Step]) -> None:
    """In order, any number of events: the caps lose nothing (within = 1/7 of the window here)."""
    run_against_reference(engine, script)


def test_due_time_is_never_later_than_a_change(engine: TagEngine) -> None:
    """At every minute of a scripted day the tags equal what a fresh evaluation gives: the timer
    was due no later than each change (no polling needed)."""
    state = CustomerState()
    engine.process_event(state, ev("cart", T0), T0)
    engine.process_event(state, ev("view", T0 + 10 * 60_000), T0 + 10 * 60_000)
    engine.process_event(state, ev("paid", T0 + 40 * 60_000), T0 + 40 * 60_000)
    engine.process_event(state, ev("cart", T0 + H), T0 + H)
    for minute in range(0, 9 * 24 * 60, 17):
        now = T0 + H + minute * 60_000
        engine.catch_up(state, "c1", now)
        values = engine.feature_values(CustomerState.loads(state.dumps()), now)
        for tag in engine.tags:
            assert (tag.name in state.tags) == bool(tag.when(values)), (tag.name, minute)
