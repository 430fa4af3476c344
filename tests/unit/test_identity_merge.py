"""Merging two customers' state (identity merge): feature data bucket by bucket for every aggregation,
sequences and absences, the de-duplication memory, tags re-evaluated with cause "merge" for the
survivor and removed for the absorbed id, due times, deterministic change ids; and the key property:
for any split of an event sequence between two ids, merging their states gives the features of
processing every event under one id — duplicates redelivered after the merge included."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine.features.state import CustomerState
from streams.engine.identity.merge import merge_customers
from streams.engine.tag_engine import TagEngine
from tag_rules import load_rules

M = 60_000
H = 60 * M
D = 24 * H
T0 = 1_800_000_000_000

AGG_RULES = """
version: v1
features:
  - {name: n_1h, agg: count, window: 1h}
  - {name: s_1h, agg: sum, field: amount, window: 1h}
  - {name: lo_1d, agg: min, field: amount, window: 1d}
  - {name: hi_1d, agg: max, field: amount, window: 1d}
  - {name: avg_1d, agg: avg, field: amount, window: 1d}
  - {name: first_1d, agg: first, field: amount, window: 1d}
  - {name: last_1d, agg: last, field: amount, window: 1d}
  - {name: cats_1d, agg: distinct_count, field: categories, window: 1d}
  - {name: n_all, agg: count}
  - {name: s_all, agg: sum, field: amount}
  - {name: lo_all, agg: min, field: amount}
  - {name: hi_all, agg: max, field: amount}
  - {name: avg_all, agg: avg, field: amount}
  - {name: first_all, agg: first, field: amount}
  - {name: last_all, agg: last, field: amount}
  - {name: cats_all, agg: distinct_count, field: categories}
  - {name: since, agg: since_last}
  - {name: paid_7d, agg: count, window: 7d, sources: [orders], where: type == "paid"}
tags:
  - name: everything
    when: >-
      n_1h + s_1h + coalesce(lo_1d, 0) + coalesce(hi_1d, 0) + coalesce(avg_1d, 0) + coalesce(first_1d, 0)
      + coalesce(last_1d, 0) + cats_1d + n_all + s_all + coalesce(lo_all, 0) + coalesce(hi_all, 0)
      + coalesce(avg_all, 0) + coalesce(first_all, 0) + coalesce(last_all, 0) + cats_all >= 0
  - {name: busy, when: n_1h >= 3}
  - {name: big_spender, when: s_all >= 100}
  - {name: buyer, when: paid_7d >= 2}
  - {name: quiet, when: since >= hours(2)}
  - {name: browsed_many, when: cats_1d >= 3}
"""

SEQ_RULES = """
version: v1
features:
  - name: abandoned
    agg: absence
    first: {sources: [clickstream], where: type == "add_to_cart"}
    then: {sources: [orders], where: type == "paid"}
    within: 1h
    window: 1d
  - name: abandoned_ever
    agg: absence
    first: {sources: [clickstream], where: type == "add_to_cart"}
    then: {sources: [orders], where: type == "paid"}
    within: 1h
  - name: view_buy
    agg: sequence
    first: {sources: [clickstream], where: type == "product_view"}
    then: {sources: [orders], where: type == "paid"}
    within: 1h
    window: 1d
  - name: view_buy_ever
    agg: sequence
    first: {sources: [clickstream], where: type == "product_view"}
    then: {sources: [orders], where: type == "paid"}
    within: 1h
tags:
  - {name: abandoner, when: abandoned}
  - {name: abandoner_ever, when: abandoned_ever}
  - {name: impulse, when: view_buy >= 1}
  - {name: impulse_ever, when: view_buy_ever >= 1}
"""
BOTH_WAYS = """
version: v1
features:
  - name: both_ways
    agg: sequence
    first: {sources: [orders]}
    then: {sources: [orders]}
    within: 1h
    window: 1d
tags:
  - {name: repeat, when: both_ways >= 1}
