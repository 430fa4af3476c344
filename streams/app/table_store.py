"""A Faust table as a stage's store: reads, and writes that name the delivered record they belong
to (so they go to that record's partition of the changelog, also from ``take()`` batches)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams.app import faust_compat
from streams.app.codec import encoded_as
from streams.app.customers import Delivered


class TableStore:
    """The customers table as the stage's StateStore: writes name the record they belong to."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: bytes) -> Any:
        state: Any = self.table.get(key)
        return state

    def put(self, key: bytes, state: Any, record: Delivered, encoded: bytes | None = None) -> None:
        with faust_compat.current_event_as(record), encoded_as(state, encoded):
            self.table[key] = state

    def delete(self, key: bytes, record: Delivered) -> None:
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
        await faust_compat.drain_producer_buffer(self.table.app)
