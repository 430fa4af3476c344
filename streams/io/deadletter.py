"""The dead-letter topic: a rejected record, unchanged, with the reason in ``ts.*`` headers.

Headers come from the one model of them, :class:`schemas.tags.DeadLetter`. ``add()`` queues a
record and never raises; ``flush()`` writes every queued record and waits until the broker has
each one, retrying while the broker is away: a record is never dropped, so a batch whose
offsets get committed has all its rejected records on the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError

from schemas.tags import DeadLetter
from streams.io.contract import RecordSender, SourceRecord
from streams.io.metrics import Metrics

log = logging.getLogger(__name__)

DLQ_MAX_RECORD_BYTES = 8 * 1024 * 1024
"""Largest dead-letter record (the producer's max request size and the DLQ topic's
max.message.bytes are set to it): a source record the broker took (≤ 1 MB, or a well
compressed bigger one) fits whole with its headers."""
SAFE_RECORD_BYTES = 900_000
"""Under Kafka's 1 MB default record limit, headers included."""
DLQ_MAX_KEY_BYTES = 16_384
RETRY_BACKOFF_MAX_S = 5.0


@dataclass(frozen=True)
class ItemRecord:
    """One item of an internal record (e.g. a customer's events in an envelope), dead-lettered
    alone with the coordinates of the record that carried it."""

    topic: str
    partition: int
    offset: int
    timestamp: float
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class _Rejected:
    record: SourceRecord
    source: str
    reason: str
    error: str


def dlq_headers(record: SourceRecord, reason: str, error: str, limit: int = DLQ_MAX_RECORD_BYTES) -> tuple[
        bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """Key, value and ``ts.*`` headers of the dead-letter copy of ``record``, cut to ``limit`` bytes.

    Key and value go unchanged (a null value stays null) when they fit. A bigger value goes
    truncated, marked with ``ts.truncated_from_bytes`` and ``ts.value_sha256`` (a key over
    DLQ_MAX_KEY_BYTES with ``ts.key_truncated_from_bytes``); the whole record stays at its source
    topic/partition/offset.
    """
    key, value = record.key, record.value
    dead = DeadLetter(source_topic=record.topic, source_partition=record.partition, source_offset=record.offset,
                      source_timestamp_ms=int(record.timestamp * 1000), reason=reason, error=error)
    key_cut = key is not None and len(key) > DLQ_MAX_KEY_BYTES
    if key_cut:
        assert key is not None
        dead = dead.model_copy(update={"key_truncated_from_bytes": len(key)})
        key = key[:DLQ_MAX_KEY_BYTES]
    budget = limit - len(key or b"") - sum(len(k) + len(v) + 64 for k, v in dead.to_headers()) - 1024 - 160
    if value is not None and len(value) > budget:
        dead = dead.model_copy(update={"truncated_from_bytes": len(value),
                                       "value_sha256": hashlib.sha256(value).hexdigest()})
        value = value[:budget]
    return key, value, dead.to_headers()


class DeadLetterWriter:
    """Queues rejected records (``add``) and writes them to the dead-letter topic (``flush``)."""

    def __init__(self, producer: RecordSender, topic: str, metrics: Metrics) -> None:
        self._producer = producer
        self._topic = topic
        self._metrics = metrics
        self._pending: list[_Rejected] = []

    def add(self, record: SourceRecord, source: str, reason: str, error: str) -> None:
        """Queues ``record`` for the dead-letter topic with ``reason``/``error``; never raises."""
        self._pending.append(_Rejected(record, source, reason, error))

    def __len__(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Writes every queued record and waits until the broker has it; retries, never drops."""
        pending, self._pending = self._pending, []
        acks = [await self._send(r) for r in pending]
        for r, ack in zip(pending, acks, strict=True):
            await self._confirm(r, ack)
            self._metrics.events_invalid.labels(r.source, r.reason).inc()
            self._metrics.deadletter.labels(r.source, r.reason).inc()

    def discard(self) -> int:
        """Drops the queued records; returns how many. For a batch refused as a whole (its worker's
        membership lease expired): its records are read again by the partition's owner, which
        rejects them again, so writing them here too would put each in the topic twice."""
        pending, self._pending = self._pending, []
        return len(pending)

    async def close(self) -> None:
        """Nothing of its own to release (the producer belongs to the app)."""

    async def _send(self, r: _Rejected, limit: int = DLQ_MAX_RECORD_BYTES) -> Awaitable[Any]:
        backoff_s = 0.1
        while True:
            key, value, sent_headers = dlq_headers(r.record, r.reason, r.error, limit)
            try:
                return await self._producer.send(self._topic, key, value, None, None, sent_headers)
            except MessageSizeTooLargeError:
                limit = SAFE_RECORD_BYTES  # the producer refuses it: send a truncated copy
            except Exception as exc:  # the broker is away: keep the record, retry
                log.warning("dead-letter write failed (%r); retrying in %.1f s", exc, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, RETRY_BACKOFF_MAX_S)

    async def _confirm(self, r: _Rejected, ack: Awaitable[Any]) -> None:
        """Waits for the broker's ack; a record the topic refuses as too big (a DLQ topic made
        elsewhere with Kafka's 1 MB default) goes again, truncated; other failures retry."""
        backoff_s = 0.1
        limit = DLQ_MAX_RECORD_BYTES
        while True:
            try:
                await ack
                return
            except MessageSizeTooLargeError:
                limit = SAFE_RECORD_BYTES
            except Exception as exc:
                log.warning("dead-letter write failed (%r); retrying in %.1f s", exc, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, RETRY_BACKOFF_MAX_S)
            ack = await self._send(r, limit)
