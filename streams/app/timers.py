"""What runs on the worker's clock rather than on records: due-time ticks, health checks and the
partition progress watch.

Due customers get a *tick* through the customer topic (in envelopes, like events), so every
state change, event- or clock-driven, happens inside the customer stage, in order, per customer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import orjson

from streams.app import faust_compat
from streams.app.envelope import EnvelopeBuilder, EnvelopeSender
from streams.app.faust_commits import Hole, StrictCommits
from streams.app.watchdog import Offsets, PartitionWatchdog, Verdict
from streams.engine.clock import Clock
from streams.engine.due import DueIndex
from streams.engine.reevaluation import Reevaluation
from streams.io.health import Health
from streams.io.kafka_probe import KafkaProbe
from streams.io.metrics import Metrics
from streams.io.redis_sink import RedisTagSink

log = logging.getLogger(__name__)


class DueTimer:
    """Pops the customers whose due time has come and sends one tick for each, and the next slice
    of customers to re-evaluate after a rule change (``Reevaluation``)."""

    def __init__(self, *, due: DueIndex, reevaluation: Reevaluation, clock: Clock, partitions: int,
                 envelopes: EnvelopeSender, health: Health, redis: RedisTagSink, metrics: Metrics) -> None:
        self._due = due
        self._reevaluation = reevaluation
        self._clock = clock
        self._partitions = partitions
        self._envelopes = envelopes
        self._health = health
        self._redis = redis
        self._metrics = metrics

    async def fire(self, customers_in_state: int) -> int:
        """One wake-up: beats the heartbeat, sends the due ticks; returns how many."""
        self._health.beat()
        self._health.redis_ok = self._redis.healthy
        out = EnvelopeBuilder(self._partitions)
        now_ms = self._clock.now_ms()
        for key, due_ms in self._due.pop_due(now_ms):
            out.add(key, orjson.dumps({"customer_id": key.decode(), "tick": due_ms}))
        for key in self._reevaluation.take(now_ms):  # "reeval": the stage counts the slice done
            out.add(key, orjson.dumps({"customer_id": key.decode(), "tick": now_ms, "reeval": 1}))
        await self._envelopes.send(out)
        self._metrics.due_index_size.set(len(self._due))
        self._metrics.reevaluation_pending.set(self._reevaluation.pending)
        self._metrics.customers_in_state.set(customers_in_state)
        return out.items


async def probe_kafka(probe: KafkaProbe, health: Health) -> None:
    """Readiness also means "the brokers answer"."""
    health.kafka_ok = await probe.check()


class OffsetSource(Protocol):
    """A consumer as the partition watch reads it."""

    def assignment(self) -> Iterable[Any]: ...

    async def highwaters(self, *tps: Any) -> Mapping[Any, int]: ...

    def committed_offset(self, tp: Any) -> int | None: ...

    def hole(self, tp: Any) -> Hole | None:
        """Unacknowledged records behind acknowledged ones (faust_commits.py), if any."""
        ...

    async def fill_hole(self, tp: Any) -> int | None:
        """Seeks back to read the hole of ``tp`` again and returns the offset, or None if it was
        accepted as a gap instead."""
        ...

    async def seek(self, tp: Any, offset: int) -> None: ...


class FaustOffsets:
    """Faust's consumer (the internal customer topic) as an OffsetSource."""

    def __init__(self, app: Any, strict: StrictCommits | None = None) -> None:
        self._app = app
        self._strict = strict

    def assignment(self) -> Iterable[Any]:
        return self._app.consumer.assignment()

    async def highwaters(self, *tps: Any) -> Mapping[Any, int]:
        if self._strict is not None:  # a first offset that could not be read at assignment
            await self._strict.learn_starts(self._app.consumer, tps)
        return await self._app.consumer.highwaters(*tps)

    def committed_offset(self, tp: Any) -> int | None:
        return faust_compat.committed_offset(self._app.consumer, tp)

    def hole(self, tp: Any) -> Hole | None:
        return self._strict.holes.get(tp) if self._strict is not None else None

    async def fill_hole(self, tp: Any) -> int | None:
        if self._strict is None:
            return None
        offset = self._strict.next_step(self._app.consumer, tp)
        if offset is not None:
            await self.seek(tp, offset)
        return offset

    async def seek(self, tp: Any, offset: int) -> None:
        # faust drops fetched records of an assigned partition missing from its "active" set
        # (Consumer.getmany); a partition left out of it after a rebalance would stay stalled
        # whatever the offset, so a recovery makes it active again too
        consumer = self._app.consumer
        consumer.resume_partitions({tp})
        await consumer.seek(tp, offset)


