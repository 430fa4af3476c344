"""Envelopes: many canonical events (or ticks) in one record of the internal customer topic.

The hop from ``ingest`` to ``customers`` used to carry one Kafka record per event, so every
event paid Faust's per-record machinery twice (py-spy: that machinery, not our code, was most of
the worker's CPU). Now ``ingest`` groups one batch's events by the partition their customer
belongs to and sends one record per partition: a JSON array of canonical events, in order.

The partition is the one Kafka's default partitioner gives the customer id as key (murmur2,
the same function aiokafka and the Java client use: ``streams.io.partitioning``), so a
customer's events, its state and its changelog entries stay on one partition, as when the
records were keyed one by one; a record in the old one-event form (a JSON object) is still read,
so a rolling upgrade needs no migration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson

from streams.io.contract import BatchSender, RecordSender
from streams.io.partitioning import partition_for
from streams.io.record_batches import enqueue_batches

ENVELOPE_MAX_BYTES = 512 * 1024
"""An envelope is closed at this size and a new one started (Kafka's default record limit is 1 MB)."""
FULL_ENVELOPE_BYTES = 16 * 1024
"""An envelope this big or bigger counts whole toward a customer batch's ``envelopes_max``
(``envelope_weight``)."""


def envelope_weight(event: Any) -> float:
    """How much of a customer batch's ``envelopes_max`` a customer-topic record fills: 1 from
    ``FULL_ENVELOPE_BYTES`` up, a share of it below.

    With identity resolution on, every ingest batch's links make absorb orders and merge items:
    small envelopes (under 4 KB) beside ingest's (65-110 KB draining a backlog). Counted as whole
    records they halved the events per customer batch (1,714 customer-topic records instead of 800
    for the same 200,000 events), so the batches and their per-batch work (publish, saves,
    acknowledgements) nearly doubled: docs/identity.md, Cost. At low rates envelopes are small
    too, but a batch is closed by ``batch_within_ms`` long before it is full."""
    value = event.message.value
    return min(1.0, len(value) / FULL_ENVELOPE_BYTES) if value else 1.0


class EnvelopeBuilder:
    """Collects encoded items per partition; ``records()`` gives one value per envelope."""

    def __init__(self, partitions: int, max_bytes: int = ENVELOPE_MAX_BYTES) -> None:
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self.partitions = partitions
        self.max_bytes = max_bytes
        self._open: dict[int, tuple[list[bytes], int]] = {}
        self._closed: list[tuple[int, bytes]] = []
        self.items = 0

    def add(self, key: bytes, item: bytes) -> None:
        """Adds one encoded item (a JSON object) for the customer ``key``."""
        p = partition_for(key, self.partitions)
        parts, size = self._open.get(p, ([], 0))
        if parts and size + len(item) + 1 > self.max_bytes:
            self._closed.append((p, _join(parts)))
            parts, size = [], 0
        parts.append(item)
        self._open[p] = (parts, size + len(item) + 1)
        self.items += 1

    def records(self) -> Iterator[tuple[int, bytes]]:
        """(partition, value) of every envelope, in the order items were added per partition."""
        yield from self._closed
        for p, (parts, _) in self._open.items():
            yield p, _join(parts)


def _join(parts: list[bytes]) -> bytes:
    return b"[" + b",".join(parts) + b"]"


def decode_envelope(value: bytes | None) -> list[dict[str, Any]]:
    """The items of one customer-topic record: an envelope (array) or an old one-event record.

    Raises ValueError for anything else (only a foreign writer on the internal topic does that).
    """
    if not value:
        raise ValueError("empty record on the customer topic")
    obj = orjson.loads(value)  # orjson.JSONDecodeError is a ValueError
    items = obj if isinstance(obj, list) else [obj]
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("customer_id"), str):
            raise ValueError("customer topic record is not a canonical event, tick or list of them")
    return items


class EnvelopeSender:
    """Sends a builder's envelopes to the customer topic, straight through the producer.

    Our values are bytes already, so faust's Topic.send layers (serializer registry,
    FutureMessage, callbacks) were pure overhead (py-spy: ~10 %). ``send`` waits until the broker
    has every envelope: only then may the batch that made them be acknowledged.

    With ``batches`` (the worker: aiokafka's producer behind faust's) the envelopes go out as
    closed record batches, at once: the sender awaits their acknowledgement before it reads on, so
    the producer's linger would only add to every event's latency (5 ms per hop at 1,000 events/s,
    benchmarks/README.md). Without it (or before the producer runs, or with a transactional one)
    they go through ``producer.send``.
    """

    def __init__(self, producer: RecordSender, topic: str, *,
                 batches: Callable[[], BatchSender | None] | None = None) -> None:
        self._producer = producer
        self._batches = batches
        self.topic = topic

    async def send(self, out: EnvelopeBuilder) -> None:
        await asyncio.gather(*await self.enqueue(out))

    async def enqueue(self, out: EnvelopeBuilder) -> list[Awaitable[Any]]:
        """Hands the envelopes to the producer and returns their acknowledgements, to be awaited
        together with other sends': one broker round trip for all of them, not one per sender."""
        sender = self._batches() if self._batches is not None else None
        if sender is not None:
            return await enqueue_batches(sender, self.topic, ((p, None, value) for p, value in out.records()))
        return [await self._producer.send(self.topic, None, value, partition, None, None)
                for partition, value in out.records()]
