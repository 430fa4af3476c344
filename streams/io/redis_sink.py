"""Where tag changes go: the Redis view of current tags (for marketing tools).

Sinks buffer in ``add()`` and write in ``flush()``. The caller (the customer agent) awaits
``flush()`` before it moves on to the next record, so a record's offset is only committed once
its changes are in Redis: a crash replays it, and the idempotent writes make the replay harmless.
A flush with a ``Fence`` writes nothing once a later owner of one of its partitions wrote there:
a worker resumed after a pause longer than its session cannot overwrite newer tags.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import (
    AskError,
    ClusterDownError,
    NoPermissionError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streams.io.metrics import Metrics
from streams.io.redis_client import AsyncRedis

log = logging.getLogger(__name__)

RETRIABLE = (RedisConnectionError, RedisTimeoutError, OSError,
             # Redis Cluster: a node failing over (CLUSTERDOWN, TRYAGAIN, slots moving after the
             # client's own redirect retries, no node reachable or a slot not covered yet)
             ClusterDownError, TryAgainError, AskError, RedisClusterException)
"""Errors a flush waits out and retries (the same writes again: they are idempotent)."""


APPLY = """
local fences = tonumber(ARGV[2])
for i = 1, fences do
  local raw = redis.call('GET', KEYS[i])
  if (tonumber(raw or '0') or 0) > tonumber(ARGV[3]) then
    return {-1, i, raw}
  end
end
for i = 1, fences do
  redis.call('SET', KEYS[i], ARGV[3], 'PX', ARGV[4])
end
local commands = cjson.decode(ARGV[1])
for k = fences + 1, #KEYS do
  local c = commands[k - fences]
  redis.call(c[1], KEYS[k], unpack(c[2]))
end
return {#KEYS - fences}
"""
"""One flush's commands as one script call (``RedisTagSink(scripted=True)``): KEYS are the fence
keys of the flush's partitions (``Fence``), then the commands' keys; ARGV[1] a JSON array of each
command's name and arguments, ``[["HSET", [field, value, ...]], ...]`` (one argument for the client
to pack, not ~3 per tag change: redis-py packs each in Python), ARGV[2] the number of fence keys,
ARGV[3] the writer's fence token, ARGV[4] how long a fence key lives (ms). When a fence key holds a
later token than ours, nothing is written: ``{-1, index of that key, its token}``. A fence key that
holds no number (written by something else) counts as no fence, and is overwritten."""

FENCE_TTL_MS = 7 * 24 * 3_600_000
"""How long a partition's fence key outlives the last write to the partition: longer than any
pause a worker could resume from with a write still in hand, short enough to clean up after an
app that is gone."""


class RedisFenced(Exception):
    """A later owner of a partition wrote to Redis: this writer's flush wrote nothing."""


@dataclass(frozen=True)
class Fence:
    """What a flush's writes are fenced by: the writer's token (``Membership.fence_token``: when its
    group membership began) and the customer partitions its changes come from. Redis keeps the
    latest token per partition (``fence_key``) and refuses a flush with an earlier one, so a worker
    resumed after a pause cannot overwrite what the partition's next owner wrote."""

    token: int
    partitions: frozenset[int]


def fence_key(prefix: str, partition: int) -> str:
    """The latest fence token that wrote customer partition ``partition``'s tags (``Fence``)."""
    return f"{prefix}:owner:{partition}"


SCRIPT_CHUNK = 1_000
"""Arguments per command in a script call at most (Lua's ``unpack`` takes ~8,000): a longer one is
split (HSET/HDEL/SADD/SREM are variadic; an even count keeps HSET's pairs whole)."""


def script_call(commands: Sequence[tuple[str, str, list[str]]], fence_keys: Sequence[str] = ()) -> tuple[
        list[str], bytes]:
    """KEYS and ARGV[1] of ``APPLY`` for ``commands`` (``RedisTagSink.commands``; a command with no
    arguments, such as a DEL, is one call) after ``fence_keys``."""
    keys: list[str] = list(fence_keys)
    calls: list[tuple[str, list[str]]] = []
    for command, key, args in commands:
        for i in range(0, max(len(args), 1), SCRIPT_CHUNK):
            keys.append(key)
            calls.append((command, args[i:i + SCRIPT_CHUNK]))
    return keys, orjson.dumps(calls)


