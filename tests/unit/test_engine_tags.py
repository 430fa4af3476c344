"""The engine with an injected clock: tags arriving and leaving with events and with time, due
times, late events, change ids, state round trips and rule changes (no network)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from streams.engine.clock import ManualClock
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import Change, TagEngine
from tag_rules import load_rules

from .engine_support import T0, WINDOW_RULES, D, H, event, rules_file


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
