"""Properties of the engine: tags change only at due times, and evaluating only the tags an event
fed equals evaluating every tag (random scripts with late, duplicated and reloaded states, and the
shipped rule sets on a generated stream); the earliest next change (no network)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from tag_rules import load_rules

from .engine_support import T0, D, customer_stream, event

PROPERTY_RULES = """
features:
  - {name: n_10s, agg: count, window: 10s}
  - {name: s_1h, agg: sum, field: amount, window: 1h, resolution: 7m}
  - {name: hi_24h, agg: max, field: amount, window: 24h}
  - {name: cats_7d, agg: distinct_count, field: categories, window: 7d}
  - {name: last_30d, agg: last, field: amount, window: 30d}
  - {name: since, agg: since_last}
tags:
  - {name: a, when: n_10s >= 2}
  - {name: b, when: s_1h > 10 and hi_24h >= 5}
  - {name: c, when: cats_7d >= 2 or last_30d == 3}
  - {name: d, when: since >= hours(6) and since < days(2)}
"""


@given(st.lists(st.tuples(st.integers(0, 3 * D), st.sampled_from([1.0, 3.0, 7.0]),
                          st.sampled_from(["x", "y", "z"])), min_size=1, max_size=25),
       st.integers(0, 40 * D))
@settings(max_examples=150, deadline=None)
def test_tags_only_change_at_due_times(tmp_path_factory: pytest.TempPathFactory, evs: list[Any], probe: int) -> None:
    """Property: between two due times no tag can change, and the due time is when one may."""
    path = tmp_path_factory.mktemp("p") / "rules.yaml"
    path.write_text(PROPERTY_RULES)
    eng = TagEngine(load_rules(path), dedup_horizon_ms=0)
    state = CustomerState()
    now = T0
    for i, (dt, amount, cat) in enumerate(sorted(evs)):
        now = T0 + dt
        eng.process_event(state, event(ts_ms=now, amount=amount, categories=[cat], event_id=f"e{i}"), now)

    def tags_at(t: int) -> set[str]:
        twin = CustomerState.loads(state.dumps())
        values = eng.feature_values(twin, t)
        return {tag.name for tag in eng.tags if tag.when(values)}

    due = state.due_ms
    if due is None:
        assert tags_at(now + probe) == set(state.tags)
        return
    assert due > now
    mid = now + (due - now) * (probe % 1000) // 1000  # any instant before the due time
    assert tags_at(min(mid, due - 1)) == set(state.tags)  # nothing changes before it


INCREMENTAL_RULES = """
features:
  - {name: views_10s, agg: count, window: 10s, sources: [clickstream], where: type == "product_view"}
  - {name: carts_1h, agg: count, window: 1h, sources: [clickstream], where: type == "add_to_cart"}
  - {name: spend_24h, agg: sum, field: amount, window: 24h, sources: [pos, orders]}
  - {name: hi_7d, agg: max, field: amount, window: 7d, sources: [pos, orders]}
  - {name: cats_7d, agg: distinct_count, field: categories, window: 7d}
  - {name: orders_30d, agg: count, window: 30d, sources: [orders], where: type == "paid"}
  - {name: spend_all, agg: sum, field: amount, sources: [pos, orders]}
  - {name: since_buy, agg: since_last, sources: [pos, orders]}
  - {name: since_any, agg: since_last}
tags:
  - {name: browsing, when: views_10s >= 2}
  - {name: cart_no_buy, when: carts_1h >= 1 and since_buy >= hours(1)}
  - {name: no_orders, when: orders_30d == 0}
  - {name: big, when: spend_24h > 10 or hi_7d >= 7}
  - {name: explorer, when: cats_7d >= 2 and views_10s >= 1}
  - {name: vip, when: spend_all >= 20}
  - {name: dormant, when: since_any >= days(2)}
  - {name: always, when: "true"}
  - {name: pricey_browser, when: "hi_7d >= 5 and views_10s >= hi_7d / 2"}
  - {name: carts_over_spend, when: "carts_1h >= 1 and orders_30d >= 1 and carts_1h >= spend_24h / 4"}
