"""The engine with an injected clock: features per aggregation, tags arriving and leaving with
events and with time, due times, out-of-order and late events, rule changes (no network)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine.clock import ManualClock
from streams.engine.features.state import SEEN_ENTRY, CustomerState, seen_at
from streams.engine.tag_engine import Change, TagEngine
from tag_rules import load_rules

H = 3_600_000
D = 24 * H
T0 = 1_800_000_000_000  # a fixed "now" far from epoch


def rules_file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(text)
    return p


def event(source: str = "clickstream", typ: str = "product_view", ts_ms: int = T0, **kw: Any) -> dict[str, Any]:
    base = {"event_id": f"e{random.random()}", "source": source, "type": typ, "customer_id": "c1", "ts_ms": ts_ms,
            "src_ts_ms": ts_ms, "amount": None, "currency": None, "skus": [], "categories": [], "channel": None,
            "store_id": None, "session_id": None, "order_id": None, "payment_method": None, "quantity": None,
            "query": None, "url": None}
    base.update(kw)
    return base


def customer_stream(seed: int, customers: int, step_ms: float,
                    n: int = 3000) -> Iterator[tuple[str, dict[str, Any], int]]:
    """The generator's events with a customer, canonical, as (customer id, event, the time the
    worker sees it: a second after it happened)."""
    from schemas.canonical import to_canonical
    from schemas.decode import decode_event
    from streams.tools.generator import RetailGenerator

    for g in RetailGenerator(seed=seed, customers=customers, start_ms=T0, step_ms=step_ms).take(n):
        ev = to_canonical(g.source, decode_event(g.source, g.value), T0)
        if ev["customer_id"] is not None:
            yield ev["customer_id"], ev, ev["ts_ms"] + 1000


AGG_RULES = """
version: v1
features:
  - {name: n_1h, agg: count, window: 1h}
  - {name: s_1h, agg: sum, field: amount, window: 1h}
  - {name: lo_1h, agg: min, field: amount, window: 1h}
  - {name: hi_1h, agg: max, field: amount, window: 1h}
  - {name: avg_1h, agg: avg, field: amount, window: 1h}
  - {name: first_1h, agg: first, field: amount, window: 1h}
  - {name: last_1h, agg: last, field: amount, window: 1h}
  - {name: cats_1h, agg: distinct_count, field: categories, window: 1h}
  - {name: n_all, agg: count}
  - {name: s_all, agg: sum, field: amount}
  - {name: cats_all, agg: distinct_count, field: categories}
  - {name: since, agg: since_last}
tags:
  - name: everything
    when: >-
      n_1h + s_1h + coalesce(lo_1h, 0) + coalesce(hi_1h, 0) + coalesce(avg_1h, 0) + coalesce(first_1h, 0)
      + coalesce(last_1h, 0) + cats_1h + n_all + s_all + cats_all >= 0
  - name: quiet_day
    when: since >= days(1)
"""


@pytest.fixture
def agg_engine(tmp_path: Path) -> TagEngine:
    return TagEngine(load_rules(rules_file(tmp_path, AGG_RULES)))


def test_every_aggregation_over_a_window_and_lifetime(agg_engine: TagEngine) -> None:
    st = CustomerState()
    evs = [(10.0, ["a", "b"], T0), (30.0, ["b"], T0 + 10 * 60_000), (20.0, ["c"], T0 + 20 * 60_000)]
    for amount, cats, ts in evs:
        agg_engine.process_event(st, event(ts_ms=ts, amount=amount, categories=cats), ts)
    v = agg_engine.feature_values(st, T0 + 30 * 60_000)
    assert v == {"n_1h": 3, "s_1h": 60.0, "lo_1h": 10.0, "hi_1h": 30.0, "avg_1h": 20.0, "first_1h": 10.0,
                 "last_1h": 20.0, "cats_1h": 3, "n_all": 3, "s_all": 60.0, "cats_all": 3, "since": 600.0}
    # 1h05 after the first event it has left the 1h window (60 s resolution), lifetime keeps it
    v = agg_engine.feature_values(st, T0 + H + 5 * 60_000)
    assert v["n_1h"] == 2 and v["s_1h"] == 50.0 and v["first_1h"] == 30.0 and v["cats_1h"] == 2
    assert v["n_all"] == 3 and v["cats_all"] == 3
    v = agg_engine.feature_values(st, T0 + 3 * H)
    assert v["n_1h"] == 0 and v["lo_1h"] is None and v["avg_1h"] is None and v["cats_1h"] == 0
    assert v["n_all"] == 3


def test_out_of_order_events_give_the_same_features(agg_engine: TagEngine) -> None:
    evs = [event(ts_ms=T0 + i * 90_000, amount=float(i % 5), categories=[f"k{i % 3}"]) for i in range(30)]
    now = T0 + 30 * 90_000
    in_order, shuffled = CustomerState(), CustomerState()
    for e in evs:
        agg_engine.process_event(in_order, e, now)
    rnd = random.Random(3)
    for e in rnd.sample(evs, len(evs)):
        agg_engine.process_event(shuffled, e, now)
    assert agg_engine.feature_values(in_order, now) == agg_engine.feature_values(shuffled, now)


WINDOW_RULES = """
version: v1
features:
  - {name: views_1h, agg: count, window: 1h, sources: [clickstream], where: type == "product_view"}
  - {name: orders_30d, agg: count, window: 30d, sources: [orders], where: type == "paid"}
  - {name: orders_all, agg: count, sources: [orders], where: type == "paid"}
  - {name: since_order, agg: since_last, sources: [orders], where: type == "paid"}
