"""Integration fixtures: the REAL local stack (Apache Kafka 4.x from Maven jars, redis-server),
started once per test session on free loopback ports by deploy/local/stack.sh, and tagstream
workers run as real subprocesses against it. Nothing here is mocked; if a service cannot start
the tests fail (they are never skipped)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from streams.io.redis_sink import tags_key

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy" / "local" / "stack.sh"
RULES = Path(__file__).with_name("rules")


_handed_out: set[int] = set()




def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range (32768+), so no outgoing
    connection (Kafka clients open many) can take it between this check and the server's bind."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port in 20000-32000")


@dataclass(frozen=True)
class Stack:
    bootstrap: str
    redis_url: str
    dir: Path
    sasl_bootstrap: str = ""
    """A SASL_PLAINTEXT listener of the same broker (SCRAM user tagstream / tagstream-secret)."""
    ssl_bootstrap: str = ""
    """An SSL listener of the same broker; its CA is ``dir / "tls" / "ca.pem"``."""


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    d = tmp_path_factory.mktemp("stack")
    env = dict(os.environ, TAGSTREAM_STACK_DIR=str(d), KAFKA_PORT=str(free_port()),
               KAFKA_CONTROLLER_PORT=str(free_port()), REDIS_PORT=str(free_port()), KAFKA_PARTITIONS="2",
               KAFKA_SASL_PORT=str(free_port()), KAFKA_SCRAM_USER="tagstream", KAFKA_SCRAM_PASSWORD="tagstream-secret",
               KAFKA_SSL_PORT=str(free_port()))
    up = subprocess.run(["bash", str(STACK), "up", "kafka", "redis"], env=env, capture_output=True, text=True)
    if up.returncode != 0:
        subprocess.run(["bash", str(STACK), "down"], env=env)
        pytest.fail(f"local stack did not start:\n{up.stdout}\n{up.stderr}")
    try:
        yield Stack(f"127.0.0.1:{env['KAFKA_PORT']}", f"redis://127.0.0.1:{env['REDIS_PORT']}/0", d,
                    f"127.0.0.1:{env['KAFKA_SASL_PORT']}", f"127.0.0.1:{env['KAFKA_SSL_PORT']}")
    finally:
        subprocess.run(["bash", str(STACK), "down"], env=env, capture_output=True)


@dataclass
class WorkerProc:
    """A real `tagstream worker` subprocess with its own topics, app id and Redis prefix."""

    stack: Stack
    name: str
    rules: Path = RULES
    extra_env: dict[str, str] = field(default_factory=dict)
    instance: str = "1"
    """Tells apart workers of one group (same name) in their log file names."""
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    metrics_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        # A port passed in extra_env is the one the worker serves: wait_ready and the tests must
        # poll that one (polling the default field's port waited 90 s for nothing).
        if "TAGSTREAM_METRICS__PORT" in self.extra_env:
            self.metrics_port = int(self.extra_env["TAGSTREAM_METRICS__PORT"])
        if "TAGSTREAM_API__PORT" in self.extra_env:
            self.api_port = int(self.extra_env["TAGSTREAM_API__PORT"])

    @property
    def prefix(self) -> str:
        return f"it-{self.name}"

    def topic(self, which: str) -> str:
        return f"{self.prefix}.{which}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TAGSTREAM_APP_ID": self.prefix,
            "TAGSTREAM_RULES_PATH": str(self.rules),
            "TAGSTREAM_DATA_DIR": str(self.stack.dir / f"data-{self.name}-{self.instance}"),
            "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": self.stack.bootstrap,
            "TAGSTREAM_KAFKA__CLICKSTREAM_TOPIC": self.topic("clickstream"),
            "TAGSTREAM_KAFKA__POS_TOPIC": self.topic("pos"),
            "TAGSTREAM_KAFKA__ORDERS_TOPIC": self.topic("orders"),
            "TAGSTREAM_KAFKA__DEADLETTER_TOPIC": self.topic("deadletter"),
            "TAGSTREAM_KAFKA__TAG_CHANGES_TOPIC": self.topic("tags"),
            "TAGSTREAM_KAFKA__PARTITIONS": "2",
            "TAGSTREAM_REDIS__URL": self.stack.redis_url,
            "TAGSTREAM_REDIS__KEY_PREFIX": self.prefix,
            "TAGSTREAM_METRICS__PORT": str(self.metrics_port),
            "TAGSTREAM_API__PORT": str(self.api_port),
            "TAGSTREAM_LOGLEVEL": "info",
            # Each event counts once only while its id is in the customer's de-duplication memory
            # (1,000 ids by default, docs/operations.md). The generator's Zipf head customer gets
            # ~30 % of a test's events (1,181 of 4,000 in the SIGKILL test), so a replay after a
            # crash or a re-read of a hole outgrew the default and counted some events twice:
            # the tests check the guarantee as documented, with a memory that holds every id.
            "TAGSTREAM_ENGINE__DEDUP_MAX_IDS": "10000",
            **self.extra_env,
        }

    def start(self) -> WorkerProc:
        self.log = self.stack.dir / f"worker-{self.name}-{self.instance}.log"
        with self.log.open("ab") as f:
            self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=self.env(),
                                         stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def wait_ready(self, timeout_s: float = 90) -> WorkerProc:
        """Until the worker's readiness probe says ready: its topics exist and its state is recovered
        (a test that reads a changelog earlier makes the broker auto-create it with its own default
        partition count, which the worker then refuses)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.assert_alive()
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=5).status == 200:
                    return self
            except OSError:
                pass
            assert time.monotonic() < deadline, f"worker not ready after {timeout_s:.0f} s:\n{self.tail()}"
            time.sleep(0.2)

    def assert_alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"worker died; log:\n{self.tail()}"

    def tail(self, n: int = 80) -> str:
        """The end of the worker's log, without faust's recovery tables."""
        if self.log is None or not self.log.exists():
            return ""
        lines = [ln for ln in self.log.read_text(errors="replace").splitlines()
                 if not ln.lstrip().startswith(("|", "+"))]
        return "\n".join(lines[-n:])

    def group_tail(self, n: int = 80) -> str:
        """The ends of the logs of every worker instance of this group (same name)."""
        logs = sorted(self.stack.dir.glob(f"worker-{self.name}-*.log"))
        parts = []
        for log in logs:
            lines = [ln for ln in log.read_text(errors="replace").splitlines()
                     if not ln.lstrip().startswith(("|", "+"))]
            parts.append(f"--- {log.name} ---\n" + "\n".join(lines[-n:]))
        return "\n".join(parts)

    # -- I/O helpers against the real services ------------------------------------------------

    def produce(self, source: str, events: list[Any], *, key: bytes | None = None, **options: Any) -> None:
        """Sends events (dicts are JSON-encoded, bytes and None sent as they are) and waits for acks.

        ``options`` go to the AIOKafkaProducer (e.g. compression_type, max_request_size)."""
        from aiokafka import AIOKafkaProducer

        async def run() -> None:
            p = AIOKafkaProducer(bootstrap_servers=self.stack.bootstrap, **options)
            await p.start()
            try:
                for e in events:
                    value = e if isinstance(e, bytes) or e is None else orjson.dumps(e)
                    await p.send_and_wait(self.topic(source), value, key=key)
            finally:
                await p.stop()

        asyncio.run(run())

    def consume(self, which: str, *, until: Any, timeout_s: float = 120,
                isolation_level: str = "read_uncommitted") -> list[Any]:
        """Reads a topic from the start until ``until(records)`` is true; returns aiokafka records."""
        from aiokafka import AIOKafkaConsumer

        async def run() -> list[Any]:
            c = AIOKafkaConsumer(self.topic(which), bootstrap_servers=self.stack.bootstrap,
                                 auto_offset_reset="earliest", enable_auto_commit=False,
                                 group_id=f"probe-{uuid.uuid4().hex[:8]}", isolation_level=isolation_level)
            await c.start()
            out: list[Any] = []
            deadline = time.monotonic() + timeout_s
            try:
                while time.monotonic() < deadline:
                    batch = await c.getmany(timeout_ms=500)
                    for recs in batch.values():
                        out.extend(recs)
                    if until(out):
                        return out
                    self.assert_alive()
            finally:
                await c.stop()
            raise AssertionError(f"timed out after {timeout_s}s on {which}; got {len(out)} records; "
                                 f"worker logs:\n{self.group_tail()}")

        return asyncio.run(run())

    def tag_changes(self, *, until: Any, timeout_s: float = 120) -> list[dict[str, Any]]:
        recs = self.consume("tags", until=lambda rs: until([orjson.loads(r.value) for r in rs]),
                            timeout_s=timeout_s)
        return [orjson.loads(r.value) for r in recs]

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.stack.redis_url)

    def tags_of(self, customer_id: str) -> dict[str, Any]:
        raw = self.redis().hgetall(tags_key(self.prefix, customer_id))
        return {text(k): orjson.loads(v) for k, v in raw.items()}


