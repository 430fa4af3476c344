"""Readiness also means "the brokers answer": a metadata request on a client of our own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka.client import AIOKafkaClient

log = logging.getLogger(__name__)

KAFKA_PROBE_INTERVAL_S = 3.0


class KafkaProbe:
    """``check()`` asks the brokers for metadata; ``ok`` is the last answer. ``close()`` is idempotent."""

    def __init__(self, bootstrap_servers: str, client_id: str, client_options: Mapping[str, Any],
                 timeout_s: float = KAFKA_PROBE_INTERVAL_S) -> None:
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._options = dict(client_options)
        self._timeout_s = timeout_s
        self._client: AIOKafkaClient | None = None
        self.ok = True

    async def check(self) -> bool:
        try:
            if self._client is None:
                client = AIOKafkaClient(bootstrap_servers=self._bootstrap, client_id=self._client_id,
                                        **self._options)
                try:
                    await asyncio.wait_for(client.bootstrap(), self._timeout_s)
                except BaseException:
                    await client.close()
                    raise
                self._client = client
            await asyncio.wait_for(self._client.fetch_all_metadata(), self._timeout_s)
            self.ok = True
        except Exception as exc:  # any failure: not ready, say why in the log once
            if self.ok:
                log.warning("kafka does not answer (%r): not ready", exc)
            self.ok = False
        return self.ok

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
