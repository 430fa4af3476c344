"""The engine micro-benchmark of the expiry benchmark: one event vs one due tick of ``TagEngine``
(and the due index), pure Python, no Kafka."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import yaml

from .expiry_groups import group_rules


def micro_benchmark(group: str, n: int) -> dict[str, float]:
    """Pure engine cost (no Kafka, no Faust): one event vs one due tick, in microseconds."""
    from streams.engine.features.state import CustomerState
    from streams.engine.tag_engine import TagEngine
    from tag_rules import load_rules

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(group_rules(group), f)
    try:
        engine = TagEngine(load_rules(Path(f.name)))
    finally:
        os.unlink(f.name)
    t = 1_700_000_000_000
    states = [CustomerState() for _ in range(n)]
    events = [{"customer_id": f"c{i}", "source": "clickstream", "type": "page_view", "ts_ms": t + i,
               "event_id": f"e{i}", "session_id": f"c{i}-s0", "src_ts_ms": t + i} for i in range(n)]
    t0 = time.perf_counter()
    for st, ev in zip(states, events, strict=True):
        engine.process_event(st, ev, t + n)
    per_event = (time.perf_counter() - t0) / n * 1e6
    ticks = 0
    t0 = time.perf_counter()
    for i, st in enumerate(states):
        while st.due_ms is not None:
            engine.catch_up(st, f"c{i}", st.due_ms)
            ticks += 1
    per_tick = (time.perf_counter() - t0) / max(1, ticks) * 1e6
    from streams.engine.due import DueIndex

    idx = DueIndex()
    keys = [f"c{i}".encode() for i in range(n)]
    t0 = time.perf_counter()
    for i, k in enumerate(keys):
        idx.schedule(k, t + i)
    popped = idx.pop_due(t + n, limit=n)
    per_index = (time.perf_counter() - t0) / max(1, len(popped)) * 1e6
    return {"engine_us_per_event": per_event, "engine_us_per_tick": per_tick,
            "ticks_per_customer": ticks / n, "due_index_us_per_schedule_and_pop": per_index}
