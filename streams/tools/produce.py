"""Ship :class:`~streams.tools.generator.RetailGenerator` events to Kafka (load generation, demos, tests).

``produce()`` streams ``count`` events to one topic per source with aiokafka, optionally rate
limited, printing progress about once per second. ``ensure_topics()`` creates missing topics. A
generator in identity mode has a 4th source, ``identity`` (CRM link records for ``events.identity``).

Run directly for a quick load::

    python -m streams.tools.produce --count 50000 --rate 2000 --bad-ratio 0.01 [--identity]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import IO, Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from schemas.identity import IDENTITY_SOURCE
from streams.io.topics import ensure_topics
from streams.tools.generator import SOURCES, GeneratedEvent, RetailGenerator

__all__ = ["DEFAULT_TOPICS", "ProduceStats", "produce", "sources_of"]

DEFAULT_TOPICS: dict[str, str] = {str(source): f"events.{source}" for source in (*SOURCES, IDENTITY_SOURCE)}

# Delivery futures are awaited in batches: often enough to surface broker errors quickly and
# keep progress honest, rarely enough not to cost throughput.
_MAX_BATCH = 2000
# Rate limiting sleeps only once the send schedule is this far ahead, because asyncio.sleep
# cannot do sub-millisecond waits; the tokens saved meanwhile are the bucket's burst.
_MIN_SLEEP_S = 0.005


@dataclass
class ProduceStats:
    """Outcome of :func:`produce`: events acknowledged by the broker."""

    sent: int = 0
    per_source: dict[str, int] = field(default_factory=dict)
    bad: int = 0
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        """Average events per second."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def sources_of(generator: RetailGenerator) -> tuple[str, ...]:
    """The sources ``generator`` emits: the three event sources, and ``identity`` in identity mode."""
    return (*SOURCES, IDENTITY_SOURCE) if generator.identity is not None else tuple(SOURCES)


def _line(stats: ProduceStats, count: int, rate: float) -> str:
    per = " ".join(f"{s}={n:,}" for s, n in stats.per_source.items())
    return f"produced {stats.sent:,}/{count:,} events ({rate:,.0f}/s) {per} bad={stats.bad:,}"


