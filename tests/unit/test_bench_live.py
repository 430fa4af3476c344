"""benchmarks/rules_live.py: the stream spans hours, its timer runs every due time before each
event (none is left behind), and time-driven changes happen, so the benchmark measures them."""

from __future__ import annotations

from benchmarks.common import REFERENCE_RULES
from benchmarks.rules_live import run, stream
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from tag_rules import load_rules


def test_the_live_stream_meets_the_due_timer() -> None:
    evs = stream(3000, 300, 20261127, 3000.0)
    assert evs[-1]["ts_ms"] - evs[0]["ts_ms"] > 2 * 3_600_000  # hours: 1 h windows' buckets leave them
    engine = TagEngine(load_rules(REFERENCE_RULES))
    states: dict[str, CustomerState] = {}
    r = run(engine, evs, states)
    assert r["due_runs_per_event"] > 0.05 and r["due_changes_per_event"] > 0
    last = evs[-1]["ts_ms"]
    assert all(s.due_ms is None or s.due_ms > last for s in states.values())  # none left behind
