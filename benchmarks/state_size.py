"""The state a worker holds, read back from its changelog topic: customers and bytes."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition


async def state_size(bootstrap: str, changelog: str) -> dict[str, float]:
    """Reads a table's changelog topic and keeps the latest value per key: active customers
    (keys whose latest value is not a tombstone) and the bytes of those latest values."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    latest: dict[bytes, int] = {}
    records = 0
    try:
        parts = c.partitions_for_topic(changelog)
        if not parts:
            await c._client.force_metadata_update()
            parts = c.partitions_for_topic(changelog) or set()
        tps = [TopicPartition(changelog, p) for p in sorted(parts)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        ends = await c.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await c.getmany(*remaining, timeout_ms=1000)
            for recs in batch.values():
                for r in recs:
                    records += 1
                    if r.value is None:
                        latest.pop(r.key, None)
                    else:
                        latest[r.key] = len(r.value)
            for tp in list(remaining):  # by position: a transactional changelog (exactly_once) ends
                if await c.position(tp) >= ends[tp]:  # with a commit marker, never delivered as a record
                    remaining.discard(tp)
    finally:
        await c.stop()
    n = len(latest)
    b = sum(latest.values())
    return {"customers": n, "bytes": b, "bytes_per_customer": b / n if n else 0.0, "changelog_records": records}
