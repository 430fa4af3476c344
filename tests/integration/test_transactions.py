"""Exactly-once's per-partition transactions against the real broker: fencing, and revoked partitions.

Faust does not wait for the customer batch in flight when it revokes partitions, so that batch can
reach its commit after ``release``. Before the fix it started a producer for the revoked partition
again, which fenced the partition's new owner; a transaction committed after the new owner had read
the changelog was never seen by it, and it published the same changes a second time."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.io.topics import ensure_topics
from streams.io.transactions import Fenced, OutRecord, PartitionTransactions

from .conftest import Stack


def _transactions(stack: Stack, prefix: str) -> PartitionTransactions:
    return PartitionTransactions(bootstrap_servers=stack.bootstrap, transactional_prefix=prefix,
                                 client_options={}, linger_ms=0)


async def _committed_values(stack: Stack, topic: str) -> list[bytes]:
    """Every committed value of partition 0, in order (``read_committed``: aborted ones left out)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]  # the last stable offset, with read_committed
        values: list[bytes] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            values += [r.value for r in batch.get(tp, [])]
        return values
    finally:
        await consumer.stop()


async def test_a_revoked_partition_refuses_a_late_commit_and_its_new_owner_is_not_fenced(stack: Stack) -> None:
    topic, prefix = f"it-tx-{uuid.uuid4().hex[:6]}", f"it-tx-{uuid.uuid4().hex[:6]}"
    await ensure_topics(stack.bootstrap, [topic], 1)
    old, new = _transactions(stack, prefix), _transactions(stack, prefix)
    try:
        await old.acquire([0])
        await old.commit(0, [OutRecord(topic, b"c1", b"old-1", 0)])
        await old.release([0])  # the rebalance takes partition 0 away ...
        await new.acquire([0])  # ... and gives it to another worker
        with pytest.raises(Fenced, match="revoked"):  # the batch in flight at the revoke reaches its commit
            await old.commit(0, [OutRecord(topic, b"c1", b"old-late", 0)])
        await new.commit(0, [OutRecord(topic, b"c1", b"new-1", 0)])  # the new owner was not fenced by it
        assert await _committed_values(stack, topic) == [b"old-1", b"new-1"]

        await old.acquire([0])  # assigned back: the old worker commits again, and fences the other
        await old.commit(0, [OutRecord(topic, b"c1", b"old-2", 0)])
        with pytest.raises(Fenced, match="fenced"):
            await new.commit(0, [OutRecord(topic, b"c1", b"new-zombie", 0)])
        assert await _committed_values(stack, topic) == [b"old-1", b"new-1", b"old-2"]
    finally:
        await old.close()
        await new.close()
