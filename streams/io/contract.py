"""The small contracts every adapter in ``streams.io`` shares.

* A sink buffers in ``add()`` and writes in ``flush()``; the caller awaits ``flush()`` before it
  lets the batch's offsets be committed, so a crash replays the batch instead of losing it.
  ``close()`` releases what the sink opened and may be called any number of times.
* A ``RecordSender`` is what the sinks write Kafka records through: faust's producer in the
  worker (``app.producer``), a fake in unit tests. ``send`` queues the record and returns an
  awaitable that resolves once the broker has it. A ``BatchSender`` (aiokafka's producer behind
  faust's) takes whole record batches, for the tag topic's many small records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

Headers = Sequence[tuple[str, bytes]]


class RecordSender(Protocol):
    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any) -> Awaitable[Any]: ...


class RecordBatch(Protocol):
    """aiokafka's ``BatchBuilder``: records appended in order, then sent as one batch."""

    def append(self, *, timestamp: float | None, key: bytes | None, value: bytes | None,
               headers: Sequence[tuple[str, bytes]] = ...) -> Any:
        """The record's metadata, or None when the batch is full (it then closes itself)."""

    def close(self) -> None: ...


class BatchSender(Protocol):
    """aiokafka's batch API (``AIOKafkaProducer``): one future per batch, not per record."""

    def create_batch(self) -> RecordBatch: ...

    async def send_batch(self, batch: RecordBatch, topic: str, *, partition: int) -> Awaitable[Any]: ...

    async def partitions_for(self, topic: str) -> set[int]: ...


class Sink(Protocol):
    async def flush(self) -> None: ...

    async def close(self) -> None: ...


class SourceRecord(Protocol):
    """What a sink needs of a consumed Kafka record (faust's ``Message`` has all of it)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> float:
        """Seconds since the epoch (faust's unit)."""

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...
