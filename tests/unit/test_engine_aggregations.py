"""The engine's features per aggregation, over a window and over the lifetime, the same whatever
the order of the events (no network)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from tag_rules import load_rules

from .engine_support import T0, H, event, rules_file

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
