"""Redis Cluster: a real three-node cluster (tests/integration/redis_cluster.py). The tag sink
splits a batch over the nodes that own its keys, one customer's keys sit in the slot of its id,
a worker with a ``redis+cluster://`` URL ends with the engine's tags, and a URL whose mode
disagrees with the server fails at start with a sentence saying which scheme to use."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from streams.io.redis_client import RedisModeError, async_client, check_mode, sync_client
from streams.io.redis_sink import RedisTagSink, audience_key, tags_key
from streams.settings import RedisSettings
from streams.tools.generator import RetailGenerator

from .conftest import REPO, Stack, WorkerProc, free_port, text
from .faultcheck import RULES, await_same_state, reference
from .redis_cluster import LocalRedisCluster
from .test_faults import CUSTOMERS, wait_processed
from .test_redis_outage import produce_events


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    c = LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield c
    finally:
        c.stop()


def cluster_tags(client: Any, prefix: str, customer_ids: list[str]) -> dict[str, set[str]]:
    out = {}
    for cid in customer_ids:
        tags = {text(t) for t in client.hkeys(tags_key(prefix, cid, hash_tag=True))}
        if tags:
            out[cid] = tags
    return out


def test_sink_writes_each_key_to_the_node_owning_its_slot(cluster: LocalRedisCluster, tmp_path: Path) -> None:
    rs = RedisSettings(url=cluster.url)
    prefix = f"sink-{uuid.uuid4().hex[:6]}"
    customers = [f"c{i:04d}" for i in range(300)]
    changes = [{"customer_id": cid, "tag": tag, "op": "add", "at_ms": 1000 + i, "rule_version": "v1"}
               for i, cid in enumerate(customers) for tag in ("vip", f"t{i % 7}")]
    changes += [{"customer_id": cid, "tag": "vip", "op": "remove", "at_ms": 5000, "rule_version": "v1"}
                for cid in customers[::3]]

    async def write() -> None:
        sink = RedisTagSink(async_client(rs), prefix=prefix, hash_tag=True)
        try:
            for c in changes:
                sink.add(c)
            await sink.flush()  # one batch spanning every node
            assert sink.healthy
        finally:
            await sink.close()
            await sink.close()  # idempotent

    asyncio.run(write())
    client = sync_client(rs)
    want = {cid: {f"t{i % 7}"} | ({"vip"} if i % 3 else set()) for i, cid in enumerate(customers)}
    assert cluster_tags(client, prefix, customers) == want
    assert {text(m) for m in client.smembers(audience_key(prefix, "vip"))} == {
        cid for i, cid in enumerate(customers) if i % 3}
    value = orjson.loads(client.hget(tags_key(prefix, "c0001", hash_tag=True), "t1") or b"null")
    assert value == {"since_ms": 1001, "rule_version": "v1"}

    # the CLI reads the same layout through the cluster client
    rules = tmp_path / "rules.yaml"  # the CLI checks --audience against the rule set in force
    rules.write_text("version: cluster-test\nfeatures:\n  - {name: events, agg: count}\ntags:\n"
                     + "".join(f"  - {{name: {t}, when: events >= 1}}\n"
                               for t in ["vip", *(f"t{i}" for i in range(7))]))
    env = {**os.environ, "TAGSTREAM_REDIS__URL": cluster.url, "TAGSTREAM_REDIS__KEY_PREFIX": prefix,
           "TAGSTREAM_RULES_PATH": str(rules), "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    cli = subprocess.run([sys.executable, "-m", "streams.cli", "tags", "--audience", "t1"],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert f"t1: {sum(1 for i in range(len(customers)) if i % 7 == 1)} customers" in cli.stdout
    cli = subprocess.run([sys.executable, "-m", "streams.cli", "tags", "c0001", "c0003"],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    lines = [ln.split()[0] for ln in cli.stdout.splitlines()]
    assert lines == ["c0001:", "t1", "vip", "c0003:", "t3"], cli.stdout

    # the server's own slot function: a customer's key is in its id's slot, on the node owning it
    node = cluster.node(cluster.ports[0])
    for cid in customers[:20]:
        assert node.cluster("keyslot", tags_key(prefix, cid, hash_tag=True)) == node.cluster("keyslot", cid)
    per_node = {p: len(cluster.node(p).keys(f"{prefix}:tags:*")) for p in cluster.ports}
    assert sum(per_node.values()) == len(customers)
    assert all(n > 0 for n in per_node.values()), f"customers not spread over the nodes: {per_node}"


def test_cluster_url_on_a_plain_server_fails_clearly(stack: Stack) -> None:
    plain_port = stack.redis_url.rsplit(":", 1)[1].split("/")[0]
    with pytest.raises(RedisModeError, match="cluster mode disabled: use redis://"):
        asyncio.run(check_mode(RedisSettings(url=f"redis+cluster://127.0.0.1:{plain_port}")))
    asyncio.run(check_mode(RedisSettings(url=stack.redis_url)))  # agreeing: passes


def test_plain_url_on_a_cluster_node_stops_the_worker_with_a_reason(cluster: LocalRedisCluster) -> None:
    with pytest.raises(RedisModeError, match=r"use redis\+cluster://"):
        asyncio.run(check_mode(RedisSettings(url=f"redis://127.0.0.1:{cluster.ports[1]}/0")))
    asyncio.run(check_mode(RedisSettings(url=cluster.url)))  # agreeing: passes
    # the worker checks before it touches Kafka: no broker needed to see the error
    env = {**os.environ, "TAGSTREAM_REDIS__URL": f"redis://127.0.0.1:{cluster.ports[1]}/0",
           "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    run = subprocess.run([sys.executable, "-m", "streams.cli", "worker"], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "names a Redis Cluster node: use redis+cluster://" in run.stderr
    assert "Traceback" not in run.stderr


def test_worker_on_a_cluster_ends_with_the_engines_tags(stack: Stack, cluster: LocalRedisCluster) -> None:
    events = [e for e in RetailGenerator(seed=29, customers=CUSTOMERS).take(2000) if e.valid]
    want_features, want_tags = reference(events)
    assert want_tags, "the input gives no customer a tag: the test would prove nothing"
    metrics_port = free_port()
    w = WorkerProc(stack, f"cluster-{uuid.uuid4().hex[:6]}", rules=RULES,
                   extra_env={"TAGSTREAM_REDIS__URL": cluster.url,
                              "TAGSTREAM_METRICS__PORT": str(metrics_port)}).start()
    client = redis.RedisCluster.from_url(cluster.url.replace("redis+cluster://", "redis://"))
    customers = [f"c{i:06d}" for i in range(CUSTOMERS)]
    try:
        produce_events(w, events)
        wait_processed(w, metrics_port, len(events) // 2)
        await_same_state(w, want_features, want_tags, lambda: cluster_tags(client, w.prefix, customers))
        for tag in {t for tags in want_tags.values() for t in tags}:
            holders = {cid for cid, tags in want_tags.items() if tag in tags}
            assert {text(m) for m in client.smembers(audience_key(w.prefix, tag))} == holders, tag
        # the standalone layout was not written beside the cluster one
        assert not any(client.exists(tags_key(w.prefix, cid)) for cid in want_tags)
    finally:
        w.stop()