"""

KINDS = [("clickstream", "product_view"), ("clickstream", "add_to_cart"), ("pos", "sale"), ("orders", "paid"),
         ("orders", "created")]


@given(st.lists(st.one_of(
    st.tuples(st.just("event"), st.integers(0, 3 * D), st.sampled_from(KINDS), st.sampled_from([1.0, 3.0, 7.0]),
              st.sampled_from(["x", "y", "z"]), st.integers(0, 5)),
    st.tuples(st.just("tick"), st.integers(0, 3 * D)),
    st.tuples(st.just("reload"), st.just(0))), min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_incremental_evaluation_equals_evaluating_every_tag(tmp_path_factory: pytest.TempPathFactory,
                                                            steps: list[Any]) -> None:
    """Property: evaluating only the tags whose features an event fed gives exactly the changes,
    the due times and the state that evaluating every tag gives — with events late, out of
    order, duplicated, clock ticks in between, and the state reloaded from its encoding."""
    path = tmp_path_factory.mktemp("inc") / "rules.yaml"
    path.write_text(INCREMENTAL_RULES)
    rules = load_rules(path)
    fast = TagEngine(rules, allowed_lateness_ms=2 * D)
    ref = TagEngine(rules, allowed_lateness_ms=2 * D, incremental=False)
    s_fast, s_ref = CustomerState(), CustomerState()
    now = T0
    for step in steps:
        now += step[1] // 40  # time moves forward; event times may lag behind it
        if step[0] == "reload":  # the state as a worker reads it back from its store / changelog
            s_fast = CustomerState.loads(s_fast.dumps())
        elif step[0] == "tick":
            if s_ref.due_ms is not None and s_ref.due_ms <= now:
                assert fast.catch_up(s_fast, "c1", now) == ref.catch_up(s_ref, "c1", now)
        else:
            _, dt, (source, typ), amount, cat, dup = step
            ev = event(source=source, typ=typ, ts_ms=now - dt // 10, amount=amount, categories=[cat],
                       event_id=f"e{dup}-{dt}")
            a, b = fast.process_event(s_fast, ev, now), ref.process_event(s_ref, ev, now)
            assert (a.changes, a.late, a.duplicate) == (b.changes, b.late, b.duplicate)
        assert s_fast.due_ms == s_ref.due_ms
        assert s_fast.tags == s_ref.tags
        assert s_fast.dumps() == s_ref.dumps()


@pytest.mark.parametrize("rules_path", ["tag_rules/retail.yaml", "benchmarks/reference_rules.yaml",
                                        "benchmarks/rules_1000.yaml", "benchmarks/rules_1000_selective.yaml"])
def test_incremental_evaluation_on_the_shipped_rule_sets(rules_path: str) -> None:
    """The retail rules and the benchmark's reference workload, fed a realistic generated
    stream (with clock ticks between events): incremental and full evaluation agree."""
    rules = load_rules(Path(__file__).parents[2] / rules_path)
    fast, ref = TagEngine(rules), TagEngine(rules, incremental=False)
    states: dict[str, tuple[CustomerState, CustomerState]] = {}
    n_changes = 0
    for n_events, (cid, ev, now) in enumerate(customer_stream(seed=7, customers=40, step_ms=90_000.0)):
        for other, (sf, sr) in states.items():  # the due-time timer, as the worker runs it
            if sr.due_ms is not None and sr.due_ms <= now:
                assert fast.catch_up(sf, other, now) == ref.catch_up(sr, other, now)
        sf, sr = states.setdefault(cid, (CustomerState(), CustomerState()))
        if n_events % 5 == 0:  # as the worker's RocksDB store hands it back; else kept in memory, with
            sf = CustomerState.loads(sf.dumps())  # the engine's caches (next_change, value_cache)
            states[cid] = (sf, sr)
        a, b = fast.process_event(sf, ev, now), ref.process_event(sr, ev, now)
        assert a.changes == b.changes
        assert sf.dumps() == sr.dumps()
        n_changes += len(a.changes)
    assert n_changes > 100  # the stream really moved tags


def test_the_earliest_next_change_is_the_smallest_entry_int_or_float() -> None:
    """``due_times.earliest`` (compiled on doubles) over ``CustomerState.next_change``, whose entries
    may be ints (a window's next bucket end) or floats (inf: never)."""
    from streams.engine.due_times import earliest

    assert earliest({}) == math.inf
    assert earliest({"a": math.inf}) == math.inf
    assert earliest({"a": 1_700_000_000_500, "b": 1_700_000_000_250.0, "c": math.inf}) == 1_700_000_000_250
    assert earliest({"a": 9_007_199_254_740_000, "b": math.inf}) == 9_007_199_254_740_000
