"""The latency phases' load: events made before the phase, sent at a fixed rate in record batches.

A latency phase measures the worker, and the load generator shares its 2-core machine.
``streams.tools.produce`` (the demo's and ``tagstream produce``'s) makes each event and sends it
record by record: ~35 CPU-µs per event in this process (7 of them making it, the rest aiokafka's
per-record ``send``), 0.36 of a core at 10,000 events/s taken from the worker, the broker and Redis.
Here ~12 µs per event while sending (0.12 of a core), and ~9 µs per event of making and
partitioning before the phase (``python -m benchmarks.paced_producer`` compares the two). Here:

* the phase's events are made before it starts, by the same generator with the same seed, their
  event times on the phase's clock (the first one due when sending starts), and each record's
  partition chosen as aiokafka's default partitioner does (murmur2 of the key), so a customer's
  events keep their order;
* every ``TICK_S`` the events due by then are appended to one record batch per topic partition and
  the batches are sent at once. Each record's Kafka timestamp, where the worker's event -> tag
  latency starts, is its due time, or one tick before it is sent if that is later: as with the
  record path (``send`` stamps a record when called, then it lingers up to 5 ms), the wait for the
  batch is counted, a lag of this loop behind its schedule (the load generator's own) is not.

The latency phases use it with ``benchmarks.throughput --load paced`` (the default, ``records``, is
``produce_at_rate``; long phases such as ``deploy_pause``'s would not fit in memory made in
advance). Made in advance, the phase's records are frozen for the collector (``gc.freeze``): without
that, this process's own collections held its loop back and the overdue records went out in bursts,
which made the worker's p99 worse than with the record path (benchmarks/README.md, session 37).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from streams.io.topics import ensure_topics
from streams.tools.generator import SOURCES, RetailGenerator
from streams.tools.produce import ProduceStats, produce

TICK_S = 0.005
"""How often due events are sent: the record path's linger (5 ms)."""
LEAD_S_PER_EVENT = 12e-6
"""Time allowed per event for making the phase's events before the first is due (~7 µs each)."""


@dataclass(frozen=True)
class Planned:
    """One record of the phase: where it goes and what it holds."""

    source: str
    partition: int
    key: bytes | None
    value: bytes


def plan(generator: RetailGenerator, events: int, partitions: dict[str, list[int]]) -> list[Planned]:
    """The next ``events`` of ``generator`` with their partitions (aiokafka's default partitioner:
    a random one for a record without a key)."""
    choose = DefaultPartitioner()
    return [Planned(ev.source, choose(ev.key, partitions[ev.source], partitions[ev.source]), ev.key, ev.value)
            for ev in islice(generator, events)]


async def produce_paced(bootstrap: str, topics: dict[str, str], *, events: int, rate: float, customers: int,
                        seed: int, tick_s: float = TICK_S) -> tuple[ProduceStats, float]:
    """Sends ``events`` of the reference generator at ``rate`` events/s. Returns what the broker
    acknowledged and the wall time (``time.time()``) the last batch was sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="bench-paced", acks=1,
                                enable_idempotence=False, linger_ms=0)
    await producer.start()
    try:
        partitions = {s: sorted(await producer.partitions_for(t)) for s, t in topics.items()}
        start_s = time.time() + 0.5 + events * LEAD_S_PER_EVENT
        gen = RetailGenerator(seed=seed, customers=customers, start_ms=int(start_s * 1000), step_ms=1000 / rate)
        records = plan(gen, events, partitions)
        gc.freeze()  # the phase's records live until its end: collections of this process leave them alone
        await asyncio.sleep(max(0.0, start_s - time.time()))
        stats = ProduceStats(per_source=dict.fromkeys(topics, 0))
        sent: list[tuple[asyncio.Future[Any], str, int]] = []
        i = 0
        while i < len(records):
            due = min(len(records), int((time.time() - start_s) * rate) + 1)
            for (source, partition), batch in _batches(producer, records, i, due, start_s, rate, tick_s):
                sent.append((await producer.send_batch(batch, topics[source], partition=partition),
                             source, batch.record_count()))
            i = due
            await asyncio.sleep(tick_s)
        ended_at = time.time()
        stats.elapsed_s = ended_at - start_s
        for future, source, n in sent:
            await future
            stats.per_source[source] += n
            stats.sent += n
        return stats, ended_at
    finally:
        gc.unfreeze()
        await producer.stop()


def _batches(producer: AIOKafkaProducer, records: list[Planned], first: int, end: int, start_s: float,
             rate: float, tick_s: float) -> Iterable[tuple[tuple[str, int], Any]]:
    """Records ``first`` to ``end`` (exclusive) as closed record batches per (source, partition),
    each stamped with its due time, or one tick ago if that is later; a full batch is
    closed and a new one started."""
    floor_ms = int((time.time() - tick_s) * 1000)
    open_: dict[tuple[str, int], Any] = {}
    done: list[tuple[tuple[str, int], Any]] = []
    for i in range(first, end):
        r = records[i]
        where = (r.source, r.partition)
        batch = open_.get(where)
        if batch is None:
            batch = open_[where] = producer.create_batch()
        ts_ms = max(int((start_s + i / rate) * 1000), floor_ms)
        if batch.append(key=r.key, value=r.value, timestamp=ts_ms) is None:  # full
            batch.close()
            done.append((where, batch))
            batch = open_[where] = producer.create_batch()
            batch.append(key=r.key, value=r.value, timestamp=ts_ms)
    for where, batch in open_.items():
        batch.close()
        done.append((where, batch))
    return done


async def _compare(bootstrap: str, events: int, rate: float) -> None:
    """CPU of this process per event: the record path against the paced one, on scratch topics."""
    topics: dict[str, str] = {s: f"bench-paced-{int(time.time())}.{s}" for s in SOURCES}
    await ensure_topics(bootstrap, topics.values(), 4)
    for name in ("records", "paced", "records", "paced"):
        c0, w0 = time.process_time(), time.monotonic()
        if name == "records":
            gen = RetailGenerator(seed=1, customers=100_000, start_ms=int(time.time() * 1000), step_ms=1000 / rate)
            st = await produce(bootstrap_servers=bootstrap, topics=topics, count=events, rate=rate, generator=gen,
                               progress=False)
        else:
            st, _ = await produce_paced(bootstrap, topics, events=events, rate=rate, customers=100_000, seed=1)
        cpu, wall = time.process_time() - c0, time.monotonic() - w0
        print(f"{name:8s} {st.sent:,} events at {rate:,.0f}/s: {cpu / events * 1e6:.1f} CPU-µs per event "
              f"(making them included), {cpu / wall:.2f} of a core over {wall:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--rate", type=float, default=10_000)
    args = p.parse_args(argv)
    asyncio.run(_compare(args.bootstrap, args.events, args.rate))


if __name__ == "__main__":
    main()
