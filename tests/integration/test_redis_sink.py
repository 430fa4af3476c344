"""The tag sink's two ways of writing a flush against a real redis-server: one script call (the
worker's, ``scripted``) and a pipeline of commands (Redis Cluster, or an ACL user without EVAL)
leave Redis in the same state."""

from __future__ import annotations

import random
from typing import Any

import redis
import redis.asyncio as aioredis

from streams.io.redis_sink import SCRIPT_CHUNK, RedisTagSink

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
        out[name] = r.hgetall(key) if r.type(key) == b"hash" else r.smembers(key)
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
