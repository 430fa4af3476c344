"""Kafka and Redis I/O of an expiry phase: reading back its tag topic, counting the ticks in its
worker's internal customer topic, deleting its topics and keys."""

from __future__ import annotations

import asyncio

from streams.app.envelope import decode_envelope


async def consume_tags(bootstrap: str, topic: str, group_id: str, records: list[tuple[int, bytes]],
                       stop: asyncio.Event) -> None:
    """Appends (Kafka create time ms, value) of every record of the tag topic ``topic`` to ``records``
    until ``stop`` is set."""
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                         group_id=group_id)
    await c.start()
    try:
        while not stop.is_set():
            batch = await c.getmany(timeout_ms=200, max_records=5000)
            for recs in batch.values():
                records.extend((r.timestamp, r.value) for r in recs)
    finally:
        await c.stop()


async def count_ticks(bootstrap: str, prefix: str, partitions: int, t0_wall: int,
                      t1_wall: int) -> tuple[int, int, int]:
    """(ticks, ticks sent during [t0_wall, t1_wall], all items) in the worker's internal
    customer topic, read to its end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = f"{prefix}-customer-events"
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                         auto_offset_reset="earliest")
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]  # Faust made it so
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        ends = await c.end_offsets(tps)
        ticks = in_load = total = 0
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await c.getmany(timeout_ms=1000, max_records=20000)
            for tp, recs in batch.items():
                for r in recs:
                    for item in decode_envelope(r.value):  # an envelope of events or ticks
                        total += 1
                        if "tick" in item:
                            ticks += 1
                            in_load += t0_wall <= r.timestamp <= t1_wall
                if recs and recs[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return ticks, in_load, total
    finally:
        await c.stop()


async def cleanup(bootstrap: str, redis_url: str, prefix: str) -> None:
    """Deletes the phase's topics and Redis keys (those starting with ``prefix``)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()
    import redis.asyncio as aioredis

    r = aioredis.from_url(redis_url)
    try:
        keys = [k async for k in r.scan_iter(match=f"{prefix}:*", count=5000)]
        for i in range(0, len(keys), 5000):
            await r.delete(*keys[i:i + 5000])
    finally:
        await r.aclose()
