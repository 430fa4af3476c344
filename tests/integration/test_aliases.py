"""The identity stage's alias writes against a real redis-server: a script call and a pipeline leave
the same aliases (SETs and the DELs of an erasure), and a fenced write changes nothing once a later
owner of the links partition wrote (``streams/io/aliases.py``)."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aioredis

from streams.io.aliases import AliasWriter, links_fence_key, resolve
from streams.io.redis_sink import FENCE_TTL_MS, Fence, RedisFenced

from .test_redis_outage import OwnRedis, own_redis  # noqa: F401  (the fixture)


def aliases(r: redis.Redis, prefix: str) -> dict[str, str]:
    return {k.decode(): r.get(k).decode() for k in r.scan_iter(f"{prefix}:alias:*")}  # type: ignore[union-attr]


async def test_script_and_pipeline_write_the_same_aliases(own_redis: OwnRedis) -> None:  # noqa: F811
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    scripted = AliasWriter(aioredis.from_url(url), prefix="s")
    piped = AliasWriter(aioredis.from_url(url), prefix="p")
    piped._scripted = False  # what a Redis Cluster (or an ACL user without EVAL) gets
    r = redis.Redis.from_url(url)
    odd = 'anonymous:a"q\\é☃ {x}'
    try:
        for w in (scripted, piped):
            await w.write({"anonymous:a-1": "user:u-1", odd: "user:u-1", "member:m-1": "user:u-1"})
            await w.write({"member:m-1": None, "anonymous:a-2": "member:m-2"})  # an erasure, a new merge
        got = {k[2:]: v for k, v in aliases(r, "s").items()}
        assert got == {k[2:]: v for k, v in aliases(r, "p").items()}
        assert got == {"alias:anonymous:a-1": "user:u-1", f"alias:{odd}": "user:u-1",
                       "alias:anonymous:a-2": "member:m-2"}
        assert (await resolve(scripted._client, "s", odd)).canonical == "user:u-1"
    finally:
        r.close()
        await scripted._client.aclose()
        await piped._client.aclose()


async def test_a_fenced_alias_write_changes_nothing_once_a_later_owner_wrote(own_redis: OwnRedis) -> None:  # noqa: F811
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    paused = AliasWriter(aioredis.from_url(url), prefix="f")
    later = AliasWriter(aioredis.from_url(url), prefix="f")
    r = redis.Redis.from_url(url)
    try:
        await paused.write({"anonymous:a-1": "user:u-1"}, Fence(1_000, frozenset({0})))
        await paused.write({"anonymous:a-2": "user:u-1"}, Fence(1_000, frozenset({0})))  # its next batch
        # the next owner moved the cluster on (u-1 absorbed into member m-1)
        await later.write({"anonymous:a-1": "member:m-1", "anonymous:a-2": "member:m-1", "user:u-1": "member:m-1"},
                          Fence(2_000, frozenset({0})))
        assert r.get(links_fence_key("f", 0)) == b"2000"
        assert 0 < r.pttl(links_fence_key("f", 0)) <= FENCE_TTL_MS
        before = aliases(r, "f")
        with pytest.raises(RedisFenced, match=r"links partition 0 was written by a later owner \(fence token "
                                              r"2000 > ours, 1000\)"):
            await paused.write({"anonymous:a-1": "user:u-1", "member:m-1": None}, Fence(1_000, frozenset({0})))
        assert aliases(r, "f") == before  # not even the deletion
        with pytest.raises(RedisFenced):  # checked with nothing to write, too
            await paused.write({}, Fence(1_000, frozenset({0})))
        await later.write({}, Fence(2_000, frozenset({0})))
        assert aliases(r, "f") == before == {"f:alias:anonymous:a-1": "member:m-1",
                                             "f:alias:anonymous:a-2": "member:m-1", "f:alias:user:u-1": "member:m-1"}
    finally:
        r.close()
        await paused._client.aclose()
        await later._client.aclose()
