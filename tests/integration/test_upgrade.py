"""Switching ingest from the Faust agent to its own consumer (experimental) starts each source
partition where the Faust group committed it: not replayed from earliest, nothing lost."""

from __future__ import annotations

import time
import urllib.request
import uuid

from prometheus_client.parser import text_string_to_metric_families

from streams.tools.generator import RetailGenerator

from .conftest import Stack, WorkerProc, free_port
from .faultcheck import RULES, await_same_state, reference
from .test_faults import CUSTOMERS, final_tags, wait_processed
from .test_redis_outage import produce_events


def events_in(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) if f.name == "tagstream_events_in"
               for s in f.samples if s.name == "tagstream_events_in_total")


def test_upgrade_from_the_faust_ingest_agent_replays_nothing(stack: Stack) -> None:
    events = [e for e in RetailGenerator(seed=23, customers=CUSTOMERS).take(2000) if e.valid]
    half = len(events) // 2
    want_features, want_tags = reference(events)
    name = f"upgrade-{uuid.uuid4().hex[:6]}"
    old_port, new_port = free_port(), free_port()
    old = WorkerProc(stack, name, rules=RULES, extra_env={"TAGSTREAM_KAFKA__INGEST_CONSUMER": "false",  # before 2026-12
                                                         "TAGSTREAM_METRICS__PORT": str(old_port)}).start()
    try:
        produce_events(old, events[:half])
        wait_processed(old, old_port, half)
        time.sleep(3)  # faust commits its offsets every few seconds; a graceful stop commits too
    finally:
        old.stop()
    new = WorkerProc(stack, name, rules=RULES, instance="2", extra_env={"TAGSTREAM_METRICS__PORT": str(new_port),
                                                                      "TAGSTREAM_KAFKA__INGEST_CONSUMER": "true"})
    new.start()
    try:
        produce_events(new, events[half:])
        await_same_state(new, want_features, want_tags, lambda: final_tags(new))
        # at least once: what the Faust group had not committed yet is read again, never all of it
        got = events_in(new_port)
        assert len(events) - half <= got < len(events), f"the new consumer read {got} records: from earliest?"
    finally:
        new.stop()
