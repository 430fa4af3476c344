"""The naive state of benchmark columns b and d (benchmarks/naive_state.py) ends with tagstream's
tags: the real runs compare the audiences in Redis; this checks the logic itself, in process."""

from __future__ import annotations

import time

import orjson

from benchmarks import naive_state
from benchmarks.common import REFERENCE_RULES
from schemas.canonical import to_canonical
from schemas.decode import decode_event
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from streams.tools.generator import RetailGenerator
from tag_rules import load_rules


def test_naive_state_and_the_engine_end_with_the_same_tags() -> None:
    rules = load_rules(REFERENCE_RULES)
    engine = TagEngine(rules)
    features, tags = list(rules.features.values()), list(rules.tags.values())
    now = int(time.time() * 1000)
    naive: dict[str, dict] = {}
    ours: dict[str, CustomerState] = {}
    n = 0
    for g in RetailGenerator(seed=11, customers=300, start_ms=now - 4000, step_ms=1.0).take(4000):
        if not g.valid:
            continue
        ev = naive_state.to_event(g.source, orjson.loads(g.value), now)
        cid = ev["customer_id"]
        canonical = to_canonical(g.source, decode_event(g.source, g.value), now)
        assert canonical["customer_id"] == cid and canonical["ts_ms"] == ev["ts_ms"]
        if cid is None:
            continue
        naive[cid], _ = naive_state.process(naive.get(cid), ev, features, tags, now)
        engine.process_event(ours.setdefault(cid, CustomerState()), canonical, now)
        n += 1
    assert n > 2000 and len(naive) > 100
    assert {c: set(s["t"]) for c, s in naive.items()} == {c: set(s.tags) for c, s in ours.items()}
    assert sum(len(s["t"]) for s in naive.values()) > len(naive)  # tags were held, not all empty sets
