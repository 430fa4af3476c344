"""Time-since due times that matter (streams/engine/since_due.py): a threshold whose crossing cannot
change any tag, given the ones the customer holds, is no due time, and skipping it changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine.features.state import CustomerState
from streams.engine.since_due import SinceDue
from streams.engine.tag_engine import TagEngine
from tag_rules import load_rules

from .engine_support import T0, D, H, customer_stream, event

RULES = """
features:
  - {name: carts_1h, agg: count, window: 1h, sources: [clickstream], where: type == "add_to_cart"}
  - {name: carts_all, agg: count, sources: [clickstream], where: type == "add_to_cart"}
  - {name: spend_all, agg: sum, field: amount, sources: [pos, orders]}
  - {name: since_buy, agg: since_last, sources: [pos, orders]}
  - {name: since_any, agg: since_last}
tags:
  - {name: fresh_cart, when: "since_any < hours(1) and carts_1h >= 1"}
  - {name: recent_buyer, when: "since_buy < hours(6)"}
  - {name: lapsed, when: "since_buy >= hours(12) and spend_all >= 5"}
  - {name: not_recent, when: "not (since_any < hours(3))"}
  - {name: exactly, when: "since_any == hours(2)"}
  - {name: sticky, enter: "since_buy < hours(9)", exit: "since_buy >= hours(10)"}
  - {name: cart_after_buy, when: "since_buy < hours(7) and carts_all >= 2"}
  - {name: lapsed_carter, when: "since_buy >= hours(3) and carts_1h >= 2"}
"""


def _engines(tmp_path: Path, text: str = RULES) -> tuple[TagEngine, TagEngine]:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    rules = load_rules(path)
    every = TagEngine(rules)
    every._since = SinceDue([], every._runtime_of)  # no tag known: every threshold is a due time
    return TagEngine(rules), every


def test_a_threshold_matters_only_for_the_tags_it_can_move(tmp_path: Path) -> None:
    engine, _ = _engines(tmp_path)
    key_any = engine._runtime_of["since_any"].key
    key_buy = engine._runtime_of["since_buy"].key
    since = engine._since
    last = T0
    # since_any: 1h (fresh_cart, only when held), 2h (== : always), 3h (not_recent: only when not held)
    assert since.next_ms(key_any, last, T0, {}) == last + 2 * H
    assert since.next_ms(key_any, last, T0, {"fresh_cart": T0}) == last + H
    assert since.next_ms(key_any, last, T0 + 2 * H, {"not_recent": T0}) == last + 2 * H + 1  # == flips back
    assert since.next_ms(key_any, last, T0 + 2 * H + 1, {"not_recent": T0}) == float("inf")
    assert since.next_ms(key_any, last, T0 + 2 * H + 1, {}) == last + 3 * H
    # since_buy: 3h (lapsed_carter when not held), 6h (recent_buyer when held), 7h (cart_after_buy when
    # held), 9h and 10h (sticky: hysteresis, always), 12h (lapsed when not held)
    assert since.next_ms(key_buy, last, T0, {}) == last + 3 * H
    assert since.next_ms(key_buy, last, T0, {"lapsed_carter": T0}) == last + 9 * H
    assert since.next_ms(key_buy, last, T0, {"lapsed_carter": T0, "recent_buyer": T0}) == last + 6 * H
    assert since.next_ms(key_buy, last, T0, {"lapsed_carter": T0, "cart_after_buy": T0}) == last + 7 * H
    assert since.next_ms(key_buy, last, T0 + 10 * H + 1, {"lapsed": T0}) == float("inf")
    assert since.next_ms(key_buy, last, T0 + 10 * H + 1, {}) == last + 12 * H
    assert sorted(since.keys_of) == ["cart_after_buy", "fresh_cart", "lapsed", "lapsed_carter", "not_recent",
                                     "recent_buyer"]


def test_an_opaque_condition_makes_every_threshold_of_its_feature_matter(tmp_path: Path) -> None:
    opaque = '  - {name: either, when: "(since_any < hours(5)) != (carts_1h >= 1)"}\n'
    engine, _ = _engines(tmp_path, RULES + opaque)
    key_any = engine._runtime_of["since_any"].key
    assert engine._since.next_ms(key_any, T0, T0, {}) == T0 + H
    # an ``or`` with a linear term is still monotone in its comparison: only when held
    monotone = '  - {name: either, when: "since_any < hours(5) or carts_1h * 2 > 3"}\n'
    engine, _ = _engines(tmp_path, RULES + monotone)
    assert engine._since.next_ms(key_any, T0, T0, {}) == T0 + 2 * H
    assert engine._since.next_ms(key_any, T0, T0 + 4 * H, {"either": T0}) == T0 + 5 * H


def test_a_tag_added_by_an_event_that_does_not_feed_its_time_since_value_leaves_at_its_threshold(
        tmp_path: Path) -> None:
    """``cart_after_buy`` (``since_buy < hours(7) and carts_all >= 2``) comes in at a cart, which does
    not feed ``since_buy``: from then on its 7 h threshold matters (``TagEngine._renew_since``)."""
    alone = """
