"""The tag sink's two ways of writing a flush against a real redis-server: one script call (the
worker's, ``scripted``) and a pipeline of commands (Redis Cluster, or an ACL user without EVAL)
leave Redis in the same state; a fenced flush writes nothing once a later owner wrote its partition."""

from __future__ import annotations

import random
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from streams.io.redis_sink import FENCE_TTL_MS, SCRIPT_CHUNK, Fence, RedisFenced, RedisTagSink, fence_key

from .test_redis_outage import OwnRedis, own_redis  # noqa: F401  (the fixture)


def batches(seed: int) -> list[list[dict[str, Any]]]:
    rnd = random.Random(seed)
    out = []
    for b in range(6):
        out.append([{"customer_id": f"c{rnd.randrange(200)}", "tag": f"seg_{rnd.randrange(60)}",
                     "op": rnd.choice(["add", "add", "remove"]), "at_ms": 1000 * b + i, "rule_version": f"v{b % 2}"}
                    for i in range(rnd.randrange(1, 700))])
    # ids the script's JSON argument must carry byte for byte: quotes, backslashes, non-ASCII, controls
    odd = ['c"q', "c\\b", "cé☃", "c\x01\n", "c{x}", "c 1"]
    out.append([{"customer_id": cid, "tag": f"odd_{j}", "op": "add", "at_ms": 8000 + j, "rule_version": 'v"1'}
                for j, cid in enumerate(odd)])
    # one tag added for more customers than a script command takes arguments: split
    out.append([{"customer_id": f"m{i}", "tag": "wide", "op": "add", "at_ms": 9000, "rule_version": "v1"}
                for i in range(SCRIPT_CHUNK * 2 + 17)])
    return out


def snapshot(r: redis.Redis, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in r.scan_iter(f"{prefix}:*"):
        name = key.decode()[len(prefix):]
        kind = r.type(key)
        out[name] = r.hgetall(key) if kind == b"hash" else r.get(key) if kind == b"string" else r.smembers(key)
    return out


async def test_a_scripted_flush_leaves_redis_as_the_pipeline_does(own_redis: OwnRedis) -> None:  # noqa: F811
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    scripted = RedisTagSink(aioredis.from_url(url), prefix="s", scripted=True)
    piped = RedisTagSink(aioredis.from_url(url), prefix="p")
    try:
        for batch in batches(seed=5):
            for sink in (scripted, piped):
                for change in batch:
                    sink.add(change)
                await sink.flush()
        r = redis.Redis.from_url(url)
        got, want = snapshot(r, "s"), snapshot(r, "p")
        assert got == want and len(want) > 200
        assert r.hgetall("s:tags:cé☃").keys() == {b"odd_2"} and r.smembers("s:tag:odd_0") == {b'c"q'}
        assert len(got[":tag:wide"]) == SCRIPT_CHUNK * 2 + 17
        r.close()
    finally:
        await scripted.close()
        await piped.close()


async def test_an_acl_user_without_eval_gets_the_pipeline(own_redis: OwnRedis) -> None:  # noqa: F811
    admin = redis.Redis(port=own_redis.port)
    admin.execute_command("ACL", "SETUSER", "noeval", "on", ">pw-noeval-1", "~*", "+@all", "-@scripting")
    sink = RedisTagSink(aioredis.from_url(f"redis://noeval:pw-noeval-1@127.0.0.1:{own_redis.port}/0"), prefix="a",
                        scripted=True)
    try:
        sink.add({"customer_id": "c1", "tag": "vip", "op": "add", "at_ms": 1, "rule_version": "v"})
        await sink.flush()
        assert admin.smembers("a:tag:vip") == {b"c1"} and set(admin.hgetall("a:tags:c1")) == {b"vip"}
    finally:
        await sink.close()
        admin.close()


async def test_a_fenced_flush_writes_nothing_once_a_later_owner_wrote_one_of_its_partitions(
        own_redis: OwnRedis) -> None:  # noqa: F811
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    paused = RedisTagSink(aioredis.from_url(url), prefix="f", scripted=True)
    later = RedisTagSink(aioredis.from_url(url), prefix="f", scripted=True)
    r = redis.Redis.from_url(url)

    def change(cid: str, tag: str, op: str = "add") -> dict[str, Any]:
        return {"customer_id": cid, "tag": tag, "op": op, "at_ms": 1, "rule_version": "v"}

    try:
        paused.add(change("c0", "vip"))
        paused.add(change("c1", "vip"))
        await paused.flush(Fence(1_000, frozenset({0, 1})))
        paused.add(change("c1", "new"))  # the same owner's next batch: the same token passes
        await paused.flush(Fence(1_000, frozenset({1})))
        later.add(change("c1", "vip", "remove"))
        await later.flush(Fence(2_000, frozenset({1})))
        assert r.get(fence_key("f", 0)) == b"1000" and r.get(fence_key("f", 1)) == b"2000"
        assert 0 < r.pttl(fence_key("f", 1)) <= FENCE_TTL_MS
        before = snapshot(r, "f")

        paused.add(change("c1", "vip"))  # the paused worker's stale view of c1
        paused.add(change("c0", "stale"))
        later_owner = r"partition 1 was written by a later owner \(fence token 2000 > ours, 1000\)"
        with pytest.raises(RedisFenced, match=later_owner):
            await paused.flush(Fence(1_000, frozenset({0, 1})))
        assert snapshot(r, "f") == before  # nothing of the refused flush, not even partition 0's change
        await paused.flush(Fence(1_000, frozenset({0})))  # dropped, not kept for the next flush
        assert snapshot(r, "f") == before

        paused.add(change("c0", "mine"))  # partition 0 is still its own
        await paused.flush(Fence(1_000, frozenset({0})))
        assert set(r.hgetall("f:tags:c0")) == {b"vip", b"mine"}
        assert set(r.hgetall("f:tags:c1")) == {b"new"} and r.smembers("f:tag:vip") == {b"c0"}
        r.set(fence_key("f", 0), "not a token")  # not ours: no fence, overwritten
        paused.add(change("c0", "again"))
        await paused.flush(Fence(1_000, frozenset({0})))
        assert r.get(fence_key("f", 0)) == b"1000" and b"again" in r.hgetall("f:tags:c0")
    finally:
        r.close()
        await paused.close()
        await later.close()
