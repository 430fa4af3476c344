"""The Redis commands of a flush leave Redis as applying the tag changes one by one would; which
errors a flush waits out (outages, cluster failovers) and which it raises."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.exceptions import (
    ClusterDownError,
    MovedError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from streams.io.redis_sink import RedisTagSink, audience_key, tags_key

changes_st = st.lists(st.tuples(st.sampled_from(["c1", "c2", "c3"]), st.sampled_from(["a", "b"]),
                                st.sampled_from(["add", "remove"]), st.integers(0, 100)), max_size=30)


def as_changes(raw: list[tuple[str, str, str, int]]) -> list[dict[str, Any]]:
    return [{"customer_id": c, "tag": t, "op": op, "at_ms": at, "rule_version": "v1"} for c, t, op, at in raw]


def one_by_one(changes: list[dict[str, Any]]) -> tuple[dict[str, dict[str, str]], dict[str, set[str]]]:
    hashes: dict[str, dict[str, str]] = {}
    sets: dict[str, set[str]] = {}
    for c in changes:
        h = hashes.setdefault(tags_key("p", c["customer_id"]), {})
        s = sets.setdefault(audience_key("p", c["tag"]), set())
        if c["op"] == "add":
            h[c["tag"]] = orjson.dumps({"since_ms": c["at_ms"], "rule_version": c["rule_version"]}).decode()
            s.add(c["customer_id"])
        else:
            h.pop(c["tag"], None)
            s.discard(c["customer_id"])
    return hashes, sets


def apply(commands: list[tuple[str, str, list[str]]]) -> tuple[dict[str, dict[str, str]], dict[str, set[str]]]:
    hashes: dict[str, dict[str, str]] = {}
    sets: dict[str, set[str]] = {}
    for cmd, key, args in commands:
        if cmd == "HSET":
            hashes.setdefault(key, {}).update(zip(args[::2], args[1::2], strict=True))
        elif cmd == "HDEL":
            for f in args:
                hashes.setdefault(key, {}).pop(f, None)
        elif cmd == "SADD":
            sets.setdefault(key, set()).update(args)
        else:
            assert cmd == "SREM"
            sets.setdefault(key, set()).difference_update(args)
    return hashes, sets


def nonempty(state: tuple[dict[str, Any], dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    return tuple({k: v for k, v in part.items() if v} for part in state)  # type: ignore[return-value]


@given(changes_st)
def test_coalesced_commands_equal_one_by_one(raw: list[tuple[str, str, str, int]]) -> None:
    changes = as_changes(raw)
    sink = RedisTagSink(None, prefix="p")  # type: ignore[arg-type]  # commands() does no I/O
    commands = sink.commands(changes)
    assert nonempty(apply(commands)) == nonempty(one_by_one(changes))
    # one command per key and kind at most: the round trip stays small
    assert len({(cmd, key) for cmd, key, _ in commands}) == len(commands)


class _FlakyPipeline:
    def __init__(self, client: _FlakyClient) -> None:
        self._client = client
        self.commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any) -> None:
        self.commands.append(args)

    async def execute(self) -> list[Any]:
        if self._client.failures:
            raise self._client.failures.pop(0)
        self._client.written.extend(self.commands)
        return []


class _FlakyClient:
    """Fails its first pipelines with the given errors, then writes."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.written: list[tuple[Any, ...]] = []

    def pipeline(self, transaction: bool = False) -> _FlakyPipeline:
        return _FlakyPipeline(self)


@pytest.mark.parametrize("error", [
    ClusterDownError("CLUSTERDOWN The cluster is down"), TryAgainError("TRYAGAIN"),
    MovedError("3999 127.0.0.1:7001"), SlotNotCoveredError("slot 3999 not covered"),
    RedisClusterException("Redis Cluster cannot be connected"), RedisConnectionError("refused"),
])
async def test_cluster_failover_errors_are_waited_out_and_the_batch_written_whole(error: Exception) -> None:
    client = _FlakyClient([error, error])
    sink = RedisTagSink(client, prefix="p", hash_tag=True, backoff_max_ms=10)  # type: ignore[arg-type]
    sink.add({"customer_id": "c1", "tag": "vip", "op": "add", "at_ms": 1, "rule_version": "v"})
    await sink.flush()
    assert [args[:2] for args in client.written] == [("HSET", "p:tags:{c1}"), ("SADD", "p:tag:vip")]
    assert sink.healthy


async def test_other_redis_errors_raise_and_keep_the_batch() -> None:
    client = _FlakyClient([ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")])
    sink = RedisTagSink(client, prefix="p")  # type: ignore[arg-type]
    sink.add({"customer_id": "c1", "tag": "vip", "op": "add", "at_ms": 1, "rule_version": "v"})
    with pytest.raises(ResponseError):
        await sink.flush()
    await sink.flush()  # the batch was kept: written on the next flush
    assert [args[:2] for args in client.written] == [("HSET", "p:tags:c1"), ("SADD", "p:tag:vip")]