"""


def make_engine(tmp_path_factory: pytest.TempPathFactory, text: str) -> TagEngine:
    p = tmp_path_factory.mktemp("rules") / "r.yaml"
    p.write_text(text)
    return TagEngine(load_rules(p))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> TagEngine:
    return make_engine(tmp_path_factory, AGG_RULES)


@pytest.fixture(scope="module")
def seq_engine(tmp_path_factory: pytest.TempPathFactory) -> TagEngine:
    return make_engine(tmp_path_factory, SEQ_RULES)


_ids = itertools.count()
KINDS = {"view": ("clickstream", "product_view"), "cart": ("clickstream", "add_to_cart"),
         "paid": ("orders", "paid"), "page": ("clickstream", "page_view")}


def ev(kind: str, ts_ms: int, amount: float | None = None, cats: tuple[str, ...] = (),
       event_id: str | None = None) -> dict[str, Any]:
    source, typ = KINDS[kind]
    return {"event_id": event_id or f"e{next(_ids)}", "source": source, "type": typ, "customer_id": "c",
            "ts_ms": ts_ms, "src_ts_ms": ts_ms, "amount": amount, "currency": None, "skus": [],
            "categories": list(cats), "channel": None, "store_id": None, "session_id": None, "order_id": None,
            "payment_method": None, "quantity": None, "query": None, "url": None}


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Feature values equal, floats up to summation order."""
    if a.keys() != b.keys():
        return False
    for k, x in a.items():
        y = b[k]
        if isinstance(x, float) and isinstance(y, float | int):
            if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):
                return False
        elif x != y:
            return False
    return True


def run(engine: TagEngine, state: CustomerState, cid: str, arrivals: list[tuple[dict[str, Any], int]]) -> None:
    for event, now_ms in arrivals:
        engine.process_event(state, {**event, "customer_id": cid}, now_ms)


# -- examples ----------------------------------------------------------------------------------


def test_every_aggregation_merges_bucket_by_bucket(engine: TagEngine) -> None:
    evs = [ev("paid", T0, 10.0, ("a", "b")), ev("view", T0 + 5 * M, 30.0, ("b",)),
           ev("paid", T0 + 20 * M, 20.0, ("c",)), ev("view", T0 + 21 * M, 5.5, ("a",)), ev("page", T0 - 2 * D)]
    now = T0 + 30 * M
    one, left, right = CustomerState(), CustomerState(), CustomerState()
    run(engine, one, "u", [(e, now) for e in evs])
    run(engine, left, "u", [(e, now) for e in evs[::2]])
    run(engine, right, "a", [(e, now) for e in evs[1::2]])
    out = merge_customers(engine, left, "u", right, "a", now, "m-1")
    assert engine.feature_values(left, now) == engine.feature_values(one, now) == {
        "n_1h": 4, "s_1h": 65.5, "lo_1d": 5.5, "hi_1d": 30.0, "avg_1d": 16.375, "first_1d": 10.0, "last_1d": 5.5,
        "cats_1d": 3, "n_all": 5, "s_all": 65.5, "lo_all": 5.5, "hi_all": 30.0, "avg_all": 16.375,
        "first_all": 10.0, "last_all": 5.5, "cats_all": 3, "since": 540.0, "paid_7d": 2}
    assert out.overlap == 0
    assert set(left.tags) == set(one.tags) == {"everything", "busy", "buyer", "browsed_many"}
    assert left.due_ms == one.due_ms


def test_the_survivor_gains_tags_with_cause_merge_and_the_absorbed_loses_all(engine: TagEngine) -> None:
    now = T0 + 10 * M
    user, anon = CustomerState(), CustomerState()
    run(engine, user, "user:u-1", [(ev("paid", T0, 60.0), now), (ev("view", T0 + M), now)])
    run(engine, anon, "anonymous:a-1", [(ev("view", T0 + 2 * M), now), (ev("paid", T0 + 3 * M, 50.0), now),
                                         (ev("view", T0 + 4 * M), now)])
    assert "busy" in anon.tags and "busy" not in user.tags and "big_spender" not in user.tags
    held = sorted(anon.tags)
    out = merge_customers(engine, user, "user:u-1", anon, "anonymous:a-1", now + 1, "merge-7")
    gained = {(c["tag"], c["op"], c["cause"], c["customer_id"]) for c in out.survivor_changes}
    assert gained == {("busy", "add", "merge", "user:u-1"), ("big_spender", "add", "merge", "user:u-1"),
                      ("buyer", "add", "merge", "user:u-1")}
    assert all(c["at_ms"] == now + 1 and c["event_id"] is None for c in out.survivor_changes)
    lost = [(c["tag"], c["op"], c["cause"], c["customer_id"]) for c in out.absorbed_changes]
    assert held == ["busy", "everything"]
    assert lost == [(t, "remove", "merge", "anonymous:a-1") for t in held]
    assert anon.is_empty() and not anon.seen_log
    busy = next(c for c in out.survivor_changes if c["tag"] == "busy")
    assert busy["features"] == {"n_1h": 5}


