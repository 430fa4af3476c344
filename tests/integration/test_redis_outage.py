"""Redis unavailable mid-stream: the worker backs off and retries, reports it, loses nothing."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import urlopen

import pytest

from .conftest import Stack, WorkerProc, free_port, now_ms
from .test_pipeline import of, pos_sale


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
    metrics_port = free_port()
    local = Stack(stack.bootstrap, f"redis://127.0.0.1:{own_redis.port}/0", stack.dir)
    w = WorkerProc(local, f"outage-{uuid.uuid4().hex[:6]}",
                   extra_env={"TAGSTREAM_METRICS__PORT": str(metrics_port),
                              "TAGSTREAM_REDIS__RETRY_BACKOFF_MAX_MS": "1000",
                              "TAGSTREAM_REDIS__TIMEOUT_MS": "1000"}).start()
    try:
        before, during = f"u-{uuid.uuid4().hex[:8]}", [f"u-{uuid.uuid4().hex[:8]}" for _ in range(5)]
        w.produce("pos", [pos_sale(before, 600.0, now_ms())])
        w.tag_changes(until=lambda cs: ("big_spender", "add", "event") in of(cs, before))
        own_redis.stop()  # Redis goes away mid-stream
        w.produce("pos", [pos_sale(c, 700.0, now_ms()) for c in during])
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
        changes = w.tag_changes(until=lambda cs: all(("big_spender", "add", "event") in of(cs, c) for c in during))
        for c in [before, *during]:
            assert "big_spender" in w.tags_of(c), c
        # (events held up by the outage may also earn `lapsed`, 4 s after the purchase: that's right)
        mine = [(c["customer_id"], c["op"], c["cause"]) for c in changes
                if c["customer_id"] in during and c["tag"] == "big_spender"]
        assert sorted(mine) == sorted((c, "add", "event") for c in during)  # nothing lost, nothing doubled
    finally:
        w.stop()


def _ready(port: int) -> bool:
    try:
        return urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).status == 200
    except HTTPError:
        return False