features:
  - {name: carts_all, agg: count, sources: [clickstream], where: type == "add_to_cart"}
  - {name: since_buy, agg: since_last, sources: [pos, orders]}
tags:
  - {name: cart_after_buy, when: "since_buy < hours(7) and carts_all >= 2"}
"""
    fast, every = _engines(tmp_path, alone)
    s_fast, s_every = CustomerState(), CustomerState()
    steps = [(T0, "pos", "sale"), (T0 + H // 2, "clickstream", "add_to_cart"),
             (T0 + H, "clickstream", "add_to_cart")]
    for i, (at, source, typ) in enumerate(steps):
        ev = event(source=source, typ=typ, ts_ms=at, amount=1.0, event_id=f"e{i}")
        assert fast.process_event(s_fast, ev, at).changes == every.process_event(s_every, ev, at).changes
    assert "cart_after_buy" in s_fast.tags
    removed = [c for c in fast.catch_up(s_fast, "c1", T0 + 8 * H) if c["tag"] == "cart_after_buy"]
    assert [(c["op"], c["at_ms"]) for c in removed] == [("remove", T0 + 7 * H)]
    assert removed == [c for c in every.catch_up(s_every, "c1", T0 + 8 * H) if c["tag"] == "cart_after_buy"]


KINDS = [("clickstream", "product_view"), ("clickstream", "add_to_cart"), ("pos", "sale"), ("orders", "paid")]


def _without_due(state: CustomerState) -> dict[str, Any]:
    """The state as encoded (a reloaded one's bucket keys are strings until touched) but its due time."""
    out: dict[str, Any] = orjson.loads(state.dumps())
    out.pop("d", None)
    return out


@given(st.lists(st.one_of(
    st.tuples(st.just("event"), st.integers(0, D), st.sampled_from(KINDS), st.sampled_from([1.0, 3.0, 7.0]),
              st.integers(0, 3)),
    st.tuples(st.just("tick"), st.integers(0, 2 * D)),
    st.tuples(st.just("reload"), st.just(0))), min_size=1, max_size=40))
@settings(max_examples=300, deadline=None)
def test_skipping_the_thresholds_that_cannot_matter_changes_nothing(tmp_path_factory: pytest.TempPathFactory,
                                                                   steps: list[Any]) -> None:
    """Property: the engine with only the thresholds that matter as due times publishes exactly the
    changes, at the same instants, and keeps the same state, as one with every threshold a due
    time; and its due times are never earlier."""
    fast, every = _engines(tmp_path_factory.mktemp("since"))
    s_fast, s_every = CustomerState(), CustomerState()
    now = T0
    for step in steps:
        now += step[1] // 20
        if step[0] == "reload":
            s_fast = CustomerState.loads(s_fast.dumps())
        elif step[0] == "tick":
            assert fast.catch_up(s_fast, "c1", now) == every.catch_up(s_every, "c1", now)
        else:
            _, dt, (source, typ), amount, dup = step
            ev = event(source=source, typ=typ, ts_ms=now - dt // 10, amount=amount, event_id=f"e{dup}-{dt}")
            a, b = fast.process_event(s_fast, ev, now), every.process_event(s_every, ev, now)
            assert (a.changes, a.late, a.duplicate) == (b.changes, b.late, b.duplicate)
        assert _without_due(s_fast) == _without_due(s_every)
        if s_every.due_ms is None:
            assert s_fast.due_ms is None
        elif s_fast.due_ms is not None:
            assert s_fast.due_ms >= s_every.due_ms


def test_the_selective_thousand_tags_skip_due_runs_and_change_the_same(tmp_path: Path) -> None:
    """benchmarks/rules_1000_selective.yaml on a generated stream with the worker's due timer: the
    same changes with fewer due runs."""
    rules = load_rules(Path(__file__).parents[2] / "benchmarks" / "rules_1000_selective.yaml")
    fast, every = TagEngine(rules), TagEngine(rules)
    every._since = SinceDue([], every._runtime_of)
    runs = {"fast": 0, "every": 0}
    states: dict[str, tuple[CustomerState, CustomerState]] = {}
    for cid, ev, now in customer_stream(seed=11, customers=60, step_ms=60_000.0):
        for other, (sf, se) in states.items():  # the due-time timer, as the worker runs it
            due_fast = sf.due_ms is not None and sf.due_ms <= now
            due_every = se.due_ms is not None and se.due_ms <= now
            runs["fast"] += due_fast
            runs["every"] += due_every
            if due_fast or due_every:
                assert fast.catch_up(sf, other, now) == every.catch_up(se, other, now)
        sf, se = states.setdefault(cid, (CustomerState(), CustomerState()))
        a, b = fast.process_event(sf, ev, now), every.process_event(se, ev, now)
        assert a.changes == b.changes
        assert _without_due(sf) == _without_due(se)
    assert runs["fast"] < runs["every"]
