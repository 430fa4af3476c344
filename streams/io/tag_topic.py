"""The tag-change topic: every change, keyed by customer id, for downstream services."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson

from streams.io.contract import RecordSender


def tag_record(change: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The tag topic's record of a change: (key = customer id, value = the change as JSON)."""
    return str(change["customer_id"]).encode(), orjson.dumps(change)


class TagTopicWriter:
    """Queues tag changes (``add``); ``flush`` sends them and waits until the broker has all."""

    def __init__(self, producer: RecordSender, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._pending: list[Mapping[str, Any]] = []

    def add(self, change: Mapping[str, Any]) -> None:
        self._pending.append(change)

    async def flush(self) -> None:
        """Sends the queued changes in order; returns once every one is acknowledged. A failure
        raises: the batch is then not acknowledged, and its replay sends them again (same change_id)."""
        pending, self._pending = self._pending, []
        acks = [await self._producer.send(self._topic, *tag_record(c), None, None, None) for c in pending]
        await asyncio.gather(*acks)

    async def close(self) -> None:
        """Nothing of its own to release (the producer belongs to the app)."""
