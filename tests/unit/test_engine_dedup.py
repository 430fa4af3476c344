"""The engine's de-duplication by event id: an event delivered twice counts once within the horizon
(also after recovery), the memory per customer is bounded, and its byte search answers like a set
(no network)."""

from __future__ import annotations

import random
from pathlib import Path

from streams.engine.features.state import SEEN_ENTRY, CustomerState, seen_at
from streams.engine.tag_engine import TagEngine
from tag_rules import load_rules

from .engine_support import T0, WINDOW_RULES, D, H, event, rules_file


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
