"""Ingest with a consumer of its own: the three source topics read in batches, not per record.

Faust hands records to an agent one at a time (four asyncio tasks, a channel, a stream
iterator and an ack per record: ~73 CPU-µs per event on the benchmark machine before any work).
Ingest is stateless, so the worker reads the source topics with an aiokafka consumer of its own
(group ``{app_id}-ingest``, manual commits) inside the Faust worker: ``getmany`` → the ingest
stage (validate, normalize, envelopes and dead-letter records sent *and acknowledged*) →
commit of exactly the offsets processed. Only envelopes (hundreds of events each), the
changelog and the timers go through Faust.

* At-least-once: an offset is committed only after everything its record produced is on the
  broker; a crash before the commit re-reads the batch (envelopes sent twice count once, by
  event id, in the customer stage).
* Rebalances: a revoke waits for the batch in flight (the batch lock) and its commit, so the
  next owner starts exactly after it; a commit refused because the group moved on leaves the
  batch to the next owner, who re-reads it.
* Upgrades: a partition the new group has never committed starts from the offset the old Faust
  group (``{app_id}``) committed for it, if any, so switching paths does not replay from earliest.
* Under a steady high rate a batch gathers: once a batch held at least ``GATHER_FROM`` records,
  the next ``getmany`` comes no sooner than ``gather_ms`` after that batch started. Reading
  as fast as possible took ~50 records per cycle at 10,000 events/s, each cycle paying a fetch,
  envelopes and a commit; at low rates (small batches) and on a backlog (full batches: ``batch_max``
  records) nothing waits. (Full batches used to wait too, when they took longer than ``gather_ms``
  anyway; once ingest took ~10 ms per 1,000 records the wait held a drain at 1,000 records per
  30 ms: benchmarks/README.md, *Ingest's own producer*.) After such a wait the read is done twice: aiokafka's
  fetcher does not fetch a partition while it holds records of it, so what it holds was fetched
  just after the last read and everything since waits at the broker; the first ``getmany``
  takes what it holds and frees the fetcher, the second (``FRESH_WAIT_MS`` at most) what arrived
  during the wait. With one read a record waited up to two cycles: 56 ms at the median from its
  timestamp to the read at 10,000 events/s (benchmarks/README.md).
* Envelopes go out on a producer of ingest's own (``own_producer.OwnProducer``, started and stopped
  here), so that they do not wait in line behind the customer stage's outputs.
* A failure of the loop is not swallowed: readiness goes false and the worker crashes (exits),
  so an orchestrator restarts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from streams.app.ingest import IngestStage
from streams.io.health import Health
from streams.io.own_producer import OwnProducer

log = logging.getLogger(__name__)

GATHER_FROM = 32
"""A batch of at least this many records makes the next one gather (``gather_ms``): at 1,000 events/s
a cycle reads a handful, at 10,000 events/s about fifty."""
FRESH_WAIT_MS = 10
"""After a gather wait, how long the second read waits for the fetch the first one started (a
round trip to the broker, with records waiting there: a few ms)."""


class _Record:
    """A consumed record as the ingest stage reads it (timestamps in seconds, like faust's)."""

    __slots__ = ("key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, r: ConsumerRecord[bytes, bytes]) -> None:
        self.topic, self.partition, self.offset = r.topic, r.partition, r.offset
        self.timestamp = r.timestamp / 1000
        self.key, self.value = r.key, r.value


class SourceConsumer:
    """Owns the source topics' consumer: reads, hands batches to the ingest stage, commits."""

    def __init__(self, *, bootstrap_servers: str, client_options: Mapping[str, Any], group_id: str,
                 legacy_group_id: str, topics: Iterable[str], stage: IngestStage, batch_max: int,
                 fetch_max_bytes: int, fetch_max_wait_ms: int = 500, gather_ms: int = 0, session_timeout_ms: int,
                 health: Health,
                 on_crash: Callable[[BaseException], Awaitable[None]], producer: OwnProducer | None = None) -> None:
        """``producer``: the envelopes' (``OwnProducer``), started before the consumer, stopped after it."""
        self._options = dict(bootstrap_servers=bootstrap_servers, **client_options)
        self._group_id = group_id
        self._legacy_group_id = legacy_group_id
        self._topics = tuple(topics)
        self._stage = stage
        self._batch_max = batch_max
        self._gather_s = gather_ms / 1000
        self._gather_from = min(GATHER_FROM, batch_max)
        self._fetch_max_bytes = fetch_max_bytes
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._session_timeout_ms = session_timeout_ms
        self._health = health
        self._on_crash = on_crash
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer = producer
        self._legacy: AIOKafkaConsumer | None = None
        self._seeks = 0
        self._sought: dict[TopicPartition, int] = {}
        """Per partition, the count of ``_seeks`` when on_assigned last moved it."""
        self._sought_at: dict[TopicPartition, int] = {}
        """Per partition, the offset on_assigned last moved it to."""
        self.committed: dict[TopicPartition, int] = {}
        """Offsets this worker committed, per partition it owns (the watchdog reads them)."""

    async def run(self) -> None:
        """Consumes until cancelled; any other failure marks the worker not ready and crashes it."""
        try:
            consumer = await self._start()
            first = True
            gathered = False
            loop = asyncio.get_running_loop()
            while True:
                mark = self._seeks
                batches = await consumer.getmany(timeout_ms=200, max_records=self._batch_max)
                if gathered:
                    gathered = False
                    batches = await self._read_fresh(consumer, batches)
                if batches:
                    started = loop.time()
                    n = sum(map(len, batches.values()))
                    if first:
                        first = False
                        log.info("ingest: first batch, %d records from %d partitions", n, len(batches))
                    await self._process(consumer, batches, mark)
                    wait_s = started + self._gather_s - loop.time()
                    # let the next batch fill (module docstring); a full one means more are waiting
                    if self._gather_from <= n < self._batch_max and wait_s > 0:
                        await asyncio.sleep(wait_s)
                        gathered = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the source consumer failed; the worker stops")
            self._health.ingest_ok = False
            await self._on_crash(exc)
        finally:
            await self.close()

    async def _read_fresh(self, consumer: AIOKafkaConsumer, held: dict[TopicPartition, list[Any]]
                          ) -> dict[TopicPartition, list[Any]]:
        """``held`` (what the fetcher held after a gather wait) and what the fetch its read started
        brings within ``FRESH_WAIT_MS``, in offset order per partition."""
        room = self._batch_max - sum(map(len, held.values()))
        if room <= 0:
            return held
        fresh = await consumer.getmany(timeout_ms=FRESH_WAIT_MS, max_records=room)
        if not held:
            return fresh
        merged = {tp: list(recs) for tp, recs in held.items()}
        for tp, recs in fresh.items():
            merged.setdefault(tp, []).extend(recs)
        return merged

    async def _start(self) -> AIOKafkaConsumer:
        if self._producer is not None:
            await self._producer.start()
        consumer = self._consumer = AIOKafkaConsumer(
            group_id=self._group_id, client_id=f"{self._group_id}-consumer", enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=self._fetch_max_bytes,
            fetch_max_wait_ms=self._fetch_max_wait_ms,
            session_timeout_ms=self._session_timeout_ms,
            heartbeat_interval_ms=min(3000, self._session_timeout_ms // 3), **self._options)
        await consumer.start()
        consumer.subscribe(list(self._topics), listener=_Rebalance(self))
        return consumer

    async def _process(self, consumer: AIOKafkaConsumer, batches: Mapping[TopicPartition, list[Any]],
                       mark: int = 0) -> None:
        async with self._lock:  # a revoke waits for this batch and its commit
            # records fetched before an assignment moved their partition (the upgrade seek) are
            # not this partition's next records: the fetch from the new position brings those
            stale = [tp for tp in batches if self._sought.get(tp, 0) > mark]
            for tp in stale:  # the fetch moved the position past them: back to where the assignment put it
                consumer.seek(tp, self._sought_at[tp])
            batches = {tp: recs for tp, recs in batches.items() if tp not in stale}
            if not batches:
                return
            await self._stage.process([_Record(r) for recs in batches.values() for r in recs])
            offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items() if recs}
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # The group moved on while the batch ran: its next owner re-reads it (duplicates
                # count once downstream, by event id).
                log.info("commit after a rebalance refused (%s); the batch will be re-read", exc)
                return
            self.committed.update(offsets)

    async def on_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self._lock:
            for tp in revoked:
                self.committed.pop(tp, None)

    async def on_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Partitions this group never committed start where the old Faust group left them."""
        async with self._lock:  # no batch is processed while partitions are being positioned
            await self._position(assigned)

    async def _position(self, assigned: Iterable[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        assigned = sorted(assigned)
        log.info("ingest: assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in assigned) or "nothing")
        for tp in assigned:
            committed = await consumer.committed(tp)
            log.info("ingest: %s[%d] committed offset %s", tp.topic, tp.partition, committed)
            if committed is not None:
                self.committed[tp] = committed  # the watchdog measures lag from here
                continue
            legacy = await self._legacy_offset(tp)
            if legacy is not None:
                log.info("%s[%d]: no offset in group %s yet; starting at %d, where group %s left it",
                         tp.topic, tp.partition, self._group_id, legacy, self._legacy_group_id)
                consumer.seek(tp, legacy)
                self._seeks += 1
                self._sought[tp] = self._seeks
                self._sought_at[tp] = legacy
                self.committed[tp] = legacy

    async def _legacy_offset(self, tp: TopicPartition) -> int | None:
        if self._legacy is None:
            self._legacy = AIOKafkaConsumer(group_id=self._legacy_group_id, enable_auto_commit=False,
                                            client_id=f"{self._group_id}-upgrade", **self._options)
            await self._legacy.start()
        try:
            offset: int | None = await self._legacy.committed(tp)
            return offset
        except KafkaError as exc:
            log.warning("could not read group %s's offset of %s: %r", self._legacy_group_id, tp, exc)
            return None

    # -- what the partition watchdog reads (streams/app/timers.py: OffsetSource) ---------------

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    async def highwaters(self, *tps: TopicPartition) -> Mapping[TopicPartition, int]:
        assert self._consumer is not None
        ends: Mapping[TopicPartition, int] = await self._consumer.end_offsets(list(tps))
        return ends

    def committed_offset(self, tp: TopicPartition) -> int | None:
        return self.committed.get(tp)

    def hole(self, tp: TopicPartition) -> None:
        """None: this consumer commits only what its batches finished, in order (no holes)."""

    async def fill_hole(self, tp: TopicPartition) -> None:
        """Never asked: there are no holes (``hole``)."""

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        if self._consumer is not None:
            self._consumer.seek(tp, offset)

    async def close(self) -> None:
        """Leaves the group (its partitions move at once) and closes the clients; idempotent."""
        for client in (self._consumer, self._legacy):
            if client is not None:
                try:
                    await client.stop()
                except Exception as exc:  # closing must not hide why we stop
                    log.warning("closing a source consumer client failed: %r", exc)
        self._consumer = self._legacy = None
        if self._producer is not None:
            try:
                await self._producer.stop()
            except Exception as exc:
                log.warning("closing ingest's producer failed: %r", exc)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: SourceConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._owner.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self._owner.on_assigned(assigned)
