"""Where tag changes go: the Redis view of current tags (for marketing tools).

Sinks buffer in ``add()`` and write in ``flush()``. The caller (the customer agent) awaits
``flush()`` before it moves on to the next record, so a record's offset is only committed once
its changes are in Redis: a crash replays it, and the idempotent writes make the replay harmless.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .metrics import Metrics

log = logging.getLogger(__name__)


def tags_key(prefix: str, customer_id: str) -> str:
    """Redis hash of one customer's tags: field = tag, value = {"since_ms", "rule_version"}."""
    return f"{prefix}:tags:{customer_id}"


def audience_key(prefix: str, tag: str) -> str:
    """Redis set of the customer ids holding ``tag``."""
    return f"{prefix}:tag:{tag}"


class RedisTagSink:
    """Writes tag changes to Redis with one pipelined round trip per flush.

    Writes are idempotent (HSET/HDEL/SADD/SREM of the resulting tag set), so replays after a
    crash leave Redis exactly as a single delivery would. Connection failures are retried
    with capped exponential backoff, forever: the worker stalls (and says so in metrics and
    logs) rather than drop a change.
    """

    def __init__(self, client: aioredis.Redis, *, prefix: str, metrics: Metrics | None = None,
                 backoff_max_ms: int = 5_000) -> None:
        self._client = client
        self._prefix = prefix
        self._metrics = metrics
        self._backoff_max_ms = backoff_max_ms
        self._pending: list[dict[str, Any]] = []
        self.healthy = True

    def add(self, change: dict[str, Any]) -> None:
        self._pending.append(change)

    async def flush(self) -> None:
        if not self._pending:
            return
        changes, self._pending = self._pending, []
        backoff_ms = 50
        while True:
            try:
                pipe = self._client.pipeline(transaction=False)
                for c in changes:
                    cid, tag = c["customer_id"], c["tag"]
                    if c["op"] == "add":
                        value = orjson.dumps({"since_ms": c["at_ms"], "rule_version": c["rule_version"]})
                        pipe.hset(tags_key(self._prefix, cid), tag, value)
                        pipe.sadd(audience_key(self._prefix, tag), cid)
                    else:
                        pipe.hdel(tags_key(self._prefix, cid), tag)
                        pipe.srem(audience_key(self._prefix, tag), cid)
                await pipe.execute()
                if not self.healthy:
                    log.warning("redis is back; tag writes resumed")
                self.healthy = True
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.healthy = False
                if self._metrics is not None:
                    self._metrics.redis_errors.inc()
                log.warning("redis write failed (%s); retrying in %d ms", exc, backoff_ms)
                await asyncio.sleep(backoff_ms / 1000)
                backoff_ms = min(backoff_ms * 2, self._backoff_max_ms)
            except RedisError:
                self._pending = changes + self._pending
                raise

    async def close(self) -> None:
        await self._client.aclose()