def test_change_ids_are_deterministic_per_merge(engine: TagEngine) -> None:
    def once(merge_id: str) -> list[str]:
        a, b = CustomerState(), CustomerState()
        run(engine, a, "u", [(ev("view", T0, event_id="x1"), T0)])
        run(engine, b, "a", [(ev("view", T0, event_id="x2"), T0), (ev("view", T0, event_id="x3"), T0)])
        out = merge_customers(engine, a, "u", b, "a", T0 + 1, merge_id)
        return [c["change_id"] for c in out.survivor_changes + out.absorbed_changes]

    assert once("m-1") == once("m-1")
    assert set(once("m-1")).isdisjoint(once("m-2"))


def test_due_changes_before_the_merge_happen_first_at_their_instants(engine: TagEngine) -> None:
    a, b = CustomerState(), CustomerState()
    run(engine, a, "u", [(ev("view", T0), T0)])
    run(engine, b, "a", [(ev("view", T0 + M), T0 + M)])
    out = merge_customers(engine, a, "u", b, "a", T0 + 3 * H, "m")
    quiet = [c for c in out.survivor_changes if c["tag"] == "quiet"]
    assert [(c["op"], c["cause"]) for c in quiet] == [("add", "expiry")]
    assert quiet[0]["at_ms"] == T0 + 2 * H  # since >= 2h: the engine's own instant, not the merge's
    assert a.due_ms == engine.next_due_ms(a, T0 + 3 * H)


def test_duplicates_after_the_merge_are_dropped_and_overlaps_are_reported(engine: TagEngine) -> None:
    a, b = CustomerState(), CustomerState()
    e1, e2, shared = ev("view", T0), ev("view", T0 + M), ev("view", T0 + 2 * M)
    run(engine, a, "u", [(e1, T0), (shared, T0 + 2 * M)])
    run(engine, b, "a", [(e2, T0 + M), (shared, T0 + 2 * M)])
    out = merge_customers(engine, a, "u", b, "a", T0 + 3 * M, "m")
    assert out.overlap == 1  # counted under both before the merge: the merge reports what it cannot undo
    for redelivered in (e1, e2, shared):
        assert engine.process_event(a, {**redelivered, "customer_id": "u"}, T0 + 4 * M).duplicate


