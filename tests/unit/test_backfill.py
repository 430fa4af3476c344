"""Backfill of new features (streams/engine/backfill.py, TagEngine.process_backfill): which replayed
events apply to which feature, exactly once whatever the interleaving of live and replayed records,
however often the backfill runs; old features untouched; bounded books (no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.app.rules_watch import fold_deployments
from streams.engine.backfill import BackfillTracker, add_range, next_births, state_keys
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from streams.io.rules_topic import Deployment
from tag_rules import RuleSetError, load_rules

H = 3_600_000
D = 24 * H
T0 = 1_800_000_000_000
WINDOW = 7 * D

V1 = """
version: v1
features:
  - {name: events, agg: count}
  - {name: spend, agg: sum, field: amount, sources: [orders], where: type == "paid"}
tags:
  - {name: busy, when: events >= 5}
  - {name: buyer, when: spend >= 100}
"""
V2 = V1.replace("version: v1", "version: v2").replace("features:\n", """features:
  - {name: views_7d, agg: count, window: 7d, sources: [clickstream], where: type == "product_view"}
  - {name: spend_7d, agg: sum, field: amount, window: 7d, sources: [orders], where: type == "paid"}
""") + """  - {name: viewer, when: views_7d >= 3}
  - {name: recent_buyer, when: spend_7d >= 50}