async def produce(
    *,
    bootstrap_servers: str,
    topics: Mapping[str, str],
    count: int,
    rate: float | None,
    generator: RetailGenerator,
    progress: bool = True,
    linger_ms: int = 5,
    out: IO[str] = sys.stderr,
    client_options: Mapping[str, Any] | None = None,
) -> ProduceStats:
    """Produce the next ``count`` events of ``generator`` to Kafka.

    Args:
        bootstrap_servers: Kafka bootstrap address, e.g. ``"127.0.0.1:9092"``.
        topics: topic name per source (``clickstream``, ``pos``, ``orders``, and ``identity`` for a
            generator in identity mode: ``sources_of``); see DEFAULT_TOPICS.
        count: number of events to send.
        rate: target events per second (token bucket); None sends as fast as possible.
        generator: the event source; its stream position advances by ``count``.
        progress: print a progress line to ``out`` about once per second, and a final line.
        linger_ms: producer linger (batching delay) in milliseconds.
        out: where progress goes.
        client_options: extra aiokafka client options (security: see KafkaSettings.client_options).

    Returns:
        ProduceStats counting events acknowledged by the broker (acks=1).

    Raises:
        RuntimeError: the broker is unreachable.
        KeyError: ``topics`` lacks a source.
        aiokafka.errors.KafkaError: a delivery failed (production stops at the first failure).
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be > 0 (or None for unlimited)")
    topic_of: dict[str, str] = {source: topics[source] for source in sources_of(generator)}
    stats = ProduceStats(per_source=dict.fromkeys(topic_of, 0))
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id="tagstream-generator",
        acks=1,
        enable_idempotence=False,
        compression_type=None,
        linger_ms=linger_ms,
        **dict(client_options or {}),
    )
    batch_size = _MAX_BATCH if rate is None else max(1, min(_MAX_BATCH, int(rate / 10)))
    pending = _Pending(stats)
    try:
        await _start(producer, bootstrap_servers)
        t0 = time.monotonic()
        report = _Progress(stats, count, out, t0) if progress else None
        for i, ev in enumerate(islice(generator, count)):
            if rate is not None:
                await _wait_until(t0 + i / rate, pending)
            pending.add(await producer.send(topic_of[ev.source], value=ev.value, key=ev.key), ev)
            if len(pending) >= batch_size:
                await pending.drain()
            if report is not None:
                report.tick()
        await pending.drain()
        await producer.flush()
        stats.elapsed_s = time.monotonic() - t0
        if report is not None:
            report.done()
        return stats
    finally:
        # stop() also flushes what is still buffered, on errors and cancellation too.
        await producer.stop()


async def _start(producer: AIOKafkaProducer, bootstrap_servers: str) -> None:
    """Start ``producer``; an unreachable broker becomes a RuntimeError."""
    try:
        await producer.start()
    except KafkaConnectionError as exc:
        raise RuntimeError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from exc


async def _wait_until(due: float, pending: _Pending) -> None:
    """Token bucket: sleep until ``due`` (monotonic) if it is far enough ahead to sleep at all."""
    if due - time.monotonic() >= _MIN_SLEEP_S:
        await pending.drain()  # idle time anyway: collect acks for fresher progress
        await asyncio.sleep(max(0.0, due - time.monotonic()))


class _Pending:
    """Delivery futures not awaited yet; :meth:`drain` awaits them and counts them in ``stats``."""

    def __init__(self, stats: ProduceStats) -> None:
        self._stats = stats
        self._futures: list[asyncio.Future[object]] = []
        self._per_source: Counter[str] = Counter()
        self._bad = 0

    def __len__(self) -> int:
        return len(self._futures)

    def add(self, future: asyncio.Future[object], ev: GeneratedEvent) -> None:
        """Track the delivery of ``ev``."""
        self._futures.append(future)
        self._per_source[ev.source] += 1
        self._bad += not ev.valid

    async def drain(self) -> None:
        """Await every tracked delivery, then count them (only what the broker acknowledged)."""
        if self._futures:
            await asyncio.gather(*self._futures)
        stats = self._stats
        stats.sent += len(self._futures)
        for source, n in self._per_source.items():
            stats.per_source[source] += n
        stats.bad += self._bad
        self._futures.clear()
        self._per_source.clear()
        self._bad = 0


class _Progress:
    """Progress lines to ``out``: about once per second, and a final one."""

    def __init__(self, stats: ProduceStats, count: int, out: IO[str], t0: float) -> None:
        self._stats = stats
        self._count = count
        self._out = out
        self._last_t = t0
        self._last_sent = 0

    def tick(self) -> None:
        """Print the current rate if a second has passed since the last line."""
        now = time.monotonic()
        if now - self._last_t >= 1.0:
            rate = (self._stats.sent - self._last_sent) / (now - self._last_t)
            print(_line(self._stats, self._count, rate), file=self._out, flush=True)
            self._last_t, self._last_sent = now, self._stats.sent

    def done(self) -> None:
        """Print the final line (average rate over the whole run)."""
        stats = self._stats
        print(f"done: {_line(stats, self._count, stats.rate)} in {stats.elapsed_s:.1f}s", file=self._out, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (``python -m streams.tools.produce``)."""
    p = argparse.ArgumentParser(description="Produce synthetic retail events to Kafka.")
    p.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    p.add_argument("--topic-prefix", default="events", help="topics are <prefix>.<source>")
    p.add_argument("--count", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=None, help="events/s; default unlimited")
    p.add_argument("--partitions", type=int, default=3, help="for topics that must be created")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--bad-ratio", type=float, default=0.0)
    p.add_argument("--step-ms", type=float, default=1.0)
    p.add_argument("--identity", action="store_true",
                   help="identity traffic (typed ids, CRM records to <prefix>.identity: docs/identity.md)")
    args = p.parse_args(argv)
    gen = RetailGenerator(seed=args.seed, customers=args.customers, bad_ratio=args.bad_ratio, step_ms=args.step_ms,
                          identity=args.identity)
    topics: dict[str, str] = {s: f"{args.topic_prefix}.{s}" for s in sources_of(gen)}

    async def run() -> None:
        await ensure_topics(args.bootstrap_servers, topics.values(), args.partitions)
        await produce(
            bootstrap_servers=args.bootstrap_servers,
            topics=topics,
            count=args.count,
            rate=args.rate,
            generator=gen,
        )

    try:
        asyncio.run(run())
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