async def apply_script(client: Any, commands: Sequence[tuple[str, str, list[str]]], fence_keys: Sequence[str],
                       token: int) -> tuple[int, int] | None:
    """Runs ``commands`` as one ``APPLY`` call fenced by ``fence_keys`` with ``token``: None when they
    were written, else (the index in ``fence_keys`` of a key a later writer holds, that writer's token),
    and nothing was written. Raises ``NoPermissionError`` when Redis refuses EVAL (an ACL user)."""
    keys, payload = script_call(commands, fence_keys)
    done = await client.eval(APPLY, len(keys), *keys, payload, len(fence_keys), token, FENCE_TTL_MS)
    if int(done[0]) < 0:
        return int(done[1]) - 1, int(done[2])
    return None


def tags_key(prefix: str, customer_id: str, *, hash_tag: bool = False) -> str:
    """Redis hash of one customer's tags: field = tag, value = {"since_ms", "rule_version"}.

    ``{prefix}:tags:{customer_id}``; with ``hash_tag`` (Redis Cluster) the customer id is wrapped
    in literal braces, ``{prefix}:tags:{{customer_id}}``, so the slot is the customer id's and every
    key of one customer lands on one node (docs/contracts.md, *Redis key layout*)."""
    return f"{prefix}:tags:{{{customer_id}}}" if hash_tag else f"{prefix}:tags:{customer_id}"


def audience_key(prefix: str, tag: str) -> str:
    """Redis set of the customer ids holding ``tag`` (one key, so one slot, per tag in a cluster)."""
    return f"{prefix}:tag:{tag}"


