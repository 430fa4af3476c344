"""Records in whole record batches per partition (streams/io/record_batches.py): the changelog writes
of the customers table and the tag topic go out this way."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from streams.app.envelope import EnvelopeBuilder, EnvelopeSender, decode_envelope
from streams.io.contract import RecordBatch
from streams.io.record_batches import send_batches
from tests.unit.stages_support import FakeProducer


class Broker:
    """A BatchSender with aiokafka's real (small) batch builders, answering each batch with its base offset."""

    def __init__(self) -> None:
        self.logs: dict[int, list[tuple[bytes | None, bytes | None]]] = {}

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(512, 0, is_transactional=False)

    async def send_batch(self, batch: RecordBatch, topic: str, *, partition: int) -> asyncio.Future[Any]:
        assert isinstance(batch, BatchBuilder) and batch.closed()
        log = self.logs.setdefault(partition, [])
        base = len(log)
        log.extend((r.key, r.value) for r in DefaultRecordBatch(bytearray(batch._build())))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(SimpleNamespace(partition=partition, offset=base))
        return fut

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}


async def test_records_keep_their_order_per_partition_tombstones_included() -> None:
    records = [(i % 2, f"k{i}".encode(), None if i % 7 == 0 else b"v" * 40 + str(i).encode()) for i in range(60)]
    broker = Broker()
    last = await send_batches(broker, "changelog", records)
    for p in (0, 1):
        assert broker.logs[p] == [(k, v) for q, k, v in records if q == p]
    assert len(broker.logs[0]) > 1 and last[0] > 0  # several batches: the base offset of the last one
    assert last[0] <= len(broker.logs[0]) - 1 and last[1] <= len(broker.logs[1]) - 1
    assert await send_batches(broker, "changelog", []) == {}



async def test_envelopes_go_out_as_closed_batches_in_order_per_partition() -> None:
    """The worker's envelopes: closed batches (sent at once, no linger), in the order they were
    built per partition; without a batch sender (not started, transactional) through ``send``."""
    out = EnvelopeBuilder(partitions=2, max_bytes=300)  # several envelopes per partition
    for i in range(40):
        out.add(f"c{i % 5}".encode(), b'{"customer_id":"c%d","n":%d}' % (i % 5, i))
    expected: dict[int, list[int]] = {}
    for p, value in out.records():
        expected.setdefault(p, []).extend(item["n"] for item in decode_envelope(value))
    assert sorted(n for ns in expected.values() for n in ns) == list(range(40)) and len(expected) == 2

    broker, producer = Broker(), FakeProducer()
    acks = await EnvelopeSender(producer, "customers", batches=lambda: broker).enqueue(out)
    await asyncio.gather(*acks)
    assert producer.sent == []
    assert {p: [item["n"] for _, v in log for item in decode_envelope(v)] for p, log in broker.logs.items()} == expected

    await asyncio.gather(*await EnvelopeSender(producer, "customers", batches=lambda: None).enqueue(out))
    assert [(t, p, v) for t, _, v, p, _ in producer.sent] == [("customers", p, v) for p, v in out.records()]