class PartitionWatch:
    """Feeds the watchdog a consumer's offsets for the given topics, exports lag and stalls per
    partition, sets readiness, and seeks a stalled partition to its committed offset.

    Lag is exported for the partitions assigned to this worker only: a partition that moved to
    another worker loses its series here (the new owner exports it), so ``sum()`` over the workers
    of a group counts each partition once."""

    def __init__(self, *, name: str, source: OffsetSource, topics: Iterable[str], watchdog: PartitionWatchdog,
                 health: Health, metrics: Metrics) -> None:
        self._name = name
        self._source = source
        self._topics = frozenset(topics)
        self._watchdog = watchdog
        self._health = health
        self._metrics = metrics
        self._stalled: set[Any] = set()
        self._exported: set[tuple[str, str]] = set()
        """(topic, partition) label sets this watch has exported lag for."""

    async def check(self) -> Verdict | None:
        if not self._health.recovered:  # rebalancing: offsets are being reset
            self._watchdog.reset()
            self._mark(set())
            return None
        source = self._source
        tps = [tp for tp in source.assignment() if tp.topic in self._topics]
        highwaters = await source.highwaters(*tps) if tps else {}
        holes = {tp: h for tp in tps if (h := source.hole(tp)) is not None}
        offsets = {tp: Offsets(source.committed_offset(tp), highwaters.get(tp),
                               holes[tp].since_s if tp in holes else None) for tp in tps}
        verdict = self._watchdog.check(offsets, time.monotonic())
        self._export_lag(verdict.lag)
        self._mark(set(verdict.stalled))
        for tp in verdict.recover:
            committed = offsets[tp].committed
            if tp in holes:
                h = holes[tp]
                if await source.fill_hole(tp) is not None:
                    log.warning("partition %s[%d]: records %d..%d were never acknowledged but later ones were; "
                                "read again from %d", tp.topic, tp.partition, h.start, h.first_acked - 1, h.start)
                    self._metrics.offset_holes.labels(tp.topic, "unacked").inc()
                else:
                    self._metrics.offset_holes.labels(tp.topic, "gap").inc()
                continue
            log.warning("partition %s[%d] stalled: %d records waiting, committed offset %s unchanged for %.0f s; "
                        "seeking it to its committed offset", tp.topic, tp.partition, offsets[tp].lag, committed,
                        self._watchdog.stall_after_s)
            self._metrics.partition_stall_recoveries.labels(tp.topic, str(tp.partition)).inc()
            # never committed: from the start (the group's reset policy is earliest; replays count once)
            await source.seek(tp, committed if committed is not None else 0)
        return verdict

    def _export_lag(self, lag: Mapping[Any, int]) -> None:
        current = {(tp.topic, str(tp.partition)): n for tp, n in lag.items()}
        for labels in self._exported - current.keys():  # revoked: its new owner reports it
            self._metrics.partition_lag.remove(*labels)
            self._metrics.partition_stalled.remove(*labels)
        for labels, n in current.items():
            self._metrics.partition_lag.labels(*labels).set(n)
        self._exported = set(current)

    def _mark(self, stalled: set[Any]) -> None:
        for tp in self._stalled - stalled:
            self._metrics.partition_stalled.labels(tp.topic, str(tp.partition)).set(0)
            log.warning("partition %s[%d] moves again", tp.topic, tp.partition)
        for tp in stalled:
            self._metrics.partition_stalled.labels(tp.topic, str(tp.partition)).set(1)
        self._stalled = stalled
        self._health.stalled[self._name] = tuple(sorted(f"{tp.topic}[{tp.partition}]" for tp in stalled))
