"""The Redis alias map of identity resolution: any id of a customer -> its canonical id.

``{prefix}:alias:{id}`` (a string, ``id`` a typed key such as ``anonymous:a-1``) holds the canonical
id of the cluster the id belongs to; an id with no alias key is its own canonical id. Marketing
tools read a customer's tags by any of its ids in two steps: GET the alias (or take the id), then
the tag hash of the canonical id (docs/contracts.md, *Redis key layout*; ``tagstream tags ANY_ID``).
The identity stage writes the aliases of every id whose canonical id changed, before the merge they
belong to is committed; SETs are idempotent, so a replay writes the same values again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.io.redis_sink import RETRIABLE

log = logging.getLogger(__name__)


def alias_key(prefix: str, id_key: str, *, hash_tag: bool = False) -> str:
    """``{prefix}:alias:{id}``; in a Redis Cluster the id is a hash tag (``{prefix}:alias:{{id}}``)."""
    return f"{prefix}:alias:{{{id_key}}}" if hash_tag else f"{prefix}:alias:{id_key}"


class AliasWriter:
    """Pipelined SETs of aliases, retried (like the tag sink) until Redis takes them."""

    def __init__(self, client: Any, *, prefix: str, hash_tag: bool = False, backoff_max_ms: int = 5_000) -> None:
        self._client = client
        self._prefix = prefix
        self._hash_tag = hash_tag
        self._backoff_max_ms = backoff_max_ms

    async def write(self, aliases: Mapping[str, str | None]) -> None:
        """SETs the aliases; None deletes one (an erased id)."""
        if not aliases:
            return
        backoff_ms = 50
        while True:
            try:
                pipe = self._client.pipeline(transaction=False)
                for id_key, canonical in aliases.items():
                    key = alias_key(self._prefix, id_key, hash_tag=self._hash_tag)
                    if canonical is None:
                        pipe.delete(key)
                    else:
                        pipe.set(key, canonical)
                await pipe.execute()
                return
            except RETRIABLE as exc:
                log.warning("redis alias write failed (%s); retrying in %d ms", exc, backoff_ms)
                await asyncio.sleep(backoff_ms / 1000)
                backoff_ms = min(backoff_ms * 2, self._backoff_max_ms)


@dataclass(frozen=True)
class Resolved:
    canonical: str
    """The customer id whose tags to read."""
    how: str
    """``alias`` (the alias map named it) or ``self`` (no alias: the id is its own canonical id)."""


async def resolve(client: Any, prefix: str, id_key: str, *, hash_tag: bool = False) -> Resolved:
    raw = await client.get(alias_key(prefix, id_key, hash_tag=hash_tag))
    if raw is None:
        return Resolved(id_key, "self")
    return Resolved(raw.decode() if isinstance(raw, bytes) else str(raw), "alias")
