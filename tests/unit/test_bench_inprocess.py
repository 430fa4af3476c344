"""The in-process harness of benchmarks/RULES.md (benchmarks/rules_inprocess.py) still drives the
real customer stage: a tiny run publishes what the engine decides, through the batched tag topic."""

from __future__ import annotations

import asyncio

from benchmarks.common import REFERENCE_RULES
from benchmarks.rules_inprocess import BATCHED_TAG_TOPIC, prepare, run_stage, table


def test_a_tiny_run_reports_every_phase_and_the_changes_it_published() -> None:
    warm, batches, items, end_ms = prepare(events=1500, customers=200, seed=5, partitions=4, batch_max=100,
                                           envelopes_max=4, warm=500)
    assert warm and batches and items > 1000
    res = asyncio.run(run_stage(REFERENCE_RULES, batches, items, end_ms, 4, warm))
    assert BATCHED_TAG_TOPIC
    assert res["events"] == items == res["first_events"] + res["later_events"]
    published = sum(n for ops in res["tag_changes_by_tag"].values() for n in ops.values())
    assert published > 0 and res["changes_per_event"] * items == published  # every change reached the topic
    assert res["cpu_us_per_event"] > 0 and res["state_bytes_per_customer"] > 0
    assert {"engine (process_event)", "tag topic flush (tag_record, producer)",
            "redis sink flush (commands, pack)"} <= set(res["phases_us_per_event"])
    assert "CPU µs per event" in table({"50": res})


def test_digests_are_deterministic_and_cover_every_partition_and_redis() -> None:
    _, batches, items, end_ms = prepare(events=600, customers=100, seed=6, partitions=4, batch_max=100,
                                        envelopes_max=4, end_ms=1_764_842_000_000)
    runs = [asyncio.run(run_stage(REFERENCE_RULES, batches, items, end_ms, 4, digests=True))["digests"]
            for _ in range(2)]
    assert runs[0] == runs[1]
    assert {k.split("[")[0] for k in runs[0]} == {"tags.changes", "customers-changelog", "redis"}