def test_a_merged_memory_stays_bounded(engine: TagEngine) -> None:
    a, b = CustomerState(), CustomerState()
    run(engine, a, "u", [(ev("page", T0 + i), T0 + i * 1000) for i in range(800)])
    run(engine, b, "a", [(ev("page", T0 + i), T0 + i * 1000 + 500) for i in range(800)])
    merge_customers(engine, a, "u", b, "a", T0 + D // 2, "m")
    assert len(a.seen_log) == engine.dedup_max_ids * 12


def test_cooldowns_keep_the_later_removal(tmp_path_factory: pytest.TempPathFactory) -> None:
    eng = make_engine(tmp_path_factory, """
version: v1
features:
  - {name: n_1h, agg: count, window: 1h}
tags:
  - {name: busy, when: n_1h >= 1, cooldown: 6h}
""")
    a, b = CustomerState(), CustomerState()
    run(eng, a, "u", [(ev("view", T0), T0)])
    run(eng, b, "a", [(ev("view", T0 + 30 * M), T0 + 30 * M)])
    eng.catch_up(a, "u", T0 + 2 * H)
    eng.catch_up(b, "a", T0 + 2 * H)
    later = b.removed["busy"]
    assert a.removed["busy"] < later
    out = merge_customers(eng, a, "u", b, "a", T0 + 2 * H, "m")
    assert a.removed == {"busy": later} and not a.tags and not out.survivor_changes


def test_a_view_on_one_id_and_a_purchase_on_the_other_make_a_sequence(seq_engine: TagEngine) -> None:
    a, b = CustomerState(), CustomerState()
    now = T0 + 2 * H
    run(seq_engine, a, "anonymous:a", [(ev("view", T0), now), (ev("cart", T0 + M), now)])
    run(seq_engine, b, "user:u", [(ev("paid", T0 + 10 * M, 9.0), now)])
    out = merge_customers(seq_engine, b, "user:u", a, "anonymous:a", now, "m")
    values = seq_engine.feature_values(b, now)
    assert values["view_buy"] == values["view_buy_ever"] == 1
    assert values["abandoned"] is False and values["abandoned_ever"] is False  # the purchase answered the cart
    assert {c["tag"] for c in out.survivor_changes if c["op"] == "add"} == {"impulse", "impulse_ever"}
    assert {(c["tag"], c["op"]) for c in out.absorbed_changes} == {("abandoner", "remove"),
                                                                   ("abandoner_ever", "remove")}


def test_an_event_that_is_both_a_and_b_never_completes_itself(tmp_path_factory: pytest.TempPathFactory) -> None:
    eng = make_engine(tmp_path_factory, BOTH_WAYS)
    a, b = CustomerState(), CustomerState()
    run(eng, a, "u", [(ev("paid", T0, 1.0), T0)])
    run(eng, b, "a", [(ev("paid", T0 + 2 * H, 1.0), T0 + 2 * H)])
    merge_customers(eng, a, "u", b, "a", T0 + 2 * H, "m")
    assert eng.feature_values(a, T0 + 2 * H)["both_ways"] == 0  # each alone, and 2h apart: no pair
    c, d = CustomerState(), CustomerState()
    run(eng, c, "u", [(ev("paid", T0, 1.0), T0)])
    run(eng, d, "a", [(ev("paid", T0 + M, 1.0), T0 + M)])
    merge_customers(eng, c, "u", d, "a", T0 + M, "m")
    one = CustomerState()
    run(eng, one, "u", [(ev("paid", T0, 1.0), T0), (ev("paid", T0 + M, 1.0), T0 + M)])
    assert eng.feature_values(c, T0 + M) == eng.feature_values(one, T0 + M) == {"both_ways": 1}


def test_two_events_both_a_and_b_at_the_same_instant(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The one known difference (docs/identity.md): two events that are each an A and a B, at the
    same millisecond, are a pair both ways. The merge counts both B's; one fold counts 1 (it cannot
    tell the second event's own B from the first one's at the same instant)."""
    eng = make_engine(tmp_path_factory, BOTH_WAYS)
    a, b, one = CustomerState(), CustomerState(), CustomerState()
    e2, e3 = ev("paid", T0, 1.0), ev("paid", T0, 1.0)
    run(eng, a, "u", [(e2, T0)])
    run(eng, b, "a", [(e3, T0)])
    run(eng, one, "u", [(e2, T0), (e3, T0)])
    merge_customers(eng, a, "u", b, "a", T0, "m")
    assert eng.feature_values(a, T0) == {"both_ways": 2}
    assert eng.feature_values(one, T0) == {"both_ways": 1}


# -- the property ------------------------------------------------------------------------------

_LATENESS = [0, M, 50 * M, 3 * H, 2 * D]


@st.composite
def histories(draw: st.DrawFn, kinds: list[str], max_events: int) -> list[tuple[dict[str, Any], int, int]]:
    """(event, arrival now_ms, side 0/1) in arrival order; some are redeliveries of an earlier event,
    which before the merge go to the side of the original (routing sends an id's events to one place)."""
    out: list[tuple[dict[str, Any], int, int]] = []
    now = T0
    for _ in range(draw(st.integers(min_value=1, max_value=max_events))):
        now += draw(st.sampled_from([0, 1000, 7 * M, 40 * M, 5 * H]))
        if out and draw(st.integers(0, 5)) == 0:
            event, _, side = out[draw(st.integers(0, len(out) - 1))]
        else:
            ts = now - draw(st.sampled_from(_LATENESS))
            event = ev(draw(st.sampled_from(kinds)), ts, draw(st.sampled_from([None, 1.5, 10.0, 20.25, 99.99])),
                       tuple(draw(st.lists(st.sampled_from("abcdef"), max_size=2))))
            side = draw(st.integers(0, 1))
        out.append((event, now, side))
    return out


def check_split(engine: TagEngine, history: list[tuple[dict[str, Any], int, int]], cut: int, pause_ms: int,
                absorbed_evaluated: bool = True) -> None:
    """``absorbed_evaluated=False``: the absorbed side kept features only, as an anonymous visitor
    whose tags are not published (``TAG_ANONYMOUS`` off)."""
    cut = min(cut, len(history))
    merge_at = (history[cut - 1][1] if cut else T0) + pause_ms
    one, sides = CustomerState(), [CustomerState(), CustomerState()]
    for event, now, side in history[:cut]:
        engine.process_event(one, {**event, "customer_id": "u"}, now)
        fold = engine.process_event if absorbed_evaluated or side == 0 else engine.fold_only
        outcome = fold(sides[side], {**event, "customer_id": ("u", "a")[side]}, now)
        if side == 1 and not absorbed_evaluated:
            assert not outcome.changes and not sides[1].tags and sides[1].due_ms is None
    engine.catch_up(one, "u", merge_at)
    out = merge_customers(engine, sides[0], "u", sides[1], "a", merge_at, "m")
    merged = sides[0]
    assert out.overlap == 0
    assert same(engine.feature_values(merged, merge_at), engine.feature_values(one, merge_at))
    assert set(merged.tags) == set(one.tags)
    assert merged.due_ms == one.due_ms
    for event, now, _ in history[cut:]:  # after the merge every event goes to the survivor
        now = max(now, merge_at)
        a = engine.process_event(one, {**event, "customer_id": "u"}, now)
        b = engine.process_event(merged, {**event, "customer_id": "u"}, now)
        assert a.duplicate == b.duplicate
    end = max([merge_at, *(n for _, n, _ in history)])
    for later in range(end, end + 8 * D, 5 * H):  # as the windows slide, bucket by bucket
        assert same(engine.feature_values(merged, later), engine.feature_values(one, later)), later


@settings(max_examples=300, deadline=None)
@given(history=histories(["view", "paid", "page", "cart"], 30), cut=st.integers(0, 30),
       pause_ms=st.sampled_from([0, 1, 30 * M, 3 * H]))
def test_merging_a_split_equals_processing_everything_under_one_id(engine: TagEngine, history: Any, cut: int,
                                                                   pause_ms: int) -> None:
    check_split(engine, history, cut, pause_ms)


@settings(max_examples=300, deadline=None)
@given(history=histories(["view", "paid", "page", "cart"], 30), cut=st.integers(0, 30),
       pause_ms=st.sampled_from([0, 1, 30 * M, 3 * H]))
def test_an_anonymous_side_kept_without_tags_merges_the_same(engine: TagEngine, history: Any, cut: int,
                                                             pause_ms: int) -> None:
    """With TAG_ANONYMOUS off an anonymous visitor's tags are never evaluated; once merged, the
    survivor's features, tags and due time are those of one customer that had every event."""
    check_split(engine, history, cut, pause_ms, absorbed_evaluated=False)


@settings(max_examples=300, deadline=None)
@given(history=histories(["view", "paid", "cart"], 7), cut=st.integers(0, 7),
       pause_ms=st.sampled_from([0, 1, 30 * M, 3 * H]))
def test_merging_sequences_and_absences_equals_one_id(seq_engine: TagEngine, history: Any, cut: int,
                                                      pause_ms: int) -> None:
    """Up to 7 events: under the caps of sequences.py (4 runs, 4 unmatched B's, 8 pending A's),
    which are the one place a merge and a single fold may remember different times."""
    check_split(seq_engine, history, cut, pause_ms)
