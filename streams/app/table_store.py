"""A Faust table as a stage's store: reads, and writes that name the delivered record they belong
to (so they go to that record's partition of the changelog, also from ``take()`` batches).

With ``batches`` (the customers table, at-least-once) a write sets the table's local store and
queues the changelog record; ``flush`` sends the queued records as one record batch per partition
and waits for the broker. faust's own path (``table[key] = value``) costs a buffer queue, an event
and a ``wait_for`` task per record, which was 9-12 % of a worker's CPU (py-spy,
``benchmarks.identity --py-spy``). The records are the same: raw key, the state's bytes, the record's
partition; a RocksDB store is told the offsets it holds, as faust's callback does. Without a plain
producer (not started yet, exactly-once's transactional one) writes take faust's path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faust.types import TP

from streams.app import faust_compat
from streams.app.codec import encoded_as
from streams.app.customer_contracts import Delivered
from streams.io.contract import BatchSender
from streams.io.record_batches import send_batches


class TableStore:
    """The customers table as the stage's StateStore: writes name the record they belong to."""

    def __init__(self, table: Any, batches: Callable[[], BatchSender | None] | None = None,
                 encode: Callable[[Any], bytes] | None = None) -> None:
        """``batches``: the producer to send changelog records in batches with (None: faust's path);
        ``encode``: a value's changelog bytes (the table's codec)."""
        self.table = table
        self._batches = batches
        self._encode = encode
        self._pending: list[tuple[int, bytes, bytes | None]] = []
        self._sender: BatchSender | None = None

    def get(self, key: bytes) -> Any:
        # the table's store itself: the table's own get adds a sensor call and three layers
        # (1.9 against 0.8 µs a read; the stage reads every customer of every batch)
        state: Any = self.table.data.get(key)
        return state

    def _batched(self) -> BatchSender | None:
        if self._sender is None and self._batches is not None:
            self._sender = self._batches()
        return self._sender

    def put(self, key: bytes, state: Any, record: Delivered, encoded: bytes | None = None) -> None:
        if self._encode is not None and self._batched() is not None:
            with faust_compat.current_event_as(record):  # the store files the key under the record's partition
                self.table.data[key] = state
            value = encoded if encoded is not None else self._encode(state)
            self._pending.append((record.message.partition, key, value))
            return
        with faust_compat.current_event_as(record), encoded_as(state, encoded):
            self.table[key] = state

    def delete(self, key: bytes, record: Delivered) -> None:
        if self._encode is not None and self._batched() is not None:
            with faust_compat.current_event_as(record):
                if key in self.table.data:
                    del self.table.data[key]
                    self._pending.append((record.message.partition, key, None))
            return
        with faust_compat.current_event_as(record):
            if key in self.table:
                del self.table[key]

    def put_local(self, key: bytes, state: Any, record: Delivered) -> None:
        with faust_compat.current_event_as(record):  # the store files the key under the record's partition
            self.table.data[key] = state

    def delete_local(self, key: bytes, record: Delivered) -> None:
        with faust_compat.current_event_as(record):
            if key in self.table.data:
                del self.table.data[key]

    def items(self) -> Iterable[tuple[bytes, object]]:
        items: Iterable[tuple[bytes, object]] = self.table.data.items()
        return items

    def held_keys(self) -> Iterable[bytes]:
        keys: Iterable[bytes] = self.table.data.keys()
        return keys

    async def flush(self) -> None:
        """faust's buffered writes handed to the Kafka client; the batched ones acknowledged."""
        await faust_compat.drain_producer_buffer(self.table.app)
        pending, self._pending = self._pending, []
        sender, self._sender = self._sender, None  # looked up again for the next batch
        if not pending or sender is None:
            return
        last = await send_batches(sender, self.table.changelog_topic.get_topic_name(), pending)
        for partition, offset in last.items():  # what faust's callback tells a RocksDB store
            self.table.data.set_persisted_offset(self._changelog_tp(partition), offset)

    def drop_pending(self) -> int:
        pending, self._pending = self._pending, []
        return len(pending)

    def _changelog_tp(self, partition: int) -> TP:
        return TP(self.table.changelog_topic.get_topic_name(), partition)