"""


def event(i: int, ts_ms: int, *, sp: str = "clickstream:0", customer: str = "c1", typ: str = "product_view",
          source: str = "clickstream", amount: float | None = None) -> dict[str, Any]:
    return {"event_id": f"e{sp}-{i}", "source": source, "type": typ, "customer_id": customer, "ts_ms": ts_ms,
            "src_ts_ms": ts_ms, "amount": amount, "currency": None, "skus": [], "categories": [], "channel": None,
            "store_id": None, "session_id": None, "order_id": None, "payment_method": None, "quantity": None,
            "query": None, "url": None, "sp": sp, "so": i}


@pytest.fixture()
def rules(tmp_path: Path) -> tuple[Any, Any]:
    (tmp_path / "v1.yaml").write_text(V1)
    (tmp_path / "v2.yaml").write_text(V2)
    return load_rules(tmp_path / "v1.yaml"), load_rules(tmp_path / "v2.yaml")


# -- the books alone ------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 30), switch=st.integers(0, 30), mine=st.sets(st.integers(0, 29)),
       runs=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=3),
       seed=st.randoms(use_true_random=False))
def test_every_offset_counts_once_whatever_the_interleaving(n: int, switch: int, mine: set[int],
                                                             runs: list[tuple[int, int]], seed: Any) -> None:
    """One source partition with offsets 0..n-1, of which the customer's are ``mine`` (or all). The
    worker switched rules before offset ``switch`` (earlier ones never fed the new feature live);
    each backfill run replays its ``[start, end)`` in order (a crashed or early run is a short
    one); live and replays interleave at random (the backfill may run ahead of a lagging live
    path, a later run may start earlier or later)."""
    switch = min(switch, n)
    ours = sorted(o for o in (mine or range(n)) if o < n)
    tracker = BackfillTracker({"k": T0}, WINDOW)
    book: dict[str, Any] = {}
    counted: list[int] = []
    live = [o for o in ours if o >= switch]
    replays = [(start, [o for o in ours if start <= o < end]) for start, end in runs]
    queues: list[tuple[int | None, list[int]]] = [(None, live), *replays]
    while any(q for _, q in queues):
        start, q = seed.choice([(s, q) for s, q in queues if q])
        o = q.pop(0)
        ev = event(o, T0)
        if start is None:
            if "k" not in tracker.on_live(book, ev, T0 + H):
                counted.append(o)
        elif tracker.on_replay(book, ev, ["k"], start, T0 + H) == ["k"]:
            counted.append(o)
    assert sorted(counted) == sorted(set(counted)), "an offset counted twice"
    replayed = {o for start, end in runs for o in ours if start <= o < end}
    assert set(counted) == {o for o in ours if o >= switch} | replayed


def test_two_source_partitions_keep_separate_marks() -> None:
    tracker = BackfillTracker({"k": T0}, WINDOW)
    book: dict[str, Any] = {}
    assert tracker.on_live(book, event(5, T0, sp="pos:0"), T0) == frozenset()
    assert tracker.on_replay(book, event(3, T0, sp="pos:0"), ["k"], 0, T0) == ["k"]
    assert tracker.on_replay(book, event(5, T0, sp="pos:0"), ["k"], 0, T0) == []  # counted live
    assert tracker.on_replay(book, event(9, T0, sp="pos:1"), ["k"], 2, T0) == ["k"]  # nothing live there yet
    assert tracker.on_replay(book, event(9, T0, sp="pos:1"), ["k"], 0, T0) == []  # replayed twice
    assert tracker.on_live(book, event(9, T0, sp="pos:1"), T0) == frozenset({"k"})  # live lagged behind
    assert book == {str(T0): {"l": {"pos:0": 5, "pos:1": 9}, "d": {"k": {"pos:0": [[0, 5]], "pos:1": [[0, 10]]}}}}


def test_ranges_merge() -> None:
    ranges: list[list[int]] = []
    for a, b in ((5, 7), (0, 2), (2, 3), (6, 9), (11, 12)):
        add_range(ranges, a, b)
    assert ranges == [[0, 3], [5, 9], [11, 12]]


def test_books_are_kept_only_while_a_backfill_can_reach_the_feature() -> None:
    tracker = BackfillTracker({"k": T0}, WINDOW)
    book: dict[str, Any] = {}
    tracker.on_live(book, event(1, T0), T0 + H)
    assert book
    assert tracker.on_replay(book, event(0, T0), ["k"], 0, T0 + WINDOW) == []  # too late: ignored
    assert book == {}
    assert BackfillTracker({}, WINDOW).on_live(book, event(2, T0), T0) == frozenset() and book == {}
    assert tracker.on_replay(book, event(0, T0), ["not-born"], 0, T0) == [] and book == {}
    no_position = {k: v for k, v in event(0, T0).items() if k not in ("sp", "so")}
    assert tracker.on_live(book, no_position, T0) == frozenset() and book == {}


def test_births_follow_the_deployments(rules: tuple[Any, Any], tmp_path: Path) -> None:
    v1, v2 = rules
    new = state_keys(v2) - state_keys(v1)
    assert len(new) == 2
    assert next_births({}, state_keys(v1), state_keys(v2), 7) == dict.fromkeys(new, 7)
    assert next_births(dict.fromkeys(new, 7), state_keys(v2), state_keys(v2), 9) == dict.fromkeys(new, 7)
    assert next_births(dict.fromkeys(new, 7), state_keys(v2), state_keys(v1), 9) == {}  # rolled back

    def compile_(d: Deployment) -> Any:
        if d.version == "bad":
            raise RuleSetError([])
        return v2 if d.version == "v2" else v1

    deployments = [Deployment("v2", {}, 10, offset=0), Deployment("bad", {}, 11, offset=1),
                   Deployment("v1", {}, 12, offset=2), Deployment("v2", {}, 13, offset=3)]
    assert fold_deployments(v1, deployments[:2], compile_) == (v2, 0, dict.fromkeys(new, 10))
    assert fold_deployments(v1, deployments, compile_) == (v2, 3, dict.fromkeys(new, 13))
    assert fold_deployments(v1, [], compile_) == (v1, -1, {})


# -- the engine: a feature added after 3 days equals one that ran from the start -------------------

def history(n: int, start_ms: int) -> list[dict[str, Any]]:
    """n events over 3 days from ``start_ms``, three customers, two source partitions each source."""
    out = []
    step = 3 * D // n
    for i in range(n):
        cid = f"c{i % 3}"
        if i % 4 == 3:
            out.append(event(i, start_ms + i * step, sp=f"orders:{i % 2}", customer=cid, source="orders",
                             typ="paid", amount=10.0 + i))
        else:
            out.append(event(i, start_ms + i * step, sp=f"clickstream:{i % 2}", customer=cid,
                             typ="product_view" if i % 3 else "search"))
    return out


def run(engine: TagEngine, states: dict[str, CustomerState], events: list[dict[str, Any]], now_ms: int) -> None:
    for e in events:
        engine.process_event(states.setdefault(e["customer_id"], CustomerState()), e, now_ms)


def values(engine: TagEngine, states: dict[str, CustomerState], now_ms: int) -> dict[str, dict[str, Any]]:
    return {cid: engine.feature_values(s, now_ms) for cid, s in sorted(states.items())}


def test_a_feature_added_after_three_days_equals_one_that_ran_from_the_start(rules: tuple[Any, Any]) -> None:
    v1, v2 = rules
    now = T0 + 3 * D
    events = history(120, T0 - 2 * H)
    before, after = events[:80], events[80:]
    late = event(500, T0 + H, sp="clickstream:0", customer="c1")  # old event time, arrives after the deploy
    after.insert(5, late)
    reference = TagEngine(v2)
    ref_states: dict[str, CustomerState] = {}
    run(reference, ref_states, [*before, *after], now)

    births = {k: now - H for k in state_keys(v2) - state_keys(v1)}
    old, new = TagEngine(v1), TagEngine(v2, births=births)
    states: dict[str, CustomerState] = {}
    run(old, states, before, now - 2 * H)
    run(new, states, after[:20], now)
    keys = sorted(births)
    replay = sorted([*before, *after], key=lambda e: (e["sp"], e["so"]))
    for e in replay[: len(replay) // 2]:  # the backfill runs while live events keep coming
        new.process_backfill(states.setdefault(e["customer_id"], CustomerState()), e, keys, 0, now)
    run(new, states, after[20:], now)
    for e in replay[len(replay) // 2:]:
        new.process_backfill(states.setdefault(e["customer_id"], CustomerState()), e, keys, 0, now)
    want = values(reference, ref_states, now)
    assert values(new, states, now) == want
    assert {c: set(s.tags) for c, s in states.items()} == {c: set(s.tags) for c, s in ref_states.items()}
    encoded = {c: s.dumps() for c, s in states.items()}
    for e in replay:  # a second backfill changes nothing
        out = new.process_backfill(states[e["customer_id"]], e, keys, 0, now)
        assert out.backfilled == 0 and out.changes == []
    assert {c: s.dumps() for c, s in states.items()} == encoded


def test_a_replay_touches_neither_old_features_nor_the_dedup_memory(rules: tuple[Any, Any]) -> None:
    v1, v2 = rules
    births = {k: T0 for k in state_keys(v2) - state_keys(v1)}
    engine = TagEngine(v2, births=births)
    state = CustomerState()
    engine.process_event(state, event(1, T0, customer="c1"), T0)
    seen = bytes(state.seen_log)
    old_values = {n: v for n, v in engine.feature_values(state, T0).items() if n in ("events", "spend")}
    out = engine.process_backfill(state, event(0, T0 - D, customer="c1"), sorted(births), 0, T0 + 1)
    assert out.backfilled == 2
    assert engine.feature_values(state, T0 + 1) == {**old_values, "views_7d": 2, "spend_7d": 0}
    assert bytes(state.seen_log) == seen
    assert engine.process_event(state, event(0, T0 - D, customer="c1"), T0 + 2).duplicate is False  # not "seen"


def test_tags_a_backfill_completes_are_rule_changes(rules: tuple[Any, Any]) -> None:
    v1, v2 = rules
    births = {k: T0 for k in state_keys(v2) - state_keys(v1)}
    engine = TagEngine(v2, births=births)
    state = CustomerState()
    changes = []
    for i in range(3):
        changes += engine.process_backfill(state, event(i, T0 - D + i), sorted(births), 0, T0).changes
    assert [(c["tag"], c["op"], c["cause"], c["event_id"]) for c in changes] == [
        ("viewer", "add", "rule_change", None)]
    assert state.due_ms is not None  # the views leave the 7d window: the timer knows when


def test_the_book_survives_the_changelog_encoding(rules: tuple[Any, Any]) -> None:
    v1, v2 = rules
    births = {k: T0 for k in state_keys(v2) - state_keys(v1)}
    engine = TagEngine(v2, births=births)
    state = CustomerState()
    engine.process_event(state, event(4, T0), T0)
    engine.process_backfill(state, event(2, T0 - H), sorted(births), 0, T0)
    again = CustomerState.loads(state.dumps())
    assert again.backfill == state.backfill and again == state
    assert engine.process_backfill(again, event(2, T0 - H), sorted(births), 0, T0).backfilled == 0
    assert CustomerState.loads(CustomerState().dumps()).backfill == {}
