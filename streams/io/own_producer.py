"""A plain aiokafka producer of a stage's own, for closed record batches (``record_batches.py``).

aiokafka sends one produce request per broker at a time (``Sender``: a node with a request in
flight gets no other until it is answered), so every output of a worker that shares one producer
waits in one line: ingest's envelopes behind the customer stage's tag changes and changelog
records and the other way round. Ingest's envelopes on a producer of their own (its own
connection) go out beside them: one worker's drain went from ~28,000 to ~39,000-42,000 events/s
with the gather rule of ``source_consumer.py`` (benchmarks/README.md, *Ingest's own producer*).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.io.contract import BatchSender


class OwnProducer:
    """Started and stopped by its owner (``SourceConsumer``); ``sender()`` is None until it runs."""

    def __init__(self, *, bootstrap_servers: str, client_options: Mapping[str, Any], client_id: str,
                 batch_max_bytes: int) -> None:
        self._options = dict(bootstrap_servers=bootstrap_servers, client_id=client_id, acks="all", linger_ms=0,
                             max_batch_size=batch_max_bytes, **client_options)
        self._producer: AIOKafkaProducer | None = None
        self._running = False

    async def start(self) -> None:
        if self._producer is None:
            self._producer = AIOKafkaProducer(**self._options)
        await self._producer.start()
        self._running = True

    def sender(self) -> BatchSender | None:
        """The running producer (None before ``start`` and after ``stop``)."""
        return self._producer if self._running else None

    async def stop(self) -> None:
        """Waits for what was sent, then closes; idempotent."""
        producer, self._producer = self._producer, None
        self._running = False
        if producer is not None:
            await producer.stop()