def text(value: bytes | str) -> str:
    """A Redis reply item as text (redis-py types replies as bytes or str)."""
    return value.decode() if isinstance(value, bytes) else value


@pytest.fixture(scope="module")
def worker(stack: Stack, request: pytest.FixtureRequest) -> Iterator[WorkerProc]:
    # ready before a test's first event: its tags come from second-scale windows that evaluate at
    # the worker's clock (a start slower than the window would leave nothing to see)
    w = WorkerProc(stack, request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")).start().wait_ready()
    try:
        yield w
    finally:
        w.stop()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def stack_cmd(stack: Stack, *args: str) -> None:
    """Runs deploy/local/stack.sh against the session stack (e.g. ``"stop", "kafka"`` / ``"up", "kafka"``)."""
    env = dict(os.environ, TAGSTREAM_STACK_DIR=str(stack.dir))
    # the session fixture's ports, read back from the rendered broker config
    props = (stack.dir / "kafka" / "server.properties").read_text()
    for line in props.splitlines():
        if line.startswith("listeners="):
            for part in line.split("=", 1)[1].split(","):
                name, _, port = part.rpartition(":")
                key = {"PLAINTEXT://127.0.0.1": "KAFKA_PORT", "CONTROLLER://127.0.0.1": "KAFKA_CONTROLLER_PORT",
                       "SASL_PLAINTEXT://127.0.0.1": "KAFKA_SASL_PORT", "SSL://127.0.0.1": "KAFKA_SSL_PORT"}[name]
                env[key] = port
    subprocess.run(["bash", str(STACK), *args], env=env, check=True, capture_output=True)
