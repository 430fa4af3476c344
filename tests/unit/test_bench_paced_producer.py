"""The latency phases' paced load (benchmarks/paced_producer.py): the partitions aiokafka's default
partitioner picks, the generator's order kept per partition, and the timestamps the worker's
event -> tag latency starts from."""

from __future__ import annotations

import asyncio
from itertools import islice

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatch

from benchmarks import paced_producer
from benchmarks.paced_producer import Planned, plan
from streams.tools.generator import RetailGenerator

PARTITIONS = {"clickstream": [0, 1, 2, 3], "pos": [0, 1, 2, 3], "orders": [0, 1, 2, 3]}


def test_plan_keeps_the_generators_events_and_their_default_partitions() -> None:
    gen = RetailGenerator(seed=3, customers=500, start_ms=0, step_ms=1)
    planned = plan(gen, 2_000, PARTITIONS)
    events = list(islice(RetailGenerator(seed=3, customers=500, start_ms=0, step_ms=1), 2_000))
    assert [(p.source, p.key, p.value) for p in planned] == [(e.source, e.key, e.value) for e in events]
    keyed = [p for p in planned if p.key is not None]
    assert len(keyed) > 1_000
    assert all(p.partition == (murmur2(p.key) & 0x7FFFFFFF) % 4 for p in keyed if p.key is not None)


def batched(records: list[Planned], start_s: float, rate: float, tick_s: float
            ) -> dict[tuple[str, int], list[tuple[bytes, int]]]:
    """``_batches`` with a producer that is never connected (it only builds record batches; made
    and stopped inside a loop, as aiokafka asks): per (source, partition), its records' keys and
    timestamps as a broker would read them."""
    async def run() -> dict[tuple[str, int], list[tuple[bytes, int]]]:
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", linger_ms=0)
        try:
            out = {}
            for where, batch in paced_producer._batches(producer, records, 0, len(records), start_s, rate, tick_s):
                built = DefaultRecordBatch(bytearray(batch._builder.build()))
                out[where] = [(bytes(r.key or b""), r.timestamp) for r in built]
            return out
        finally:
            await producer.stop()

    return asyncio.run(run())


def test_a_batch_per_partition_in_order_stamped_at_due_time_or_one_tick_before_sending(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rate, start_s, tick_s = 1_000.0, 1_000.0, 0.005
    records = [Planned("pos" if i % 3 else "clickstream", i % 2, f"c{i}".encode(), b"{}") for i in range(40)]
    monkeypatch.setattr(paced_producer.time, "time", lambda: start_s + 0.030)  # 30 ms after the first was due
    batches = batched(records, start_s, rate, tick_s)
    assert sorted(batches) == [("clickstream", 0), ("clickstream", 1), ("pos", 0), ("pos", 1)]
    for where, got in batches.items():
        assert [k for k, _ in got] == [r.key for r in records if (r.source, r.partition) == where]
        for key, ts in got:
            due_ms = int((start_s + int(key[1:]) / rate) * 1000)
            assert ts == max(due_ms, 1_000_025)  # the 25 overdue ones: one tick before now, not their due time
