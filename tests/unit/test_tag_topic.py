"""The tag topic writer: changes in whole record batches per partition (aiokafka's batch API),
the same records on the same partitions as sending them one by one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from streams.app.faust_producer import kafka_producer
from streams.io.contract import RecordBatch
from streams.io.tag_topic import TagTopicWriter, tag_record

PARTITIONS = 4


class OneByOne:
    """A RecordSender: what faust's ``send`` was given, per record."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, int]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any) -> asyncio.Future[None]:
        assert partition is None and timestamp is None and headers is None
        p = DefaultPartitioner()(key, list(range(PARTITIONS)), list(range(PARTITIONS)))  # aiokafka's choice
        self.sent.append((topic, key, value, p))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class Batches:
    """A BatchSender with aiokafka's real batch builders (small, so a flush needs several)."""

    def __init__(self, batch_size: int = 1024) -> None:
        self.batch_size = batch_size
        self.batches: list[tuple[str, int, BatchBuilder]] = []

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0, is_transactional=False)

    async def send_batch(self, batch: RecordBatch, topic: str, *, partition: int) -> asyncio.Future[None]:
        assert isinstance(batch, BatchBuilder)
        self.batches.append((topic, partition, batch))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))

    def records(self) -> list[tuple[str, bytes | None, bytes | None, int]]:
        out = []
        for topic, partition, batch in self.batches:
            assert batch.closed()
            for record in DefaultRecordBatch(bytearray(batch._build())):
                out.append((topic, record.key, record.value, partition))
        return out


def changes(n: int) -> list[dict[str, Any]]:
    return [{"customer_id": f"c{i % 37:05d}", "tag": f"seg_{i % 11}", "op": "add" if i % 3 else "remove",
             "at_ms": 1_700_000_000_000 + i, "event_ts_ms": None, "cause": "event", "rule_version": "v1",
             "features": {"spend_30d": i * 1.5}, "event_id": f"e{i}", "change_id": f"{i:020x}"} for i in range(n)]


@pytest.mark.parametrize("n", [0, 1, 5, 400])
async def test_batches_carry_the_same_records_on_the_same_partitions(n: int) -> None:
    one, batches = OneByOne(), Batches()
    plain, batched = TagTopicWriter(one, "tags"), TagTopicWriter(OneByOne(), "tags", batches=lambda: batches)
    for c in changes(n):
        plain.add(c)
        batched.add(c)
    await plain.flush()
    await batched.flush()
    got = batches.records()
    assert sorted(got, key=lambda r: r[3]) == sorted(one.sent, key=lambda r: r[3])  # stable: order per partition
    if n == 400:
        assert len(batches.batches) > PARTITIONS  # full batches were sent and new ones started
    assert [tag_record(c) for c in changes(n)] == [(k, v) for _, k, v, _ in one.sent]


async def test_without_a_batch_sender_the_changes_go_one_by_one() -> None:
    one = OneByOne()
    writer = TagTopicWriter(one, "tags", batches=lambda: None)  # faust's producer not started yet
    for c in changes(3):
        writer.add(c)
    await writer.flush()
    assert len(one.sent) == 3


async def test_a_failed_batch_fails_the_flush() -> None:
    class Failing(Batches):
        async def send_batch(self, batch: RecordBatch, topic: str, *, partition: int) -> asyncio.Future[None]:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            fut.set_exception(ConnectionError("broker gone"))
            return fut

    writer = TagTopicWriter(OneByOne(), "tags", batches=Failing)
    writer.add(changes(1)[0])
    with pytest.raises(ConnectionError):
        await writer.flush()


class _FaustProducer:
    def __init__(self, producer: object) -> None:
        self._producer = producer

    def _ensure_producer(self) -> object:
        if self._producer is None:
            raise RuntimeError("Producer service not yet started")  # faust's NotReady
        return self._producer


class _App:
    def __init__(self, producer: object) -> None:
        self.producer = _FaustProducer(producer)


async def test_kafka_producer_is_the_running_aiokafka_producer_or_none() -> None:
    aiokafka_producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")  # never started
    transactional = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", transactional_id="t")
    producers: list[Any] = [aiokafka_producer, transactional]
    try:
        assert kafka_producer(_App(aiokafka_producer)) is aiokafka_producer
        assert kafka_producer(_App(transactional)) is None
        assert kafka_producer(_App(None)) is None
        assert kafka_producer(_App(object())) is None
        assert kafka_producer(object()) is None
    finally:
        for never_started in producers:
            never_started._closed = True  # nothing to stop
