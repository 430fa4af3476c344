"""Exactly-once output of the customer stage: one Kafka transaction per customer partition and batch.

With ``TAGSTREAM_PROCESSING_GUARANTEE=exactly_once`` a batch's tag changes (tag topic) and the
new states of its customers (changelog topic) are written in ONE transaction per customer-topic
partition, so they become visible together or not at all (to ``read_committed`` readers: the
worker's own recovery, standbys, downstream services). A worker killed before the commit leaves
an aborted transaction; its replay writes the same changes once.

Each partition has its own transactional producer, ``transactional.id = {prefix}-{partition}``.
The worker that is assigned the partition next starts a producer with the same id, which fences
the old one: a zombie that lost the partition can no longer commit (``Fenced``).

A revoked partition stays refused until it is assigned again. Faust does not wait for the batch in
flight when it revokes partitions (``stream_wait_empty`` is off), so that batch can reach its
commit after ``release``; starting a producer for it then would fence the partition's *new* owner,
and a transaction committed after the new owner read the changelog is one it never sees: it
processes the same records again and publishes their changes twice (the rebalance fault test
saw 12 repeated ``change_id``s).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, ProducerFenced

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutRecord:
    """A record of a transaction; ``partition`` None: the producer's default partitioner (by key)."""

    topic: str
    key: bytes
    value: bytes | None
    partition: int | None = None


class Fenced(Exception):
    """Nothing was written: another worker owns the partition now (its producer fenced ours), or
    this worker gave the partition up since the batch began (revoked, not assigned again)."""


class PartitionTransactions:
    """``commit(partition, records)`` writes the records atomically; ``release`` drops producers of
    partitions we no longer own; ``close()`` is idempotent."""

    def __init__(self, *, bootstrap_servers: str, transactional_prefix: str, client_options: Mapping[str, Any],
                 linger_ms: int = 5, max_request_size: int = 1_048_576, transaction_timeout_ms: int = 60_000) -> None:
        self._bootstrap = bootstrap_servers
        self._prefix = transactional_prefix
        self._options = dict(client_options)
        self._linger_ms = linger_ms
        self._max_request_size = max_request_size
        self._timeout_ms = transaction_timeout_ms
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._revoked: set[int] = set()

    def transactional_id(self, partition: int) -> str:
        return f"{self._prefix}-{partition}"

    async def commit(self, partition: int, records: Sequence[OutRecord]) -> None:
        """Returns once every record is committed; raises ``Fenced`` (nothing written) if another
        worker owns the partition now, or the Kafka error (the transaction aborted) otherwise."""
        if not records:
            return
        async with self._lock(partition):
            if partition in self._revoked:
                raise Fenced(f"partition {partition} was revoked: a batch from before the rebalance is not committed")
            producer = await self._producer(partition)
            try:
                async with producer.transaction():
                    for r in records:
                        await producer.send(r.topic, r.value, key=r.key, partition=r.partition)
            except ProducerFenced as exc:
                await self._drop(partition)
                raise Fenced(f"{self.transactional_id(partition)} was fenced: partition {partition} moved") from exc
            except KafkaError:
                # the producer may be in an error state: a fresh one (same id) aborts what is open
                await self._drop(partition)
                raise

    async def acquire(self, partitions: Iterable[int]) -> None:
        """Starts the producers of newly assigned partitions: fences their previous owner's."""
        ps = list(partitions)
        self._revoked.difference_update(ps)  # before any await: a first batch may commit at once
        await asyncio.gather(*(self._start(p) for p in ps))  # one round trip for all, not one each

    async def release(self, partitions: Iterable[int]) -> None:
        """Stops the producers of partitions this worker no longer owns; their commits are refused
        from now on (a commit under way finishes first: ``release`` waits for its lock)."""
        ps = list(partitions)
        self._revoked.update(ps)  # before any await: no batch may start a producer for them again
        for p in ps:
            async with self._lock(p):
                await self._drop(p)

    async def close(self) -> None:
        for p in list(self._producers):
            await self._drop(p)

    async def _start(self, partition: int) -> None:
        async with self._lock(partition):
            await self._producer(partition)

    def _lock(self, partition: int) -> asyncio.Lock:
        lock = self._locks.get(partition)
        if lock is None:
            lock = self._locks[partition] = asyncio.Lock()
        return lock

    async def _producer(self, partition: int) -> AIOKafkaProducer:
        producer = self._producers.get(partition)
        if producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap, transactional_id=self.transactional_id(partition),
                enable_idempotence=True, acks="all", linger_ms=self._linger_ms,
                max_request_size=self._max_request_size, transaction_timeout_ms=self._timeout_ms,
                **self._options)
            await producer.start()  # InitProducerId: fences an older producer with this id
            self._producers[partition] = producer
        return producer

    async def _drop(self, partition: int) -> None:
        producer = self._producers.pop(partition, None)
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:  # a fenced producer may fail to stop cleanly; it is gone either way
                log.warning("stopping transactional producer %s: %r", self.transactional_id(partition), exc)
