"""Redis unavailable mid-load: the worker backs off and retries, reports it, loses and doubles nothing."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import urlopen

import orjson
import pytest

from streams.tools.generator import RetailGenerator

from .conftest import Stack, WorkerProc, free_port
from .faultcheck import MONOTONE_TAGS, RULES, await_same_state, reference
from .test_faults import CUSTOMERS, final_tags, monotone_histories, quiet_for, wait_processed


class OwnRedis:
    """A redis-server of this test's own (AOF on, so a stop/start keeps its data)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir",
                                      str(self.dir), "--appendonly", "yes", "--save", ""],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        ping = ["redis-cli", "-p", str(self.port), "ping"]
        while subprocess.run(ping, capture_output=True).stdout.strip() != b"PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    r = OwnRedis(tmp_path)
    r.start()
    yield r
    r.stop()


def test_redis_outage_loses_nothing(stack: Stack, own_redis: OwnRedis) -> None:
    """Redis goes away for 30 s mid-load: the worker reports it (metrics, readiness), stays alive,
    and once Redis is back ends with exactly the engine's feature values and tags for the input."""
    events = [e for e in RetailGenerator(seed=17, customers=CUSTOMERS).take(3000) if e.valid]
    want_features, want_tags = reference(events)
    metrics_port = free_port()
    local = Stack(stack.bootstrap, f"redis://127.0.0.1:{own_redis.port}/0", stack.dir)
    w = WorkerProc(local, f"outage-{uuid.uuid4().hex[:6]}", rules=RULES,
                   extra_env={"TAGSTREAM_METRICS__PORT": str(metrics_port),
                              "TAGSTREAM_REDIS__RETRY_BACKOFF_MAX_MS": "1000",
                              "TAGSTREAM_REDIS__TIMEOUT_MS": "1000"}).start()
    try:
        half = len(events) // 2
        produce_events(w, events[:half])
        wait_processed(w, metrics_port, half // 2)
        own_redis.stop()  # Redis goes away mid-stream
        produce_events(w, events[half:])
        time.sleep(30)  # Redis stays away for 30 s
        w.assert_alive()
        text = urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        errors = [ln for ln in text.splitlines() if ln.startswith("tagstream_redis_errors_total ")]
        assert errors and float(errors[0].split()[1]) > 0, "redis failures are reported in metrics"
        with pytest.raises(HTTPError) as not_ready:  # ... and in the readiness probe
            urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=5)
        assert not_ready.value.code == 503 and b'"redis":false' in not_ready.value.read()
        assert urlopen(f"http://127.0.0.1:{metrics_port}/livez", timeout=5).status == 200
        own_redis.start()  # back: the worker catches up
        deadline = time.monotonic() + 30
        while not _ready(metrics_port):
            assert time.monotonic() < deadline, "worker did not become ready again after Redis came back"
            time.sleep(0.5)
        await_same_state(w, want_features, want_tags, lambda: final_tags(w))
        changes = [orjson.loads(r.value) for r in w.consume("tags", until=quiet_for(6))]
        assert monotone_histories(changes) == {(c, t): ["add"] for c, tags in want_tags.items()
                                               for t in tags if t in MONOTONE_TAGS}
    finally:
        w.stop()


def produce_events(w: WorkerProc, events: list[Any]) -> None:
    by_source: dict[str, list[bytes]] = {}
    for e in events:
        by_source.setdefault(e.source, []).append(e.value)
    for s, values in by_source.items():
        w.produce(s, values)


def _ready(port: int) -> bool:
    try:
        return urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).status == 200
    except HTTPError:
        return False


async def test_a_redis_that_stops_answering_times_the_flush_out_and_it_is_retried(own_redis: OwnRedis) -> None:
    """The worker's sink client has no per-reply timeout (it armed a timer per command): the flush's
    round trip is bounded instead. Redis accepts the writes but answers nothing for 1.5 s (CLIENT
    PAUSE): the flush gives up after ``timeout_ms``, counts the error, reports unhealthy, retries,
    and the writes are in once Redis answers."""
    from prometheus_client import CollectorRegistry

    from streams.io.metrics import Metrics
    from streams.io.redis_client import async_client, sync_client
    from streams.io.redis_sink import RedisTagSink
    from streams.settings import RedisSettings

    rs = RedisSettings(url=f"redis://127.0.0.1:{own_redis.port}/0", timeout_ms=300)
    metrics = Metrics.create(CollectorRegistry())
    sink = RedisTagSink(async_client(rs, timeout_ms=rs.timeout_ms, per_read=False), prefix="p", metrics=metrics,
                        backoff_max_ms=100, timeout_ms=rs.timeout_ms)
    admin = sync_client(rs)
    try:
        sink.add({"customer_id": "c1", "tag": "vip", "op": "add", "at_ms": 1, "rule_version": "v"})
        await sink.flush()  # connected before the pause
        admin.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
        sink.add({"customer_id": "c2", "tag": "vip", "op": "add", "at_ms": 2, "rule_version": "v"})
        start = time.monotonic()
        await sink.flush()
        waited = time.monotonic() - start
        assert metrics.redis_errors._value.get() >= 1, "the paused round trip was not timed out"
        assert sink.healthy
        assert waited >= 1.0, "the flush returned before Redis answered"
        assert admin.smembers("p:tag:vip") == {b"c1", b"c2"}
    finally:
        await sink.close()
        admin.close()