class RedisTagSink:
    """Writes tag changes to Redis with one pipelined round trip per flush (per node owning a key
    of the batch, with a Redis Cluster client: redis-py splits the pipeline by slot owner).

    Writes are idempotent (HSET/HDEL/SADD/SREM of the resulting tag set), so replays after a
    crash leave Redis exactly as a single delivery would. Connection failures are retried
    with capped exponential backoff, forever: the worker stalls (and says so in metrics and
    logs) rather than drop a change.
    """

    def __init__(self, client: aioredis.Redis | aioredis.RedisCluster, *, prefix: str, hash_tag: bool = False,
                 metrics: Metrics | None = None, backoff_max_ms: int = 5_000, timeout_ms: int | None = None,
                 shared: AsyncRedis | None = None, scripted: bool = False) -> None:
        self._client = client
        self._scripted = scripted
        """One EVAL per flush instead of a pipeline of one command per customer and per tag: with
        1,000 tags a flush of 900 changes is ~980 commands, and redis-py packed and parsed each in
        Python (10.8 ms of client CPU per flush; the script call 3.3 ms, the server +0.15 ms).
        Not with a Redis Cluster (a script's keys must share a slot); an ACL user without EVAL
        falls back to the pipeline."""
        self._shared = shared
        """The worker's other client (per-reply timeouts), for its readers: ``client``; closed with this."""
        self._timeout_s = timeout_ms / 1000 if timeout_ms is not None else None
        """Each flush's round trip must end within this (else retried, as a lost connection): the
        client's own per-reply timeout (``socket_timeout``) armed a timer per command."""
        self._prefix = prefix
        self._hash_tag = hash_tag
        self._metrics = metrics
        self._backoff_max_ms = backoff_max_ms
        self._pending: list[Mapping[str, Any]] = []
        self._closed = False
        self.healthy = True

    def add(self, change: Mapping[str, Any]) -> None:
        self._pending.append(change)

    def commands(self, changes: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, list[str]]]:
        """The Redis commands that leave each customer's hash and each audience set as applying
        ``changes`` one by one would: the last change of a (customer, tag) wins, then one
        HSET/HDEL per customer and one SADD/SREM per tag carry all of them (a field or a member is
        in one of the two, so their order does not matter)."""
        by_customer: dict[str, dict[str, Mapping[str, Any]]] = {}
        for c in changes:
            cid = c["customer_id"]
            last = by_customer.get(cid)
            if last is None:
                last = by_customer[cid] = {}
            last[c["tag"]] = c
        hset: list[tuple[str, str, list[str]]] = []
        hdel: list[tuple[str, str, list[str]]] = []
        sadd: dict[str, list[str]] = {}
        srem: dict[str, list[str]] = {}
        # The changes of one event share their hash value, a tag's its set key: built once each.
        set_keys: dict[str, str] = {}
        values: dict[tuple[int, str], str] = {}
        for cid, last in by_customer.items():
            fields: list[str] = []
            gone: list[str] = []
            for tag, c in last.items():
                skey = set_keys.get(tag)
                if skey is None:
                    skey = set_keys[tag] = audience_key(self._prefix, tag)
                if c["op"] == "add":
                    since = (c["at_ms"], c["rule_version"])
                    value = values.get(since)
                    if value is None:
                        value = values[since] = orjson.dumps({"since_ms": since[0], "rule_version": since[1]}).decode()
                    fields.append(tag)
                    fields.append(value)
                    members = sadd.get(skey)
                    if members is None:
                        members = sadd[skey] = []
                else:
                    gone.append(tag)
                    members = srem.get(skey)
                    if members is None:
                        members = srem[skey] = []
                members.append(cid)
            hkey = tags_key(self._prefix, cid, hash_tag=self._hash_tag)
            if fields:
                hset.append(("HSET", hkey, fields))
            if gone:
                hdel.append(("HDEL", hkey, gone))
        return [*hset, *hdel, *(("SADD", k, a) for k, a in sadd.items()), *(("SREM", k, a) for k, a in srem.items())]

    async def flush(self, fence: Fence | None = None) -> None:
        """Writes the changes added since the last flush; retries what may be transient, forever.
        With ``fence``, Redis refuses them when a later owner wrote one of its partitions: that
        raises ``RedisFenced`` and the changes are dropped (their batch is not acknowledged, and its
        records are processed again by the partition's owner)."""
        if not self._pending:
            return
        changes, self._pending = self._pending, []
        backoff_ms = 50
        while True:
            try:
                if self._timeout_s is None:
                    await self._write(changes, fence)
                else:
                    async with asyncio.timeout(self._timeout_s):  # TimeoutError: an OSError, retried
                        await self._write(changes, fence)
                if not self.healthy:
                    log.warning("redis is back; tag writes resumed")
                self.healthy = True
                return
            except RETRIABLE as exc:
                self.healthy = False
                if self._metrics is not None:
                    self._metrics.redis_errors.inc()
                log.warning("redis write failed (%s); retrying in %d ms", exc, backoff_ms)
                await asyncio.sleep(backoff_ms / 1000)
                backoff_ms = min(backoff_ms * 2, self._backoff_max_ms)
            except RedisError:
                self._pending = changes + self._pending
                raise

    async def _write(self, changes: Sequence[Mapping[str, Any]], fence: Fence | None = None) -> None:
        commands = self.commands(changes)
        if self._scripted:
            partitions = sorted(fence.partitions) if fence is not None else []
            fences = [fence_key(self._prefix, p) for p in partitions]
            try:
                held = await apply_script(self._client, commands, fences, fence.token if fence is not None else 0)
            except NoPermissionError as exc:
                log.warning("redis refused the tag writes' script (%s): writing them as a pipeline of commands; "
                            "give the ACL user +eval to save ~70 %% of the client's CPU per write (and to fence "
                            "a paused worker's writes)", exc)
                self._scripted = False
            else:
                if held is not None:
                    assert fence is not None
                    i, token = held
                    raise RedisFenced(
                        f"customer partition {partitions[i]} was written by a later owner "
                        f"(fence token {token} > ours, {fence.token}): this worker's {len(changes)} tag changes "
                        "are not written (was it paused past its session? If the machines' clocks disagree "
                        f"by more than the session timeout, fix them; the key is {fences[i]})")
                return
        pipe = self._client.pipeline(transaction=False)
        for command, key, args in commands:
            pipe.execute_command(command, key, *args)
        await pipe.execute()

    @property
    def client(self) -> AsyncRedis:
        """The Redis client for the worker's readers (e.g. the rules status): ``shared`` if given."""
        return self._shared if self._shared is not None else self._client

    async def close(self) -> None:
        """Closes the client's connections; safe to call again."""
        if self._closed:
            return
        self._closed = True
        await self._client.aclose()
        if self._shared is not None:
            await self._shared.aclose()