tags:
  - {name: hot, when: views_1h >= 10}
  - {name: lapsing, when: orders_all >= 1 and since_order >= days(30)}
  - {name: no_orders_30d, when: orders_all >= 1 and orders_30d == 0}
"""


@pytest.fixture
def engine(tmp_path: Path) -> TagEngine:
    return TagEngine(load_rules(rules_file(tmp_path, WINDOW_RULES)))


def run_dues(engine: TagEngine, st: CustomerState, until_ms: int) -> list[Change]:
    """Drives the due times like the worker's timer does, up to ``until_ms``."""
    out: list[Change] = []
    while st.due_ms is not None and st.due_ms <= until_ms:
        out += engine.process_due(st, "c1", st.due_ms, until_ms)
    return out


def test_window_tag_enters_on_events_and_leaves_on_time(engine: TagEngine) -> None:
    clock = ManualClock(T0)
    st = CustomerState()
    changes = []
    for _ in range(10):
        changes += engine.process_event(st, event(ts_ms=clock.now_ms()), clock.now_ms()).changes
        clock.advance(1000)
    assert [(c["tag"], c["op"], c["cause"]) for c in changes] == [("hot", "add", "event")]
    assert changes[0]["features"] == {"views_1h": 10}
    # the first view leaves the window at the end of its 1-minute bucket + 1 h
    assert st.due_ms == (T0 // 60_000 + 1) * 60_000 + H
    assert run_dues(engine, st, st.due_ms - 1) == []
    removed = run_dues(engine, st, T0 + 2 * H)
    assert [(c["tag"], c["op"], c["cause"], c["at_ms"]) for c in removed] == [
        ("hot", "remove", "expiry", (T0 // 60_000 + 1) * 60_000 + H)]
    assert st.tags == {} and st.features == {} and st.due_ms is None


def test_absence_tags_arrive_with_no_event(engine: TagEngine) -> None:
    st = CustomerState()
    engine.process_event(st, event("orders", "paid", T0), T0)
    assert st.tags == {}
    changes = run_dues(engine, st, T0 + 40 * D)
    got = [(c["tag"], c["op"], c["cause"], c["at_ms"]) for c in changes]
    # since_order >= 30 d at exactly T0 + 30 d; orders_30d empties at bucket end (12 h steps) + 30 d
    assert ("lapsing", "add", "expiry", T0 + 30 * D) in got
    empty_at = (T0 // (12 * H) + 1) * 12 * H + 30 * D
    assert ("no_orders_30d", "add", "expiry", empty_at) in got
    assert set(st.tags) == {"lapsing", "no_orders_30d"}
    # a new order takes both away, as an event
    changes = engine.process_event(st, event("orders", "paid", T0 + 41 * D), T0 + 41 * D).changes
    assert sorted((c["tag"], c["op"], c["cause"]) for c in changes) == [
        ("lapsing", "remove", "event"), ("no_orders_30d", "remove", "event")]


@pytest.mark.parametrize("window,res_ms", [("10s", 166), ("5m", 5000), ("1h", 60_000), ("24h", 1_440_000),
                                           ("7d", 10_080_000), ("30d", 43_200_000)])
def test_due_time_is_when_the_value_changes(tmp_path: Path, window: str, res_ms: int) -> None:
    eng = TagEngine(load_rules(rules_file(tmp_path, f"""
features:
  - {{name: n, agg: count, window: {window}}}
tags:
  - {{name: t, when: n >= 1}}
""")))
    rnd = random.Random(window)
    st = CustomerState()
    now = T0
    for _ in range(5):
        now += rnd.randrange(0, res_ms * 3 + 1)
        eng.process_event(st, event(ts_ms=now), now)
    while st.due_ms is not None:
        due = st.due_ms
        before = eng.feature_values(st, due - 1)["n"]
        after = eng.feature_values(st, due)["n"]
        assert after < before, "the value must change exactly at the due time"
        eng.process_due(st, "c1", due, due)
    assert st.tags == {}


def test_late_event_feeds_longer_windows_and_lifetime_only(engine: TagEngine) -> None:
    st = CustomerState()
    now = T0
    out = engine.process_event(st, event("orders", "paid", now - 2 * D), now)
    assert not out.late  # inside 30 d
    out = engine.process_event(st, event("clickstream", "product_view", now - 2 * H), now)
    assert out.late  # outside 1 h
    v = engine.feature_values(st, now)
    assert v["views_1h"] == 0 and v["orders_30d"] == 1 and v["orders_all"] == 1
    assert v["since_order"] == 2 * D / 1000


def test_no_duplicate_adds_and_deterministic_change_ids(engine: TagEngine) -> None:
    st = CustomerState()
    adds = []
    for i in range(25):
        adds += [c for c in engine.process_event(st, event(ts_ms=T0 + i), T0 + i).changes if c["op"] == "add"]
    assert len(adds) == 1
    st2 = CustomerState()
    e = event(ts_ms=T0, event_id="same")
    a = engine.process_event(st2, e, T0)
    st3 = CustomerState()
    for i in range(9):
        engine.process_event(st3, event(ts_ms=T0 - 9 + i), T0)
    c1 = engine.process_event(st3, event(ts_ms=T0, event_id="same"), T0).changes
    st4 = CustomerState()
    for i in range(9):
        engine.process_event(st4, event(ts_ms=T0 - 9 + i), T0 + 5)
    c2 = engine.process_event(st4, event(ts_ms=T0, event_id="same"), T0 + 5).changes
    assert a.changes == [] and c1[0]["change_id"] == c2[0]["change_id"]


def test_change_id_is_blake2b_of_the_basis() -> None:
    """The id downstream consumers de-duplicate by must not change across versions: blake2b
    (10 bytes, hex) of customer, tag, op, cause and the event id (else the instant), \x1f-separated."""
    import hashlib

    from streams.engine.tag_change import tag_change

    c = tag_change("c1", "vip", "add", 1_700_000_000_000, "event", "v1", {"event_id": "e-7", "ts_ms": 1}, {})
    d = tag_change("c1", "vip", "remove", 1_700_000_000_000, "expiry", "v1", None, {})
    assert c["change_id"] == hashlib.blake2b(b"c1\x1fvip\x1fadd\x1fevent\x1fe-7", digest_size=10).hexdigest()
    assert d["change_id"] == hashlib.blake2b(b"c1\x1fvip\x1fremove\x1fexpiry\x1f1700000000000",
                                             digest_size=10).hexdigest()


def test_state_round_trips_through_its_changelog_encoding(engine: TagEngine) -> None:
    st = CustomerState()
    for i in range(12):
        engine.process_event(st, event(ts_ms=T0 + i * 1000), T0 + i * 1000)
    engine.process_event(st, event("orders", "paid", T0), T0 + 12_000)
    again = CustomerState.loads(st.dumps())
    now = T0 + 20_000
    assert engine.feature_values(again, now) == engine.feature_values(st, now)
    assert again.tags == st.tags and again.due_ms == st.due_ms and again.seen_log == st.seen_log
    assert again.seen_set() == st.seen_set()
    # 13 events: one bucket per feature (~100 bytes) + 13 remembered event ids (16 bytes each)
    assert len(st.dumps()) < 450


def test_rule_change_removes_dropped_tags_and_reevaluates(tmp_path: Path, engine: TagEngine) -> None:
    st = CustomerState()
    for i in range(10):
        engine.process_event(st, event(ts_ms=T0 + i), T0 + i)
    assert "hot" in st.tags
    new = TagEngine(load_rules(rules_file(tmp_path, WINDOW_RULES.replace("version: v1", "version: v2")
                                          .replace("views_1h >= 10", "views_1h >= 20"))))
    changes = new.process_due(st, "c1", T0 + 100, T0 + 100)
    assert [(c["tag"], c["op"], c["cause"], c["rule_version"]) for c in changes] == [
        ("hot", "remove", "rule_change", "v2")]
    assert st.rule_version == "v2"


def test_events_beyond_the_allowed_lateness_feed_lifetime_features_only(tmp_path: Path) -> None:
    eng = TagEngine(load_rules(rules_file(tmp_path, WINDOW_RULES)), allowed_lateness_ms=7 * D)
    st = CustomerState()
    out = eng.process_event(st, event("orders", "paid", T0 - 8 * D), T0)
    assert out.late
    v = eng.feature_values(st, T0)
    assert v["orders_30d"] == 0 and v["orders_all"] == 1


def test_an_event_delivered_twice_counts_once_within_the_horizon(tmp_path: Path) -> None:
    eng = TagEngine(load_rules(rules_file(tmp_path, WINDOW_RULES)), dedup_horizon_ms=D, dedup_max_ids=100)
    st = CustomerState()
    e = event("orders", "paid", T0, event_id="order-1-paid")
    assert not eng.process_event(st, e, T0).duplicate
    assert eng.process_event(st, dict(e), T0 + H).duplicate
    assert eng.feature_values(st, T0 + H)["orders_all"] == 1
    again = CustomerState.loads(st.dumps())  # the memory of seen ids survives recovery
    assert eng.process_event(again, dict(e), T0 + 2 * H).duplicate
    # past the horizon the id is forgotten: it counts again
    assert not eng.process_event(st, dict(e), T0 + D + 1).duplicate
    assert eng.feature_values(st, T0 + D + 1)["orders_all"] == 2


def test_dedup_memory_per_customer_is_bounded(tmp_path: Path) -> None:
    eng = TagEngine(load_rules(rules_file(tmp_path, WINDOW_RULES)), dedup_horizon_ms=D, dedup_max_ids=50)
    st = CustomerState()
    for i in range(500):
        eng.process_event(st, event(ts_ms=T0 + i, event_id=f"e{i}"), T0 + i)
    assert len(st.seen_log) == 50 * 12 and len(st.seen_set()) == 50
    assert len(st.dumps()) < 50 * 16 + 400



def test_dedup_search_ignores_matches_across_two_entries() -> None:
    """The log is searched as bytes (``seen_at``): a fingerprint that occurs only across the
    boundary of two entries (the end of one, the start of the next) is not a remembered id."""
    fp_a, fp_b = bytes(range(1, 9)), bytes(range(11, 19))
    log = bytearray(fp_a + bytes([0, 0, 0, 7]) + fp_b + bytes([0, 0, 0, 8]))
    straddling = bytes(log[6:14])  # the last 2 bytes of fp_a, the 4-byte second, 2 bytes of fp_b
    assert seen_at(log, fp_a) == 0 and seen_at(log, fp_b) == SEEN_ENTRY
    assert seen_at(log, straddling) == -1
    assert seen_at(log, bytes(8)) == -1
    # an id whose fingerprint also occurs unaligned earlier is still found at its own entry
    tricky = bytearray(bytes([0, 0, 0, 7]) + fp_b[:4])  # bytes 8..15 of an entry, unaligned
    log2 = bytearray(fp_a + bytes([0, 0, 0, 7]) + bytes(tricky) + bytes([0, 0, 0, 9]))
    assert seen_at(log2, bytes(tricky)) == SEEN_ENTRY


def test_dedup_memory_answers_like_a_set(tmp_path: Path) -> None:
    """Random ids against a log of up to ``dedup_max_ids``: the byte search says "seen" exactly
    for the ids a set of the remembered ones holds."""
    eng = TagEngine(load_rules(rules_file(tmp_path, WINDOW_RULES)), dedup_horizon_ms=D, dedup_max_ids=40)
    st = CustomerState()
    rng = random.Random(7)
    remembered: list[str] = []
    for i in range(600):
        eid = f"e{rng.randrange(120)}"
        remembered = remembered[-39:]  # each look-up first makes room for one more
        want = eid in remembered
        assert eng.process_event(st, event(ts_ms=T0 + i, event_id=eid), T0 + i).duplicate == want
        if not want:
            remembered.append(eid)
    assert len(st.seen_log) == len(remembered) * SEEN_ENTRY


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
