"""Audience size per tag, read from Redis: ``tagstream_audience_size{tag}``.

The size of a tag's audience is the cardinality of its Redis set, so the worker asks Redis
(``SCARD`` per tag, all in one pipelined round trip) every few seconds instead of counting the
changes it publishes itself: a count kept from +1/-1 per change is wrong as soon as several
workers share the partitions, after a restart (the count starts at 0, the set does not), or
when a replay republishes a change. SCARD is O(1), so the read costs one round trip per
period whatever the audiences' sizes. Every worker reports the same values: aggregate with
``max``, not ``sum``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from redis.exceptions import RedisError

from streams.io.metrics import Metrics
from streams.io.redis_client import AsyncRedis
from streams.io.redis_sink import audience_key

log = logging.getLogger(__name__)


class AudienceSizes:
    """Sets ``metrics.audience_size`` for each tag of the rule set from its Redis set's SCARD."""

    def __init__(self, client: AsyncRedis, *, prefix: str, tags: Iterable[str], metrics: Metrics) -> None:
        self._client = client
        self._prefix = prefix
        self._keys = {tag: audience_key(prefix, tag) for tag in sorted(tags)}
        self._metrics = metrics
        self._failing = False

    def set_tags(self, tags: Iterable[str]) -> None:
        """The tags to read from now on (a rule switch)."""
        self._keys = {tag: audience_key(self._prefix, tag) for tag in sorted(tags)}

    async def refresh(self) -> dict[str, int] | None:
        """One read of every tag's audience size; returns them, or None when Redis failed (the
        gauges keep their last values; the failure is logged once until a read succeeds)."""
        if not self._keys:
            return {}
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in self._keys.values():
                    pipe.scard(key)
                sizes = await pipe.execute()
        except (RedisError, OSError) as exc:
            if not self._failing:
                log.warning("audience sizes not read from Redis (%r); the gauges keep their last values", exc)
            self._failing = True
            return None
        if self._failing:
            log.warning("audience sizes read from Redis again")
        self._failing = False
        out = {tag: int(n) for tag, n in zip(self._keys, sizes, strict=True)}
        for tag, n in out.items():
            self._metrics.audience_size.labels(tag).set(n)
        return out
