"""The Redis alias map of identity resolution: any id of a customer -> its canonical id.

``{prefix}:alias:{id}`` (a string, ``id`` a typed key such as ``anonymous:a-1``) holds the canonical
id of the cluster the id belongs to; an id with no alias key is its own canonical id. Marketing
tools read a customer's tags by any of its ids in two steps: GET the alias (or take the id), then
the tag hash of the canonical id (docs/contracts.md, *Redis key layout*; ``tagstream tags ANY_ID``).
The identity stage writes the aliases of every id whose canonical id changed, before the merge they
belong to is committed; SETs are idempotent, so a replay writes the same values again.

A write is fenced like the tag sink's (``redis_sink.Fence``): the links partition's latest writer
token is kept in ``{prefix}:owner:links:{partition}`` and a write with an earlier one changes
nothing and raises ``RedisFenced``. Without that, an identity stage resumed after a pause longer
than its session could point an alias back at the canonical id of an earlier merge, after the
partition's next owner moved it on. Unfenced: Redis Cluster (the keys of one script call must share
a slot) and an ACL user without EVAL (a pipeline, as the tag sink).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoPermissionError

from streams.io.redis_sink import RETRIABLE, Fence, RedisFenced, apply_script

log = logging.getLogger(__name__)


def links_fence_key(prefix: str, partition: int) -> str:
    """The latest fence token that wrote aliases for links partition ``partition`` (``Fence``)."""
    return f"{prefix}:owner:links:{partition}"


def alias_key(prefix: str, id_key: str, *, hash_tag: bool = False) -> str:
    """``{prefix}:alias:{id}``; in a Redis Cluster the id is a hash tag (``{prefix}:alias:{{id}}``)."""
    return f"{prefix}:alias:{{{id_key}}}" if hash_tag else f"{prefix}:alias:{id_key}"


class AliasWriter:
    """SETs of aliases in one round trip (a fenced script call, or a pipeline), retried (like the tag
    sink) until Redis takes them."""

    def __init__(self, client: Any, *, prefix: str, hash_tag: bool = False, backoff_max_ms: int = 5_000) -> None:
        self._client = client
        self._prefix = prefix
        self._hash_tag = hash_tag
        self._backoff_max_ms = backoff_max_ms
        self._scripted = not hash_tag
        """Writes go as one ``APPLY`` script call, which checks the fence; a pipeline in a Redis
        Cluster, or once Redis refused the script (an ACL user without EVAL)."""

    async def write(self, aliases: Mapping[str, str | None], fence: Fence | None = None) -> None:
        """SETs the aliases; None deletes one (an erased id). With ``fence`` (the links partitions of
        the batch) the fence is checked even with no alias to write, and ``RedisFenced`` raised when
        a later writer holds one of its partitions: nothing is written then."""
        if not aliases and (fence is None or not self._scripted):
            return
        backoff_ms = 50
        while True:
            try:
                await self._write(aliases, fence)
                return
            except RETRIABLE as exc:
                log.warning("redis alias write failed (%s); retrying in %d ms", exc, backoff_ms)
                await asyncio.sleep(backoff_ms / 1000)
                backoff_ms = min(backoff_ms * 2, self._backoff_max_ms)

    async def _write(self, aliases: Mapping[str, str | None], fence: Fence | None) -> None:
        keys = {id_key: alias_key(self._prefix, id_key, hash_tag=self._hash_tag) for id_key in aliases}
        if self._scripted:
            partitions = sorted(fence.partitions) if fence is not None else []
            fences = [links_fence_key(self._prefix, p) for p in partitions]
            commands = [("DEL", keys[i], []) if c is None else ("SET", keys[i], [c]) for i, c in aliases.items()]
            try:
                held = await apply_script(self._client, commands, fences, fence.token if fence is not None else 0)
            except NoPermissionError as exc:
                log.warning("redis refused the alias writes' script (%s): writing them as a pipeline, unfenced", exc)
                self._scripted = False
            else:
                if held is not None:
                    assert fence is not None
                    j, token = held
                    raise RedisFenced(
                        f"links partition {partitions[j]} was written by a later owner (fence token {token} > "
                        f"ours, {fence.token}): this worker's {len(aliases)} aliases are not written (was it "
                        f"paused past its session? the key is {fences[j]})")
                return
        if not aliases:
            return
        pipe = self._client.pipeline(transaction=False)
        for id_key, canonical in aliases.items():
            if canonical is None:
                pipe.delete(keys[id_key])
            else:
                pipe.set(keys[id_key], canonical)
        await pipe.execute()


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
