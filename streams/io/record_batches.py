"""Records sent as whole record batches, one per partition at a time (aiokafka's batch API).

A record sent with ``producer.send`` costs a producer call, a future and its callbacks; sent through
faust's buffer (table writes) it costs more: a queue, an event and a ``wait_for`` task per record
(py-spy: the customer stage's changelog writes were 9-12 % of a worker's CPU). Filling one batch per
partition and sending it whole costs one future per batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

from streams.io.contract import BatchSender, RecordBatch


async def send_batches(sender: BatchSender, topic: str,
                       records: Iterable[tuple[int, bytes | None, bytes | None]]) -> dict[int, int]:
    """Sends ``(partition, key, value)`` records, in order per partition, in as many full batches as
    they need (a None value is a tombstone); returns once the broker has every one, with the base
    offset of each partition's last batch (none with ``acks=0``)."""
    last: dict[int, int] = {}
    for meta in await asyncio.gather(*await enqueue_batches(sender, topic, records)):
        if meta is None:  # acks=0: no offsets
            continue
        last[meta.partition] = max(last.get(meta.partition, -1), meta.offset)
    return last


async def enqueue_batches(sender: BatchSender, topic: str,
                          records: Iterable[tuple[int, bytes | None, bytes | None]]) -> list[Awaitable[Any]]:
    """Hands the records to the producer as closed batches and returns their acknowledgements (to
    be awaited, possibly together with other sends'). A closed batch goes out at once: no linger
    (``TAGSTREAM_KAFKA__LINGER_MS``) is waited for, which matters to latency when the caller awaits
    the acknowledgement before it reads on (ingest: benchmarks/README.md)."""
    open_: dict[int, RecordBatch] = {}
    acks: list[Awaitable[Any]] = []
    for p, key, value in records:
        batch = open_.get(p)
        if batch is not None and batch.append(timestamp=None, key=key, value=value, headers=[]) is not None:
            continue
        if batch is not None:  # full (it closed itself): sent, and a new one takes the record
            acks.append(await sender.send_batch(batch, topic, partition=p))
        batch = open_[p] = sender.create_batch()
        batch.append(timestamp=None, key=key, value=value, headers=[])  # an empty batch takes any record
    for p, batch in open_.items():
        batch.close()  # complete: sent at once, no linger
        acks.append(await sender.send_batch(batch, topic, partition=p))
    return acks
