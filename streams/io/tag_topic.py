"""The tag-change topic: every change, keyed by customer id, for downstream services."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from streams.io.contract import BatchSender, RecordSender
from streams.io.partitioning import partition_for
from streams.io.record_batches import send_batches


def tag_record(change: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The tag topic's record of a change: (key = customer id, value = the change as JSON)."""
    return str(change["customer_id"]).encode(), orjson.dumps(change)


class TagTopicWriter:
    """Queues tag changes (``add``); ``flush`` sends them and waits until the broker has all.

    With ``batches`` (the worker: aiokafka's producer behind faust's), a flush fills one record
    batch per partition and sends it whole: one future per batch instead of a producer call, a
    future and its callbacks per change, which with 1,000 tags (~6 changes per event) cost more
    than evaluating the rules (benchmarks/RULES.md). A change goes to the partition Kafka's default
    partitioner gives its key, as before; without ``batches`` (or when it has no producer yet) the
    changes go one by one through ``producer``.
    """

    def __init__(self, producer: RecordSender, topic: str, *,
                 batches: Callable[[], BatchSender | None] | None = None) -> None:
        self._producer = producer
        self._topic = topic
        self._batches = batches
        self._pending: list[Mapping[str, Any]] = []

    def add(self, change: Mapping[str, Any]) -> None:
        self._pending.append(change)

    async def flush(self) -> None:
        """Sends the queued changes in order; returns once every one is acknowledged. A failure
        raises: the batch is then not acknowledged, and its replay sends them again (same change_id)."""
        pending, self._pending = self._pending, []
        sender = self._batches() if self._batches is not None and pending else None
        if sender is not None:
            await self._send_batches(sender, pending)
            return
        acks = [await self._producer.send(self._topic, *tag_record(c), None, None, None) for c in pending]
        await asyncio.gather(*acks)

    async def _send_batches(self, sender: BatchSender, pending: list[Mapping[str, Any]]) -> None:
        """Per partition, the changes in order in as many full batches as they need."""
        partitions = sorted(await sender.partitions_for(self._topic))
        records = []
        for change in pending:
            key, value = tag_record(change)
            records.append((partitions[partition_for(key, len(partitions))], key, value))  # the default partitioner's
        await send_batches(sender, self._topic, records)

    async def close(self) -> None:
        """Nothing of its own to release (the producer belongs to the app)."""
