"""Reads a whole compacted topic (a table's changelog): the latest value of every key.

No consumer group and nothing committed: every partition is assigned to the reader, which reads
from the beginning up to the end offsets taken when it starts (records written later are left
for the next read), with ``read_committed`` so the aborted transactions of an exactly-once
worker are not taken for state. A compacted topic may still hold several records of a key (the
head is not compacted yet): the last one wins; a null value is a deleted key.

Partitions are read one at a time (the others paused) and each one's keys are handed out as
soon as it is complete, so memory holds one partition's states, not the whole table.

``find(key)`` reads one key's latest record: only the partition the key lives on
(streams/io/partitioning.py), holding that key's record alone.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.structs import ConsumerRecord

from streams.io.partitioning import partition_for

POLL_MS = 500


@dataclass(frozen=True)
class ReadProgress:
    records_read: int
    records_total: int
    """Offsets between the beginning and the end taken at start: compaction and transaction
    markers make the real count lower, so ``records_read`` may end below it."""
    keys_out: int
    """Latest values handed to the caller so far."""
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Records per second so far."""
        return self.records_read / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class Found:
    """The latest record of one key."""

    value: bytes | None
    """None: a tombstone (the key was deleted)."""
    partition: int
    offset: int
    timestamp_ms: int
    """The record's Kafka timestamp: when the worker wrote it."""


class ChangelogReader:
    """``async with ChangelogReader(...) as r: async for key, value in r.latest(): ...``"""

    def __init__(self, bootstrap_servers: str, topic: str, *, client_options: Mapping[str, Any] | None = None,
                 fetch_max_bytes: int = 8 * 1024 * 1024,
                 on_progress: Callable[[ReadProgress], None] | None = None, progress_every_s: float = 2.0,
                 stall_timeout_s: float = 60.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._options = dict(client_options or {})
        self._fetch_max_bytes = fetch_max_bytes
        self._on_progress = on_progress
        self._progress_every_s = progress_every_s
        self._stall_timeout_s = stall_timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._begin: dict[TopicPartition, int] = {}
        self._end: dict[TopicPartition, int] = {}
        self._read = self._out = 0
        self._started = self._reported = 0.0

    @property
    def records_total(self) -> int:
        return sum(self._end[tp] - self._begin[tp] for tp in self._end)

    async def start(self) -> None:
        """Looks the topic up, assigns all its partitions and takes their beginning and end offsets.

        Raises:
            RuntimeError: the broker is unreachable or the topic does not exist.
        """
        partitions = await self._partitions()
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    isolation_level="read_committed", client_id="tagstream-changelog-reader",
                                    max_partition_fetch_bytes=self._fetch_max_bytes, **self._options)
        try:
            await consumer.start()
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            consumer.pause(*tps)
            self._begin = await consumer.beginning_offsets(tps)
            self._end = await consumer.end_offsets(tps)
        except KafkaError as exc:
            await consumer.stop()
            raise RuntimeError(f"reading {self.topic} from {self.bootstrap_servers} failed: {exc!r}") from exc
        self._consumer = consumer
        self._started = self._reported = time.monotonic()

    async def _partitions(self) -> set[int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, client_id="tagstream-admin",
                                    **self._options)
        try:
            try:
                await admin.start()
            except KafkaConnectionError as exc:
                raise RuntimeError(f"cannot reach Kafka at {self.bootstrap_servers}: {exc}") from exc
            # every topic (None): naming ours could auto-create it on a broker that allows that
            described = {t["topic"]: t for t in await admin.describe_topics(None)}
        except KafkaError as exc:
            raise RuntimeError(f"Kafka metadata request to {self.bootstrap_servers} failed: {exc!r}") from exc
        finally:
            await admin.close()
        found = described.get(self.topic)
        if found is None or found["error_code"] != 0 or not found["partitions"]:
            raise RuntimeError(f"topic {self.topic} not found at {self.bootstrap_servers} "
                               "(is TAGSTREAM_APP_ID the workers' app id?)")
        return {p["partition"] for p in found["partitions"]}

    async def latest(self) -> AsyncIterator[tuple[bytes, bytes | None]]:
        """Every key of the topic with its latest value (None: deleted), partition by partition."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("ChangelogReader.latest() before start()")
        for tp in sorted(self._end, key=lambda t: t.partition):
            if self._end[tp] <= self._begin[tp]:
                continue
            consumer.seek(tp, self._begin[tp])
            consumer.resume(tp)
            last = await self._read_partition(consumer, tp)
            consumer.pause(tp)
            for key, value in last.items():
                self._out += 1
                self._maybe_report()
                yield key, value
        self._maybe_report(force=True)

    async def find(self, key: bytes) -> Found | None:
        """The latest record of ``key`` (None: the topic has none), read from the one partition the
        key hashes to with the customer topic's partitioner: a table's changelog record goes to the
        partition of the record being processed, and the customer topic is partitioned that way."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("ChangelogReader.find() before start()")
        tp = TopicPartition(self.topic, partition_for(key, len(self._end)))
        if tp not in self._end:
            raise RuntimeError(f"{self.topic} has partitions {sorted(t.partition for t in self._end)}, "
                               f"not 0 … {len(self._end) - 1}")
        found: Found | None = None
        if self._end[tp] > self._begin[tp]:
            consumer.seek(tp, self._begin[tp])
            consumer.resume(tp)
            async for records in self._batches(consumer, tp):
                for r in records:
                    if r.key == key:
                        found = Found(r.value, tp.partition, r.offset, r.timestamp)
            consumer.pause(tp)
        self._maybe_report(force=True)
        return found

    async def _read_partition(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> dict[bytes, bytes | None]:
        last: dict[bytes, bytes | None] = {}
        async for records in self._batches(consumer, tp):
            for r in records:
                if r.key is not None:
                    last[r.key] = r.value
        return last

    async def _batches(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> AsyncIterator[
            list[ConsumerRecord[bytes, bytes]]]:
        """The records of ``tp`` from its position up to the end taken at start, batch by batch."""
        end = self._end[tp]
        moved = time.monotonic()
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=POLL_MS)
            records = [r for r in batch.get(tp, []) if r.offset < end]
            self._read += len(records)
            yield records
            now = time.monotonic()
            if records:
                moved = now
            elif now - moved > self._stall_timeout_s:
                raise RuntimeError(f"no progress reading {tp.topic}[{tp.partition}] for {self._stall_timeout_s:.0f} s "
                                   f"(at offset {await consumer.position(tp)} of {end})")
            self._maybe_report()

    def _maybe_report(self, *, force: bool = False) -> None:
        if self._on_progress is None:
            return
        now = time.monotonic()
        if force or now - self._reported >= self._progress_every_s:
            self._reported = now
            self._on_progress(ReadProgress(self._read, self.records_total, self._out, now - self._started))

    async def close(self) -> None:
        """Stops the consumer; safe to call twice."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def __aenter__(self) -> ChangelogReader:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
