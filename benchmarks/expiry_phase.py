"""One phase of the expiry benchmark: a worker on one rule group at one clock speed, readied, put
under one steady load, then given the tail in which the load's due times fall; then replayed and
analysed (``PhaseResult``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import yaml

from .expiry_analysis import PhaseResult, analyze
from .expiry_groups import STEPS_PER_WINDOW, WINDOWS_MS, group_rules
from .expiry_kafka import cleanup, consume_tags, count_ticks
from .expiry_replay import REPLAY_FLAG
from .expiry_worker import WORKER_FLAG, cpu_seconds, free_port, scrape, wall_ms

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

CUT_MARGIN_MS = 1_000
"""Completeness counts expiries due up to this long (wall) before the end of the tail: time for the
last ones to be published. Every due time of the load falls at least 2 s before the tail ends."""


class Phase:
    """One worker, one rule group, one clock speed, one steady load."""

    def __init__(self, args: argparse.Namespace, run_id: str, name: str, group: str, speed: float,
                 workdir: Path, src: Path) -> None:
        self.args = args
        self.src = src  # the code snapshot the worker runs
        self.name, self.group, self.speed = name, group, speed
        self.prefix = f"bx-{run_id}-{name.replace('@', '-').replace('.', '_')}"
        self.dir = workdir / self.prefix
        self.dir.mkdir(parents=True)
        self.rules_path = self.dir / "rules.yaml"
        self.rules_path.write_text(yaml.safe_dump(group_rules(group), sort_keys=False))
        self.metrics_port = free_port()
        self.origin_ms = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.records: list[tuple[int, bytes]] = []  # (kafka create time ms, value) of the tag topic
        self.sent: list[bytes] = []  # values of the load events, in send order (warm-up excluded)
        self.env: dict[str, str] = {}
        self.cut_clock_ms = 0
        self.expected: dict[str, str] = {}  # change_id -> "tag op" of the replay's expiry changes
        self.wall_under: list[float] = []  # wall-equivalent lateness (ms) of expiries due during the load

    def topic(self, which: str) -> str:
        return f"{self.prefix}.{which}"

    def scaled_now(self) -> int:
        """The worker's clock now (same formula as streams.engine.clock.ScaledClock)."""
        return self.origin_ms + int((wall_ms() - self.origin_ms) * self.speed)

    def start_worker(self) -> None:
        a = self.args
        env = self.env = {
            **os.environ,
            "TAGSTREAM_APP_ID": self.prefix,
            "TAGSTREAM_RULES_PATH": str(self.rules_path),
            "TAGSTREAM_DATA_DIR": str(self.dir / "data"),
            "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": a.bootstrap_servers,
            "TAGSTREAM_KAFKA__CLICKSTREAM_TOPIC": self.topic("clickstream"),
            "TAGSTREAM_KAFKA__POS_TOPIC": self.topic("pos"),
            "TAGSTREAM_KAFKA__ORDERS_TOPIC": self.topic("orders"),
            "TAGSTREAM_KAFKA__DEADLETTER_TOPIC": self.topic("deadletter"),
            "TAGSTREAM_KAFKA__TAG_CHANGES_TOPIC": self.topic("tags"),
            "TAGSTREAM_KAFKA__PARTITIONS": str(a.partitions),
            "TAGSTREAM_REDIS__URL": a.redis_url,
            "TAGSTREAM_REDIS__KEY_PREFIX": self.prefix,
            "TAGSTREAM_METRICS__PORT": str(self.metrics_port),
            "TAGSTREAM_API__ENABLED": "false",
            "TAGSTREAM_LOGLEVEL": a.worker_loglevel,
            "TAGSTREAM_ENGINE__CLOCK_SPEED": repr(self.speed),
            "TAGSTREAM_ENGINE__CLOCK_ORIGIN_MS": str(self.origin_ms),
            "TAGSTREAM_ENGINE__TIMER_INTERVAL_MS": str(a.timer_interval_ms),
        }
        log = (self.dir / "worker.log").open("ab")
        # `tagstream worker`, under a command line of its own (other tools on a shared machine may
        # stop processes by the pattern "streams.cli worker").
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.expiry", WORKER_FLAG], env=env, cwd=self.src,
                                     stdout=log, stderr=subprocess.STDOUT)

    def stop_worker(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def assert_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            tail = (self.dir / "worker.log").read_text(errors="replace")[-3000:]
            rc = self.proc.returncode if self.proc else None
            raise RuntimeError(f"worker of phase {self.name} died (exit {rc}, log {self.dir / 'worker.log'}):\n{tail}")

    def event(self, i: int, customer: int) -> tuple[bytes, bytes]:
        cid = f"c{customer}"
        value = orjson.dumps({"event_id": f"{self.prefix}-{i}", "ts": self.scaled_now(), "type": "page_view",
                              "session_id": f"{cid}-s{i % 3}", "user_id": cid})
        return cid.encode(), value

    async def run(self) -> PhaseResult:
        from aiokafka import AIOKafkaProducer

        from streams.io.topics import ensure_topics

        a = self.args
        res = PhaseResult(self.name, self.group, self.speed, a.rate, a.duration, a.customers)
        await ensure_topics(a.bootstrap_servers, [self.topic(w) for w in ("clickstream", "pos", "orders",
                                                                            "deadletter", "tags")],
                            a.partitions)
        self.origin_ms = wall_ms()
        self.start_worker()
        stop = asyncio.Event()
        consumer = asyncio.create_task(consume_tags(a.bootstrap_servers, self.topic("tags"), f"{self.prefix}-probe",
                                                    self.records, stop))
        producer = AIOKafkaProducer(bootstrap_servers=a.bootstrap_servers, acks=1, linger_ms=5)
        await producer.start()
        try:
            await self.wait_ready(producer)
            pid = self.proc.pid if self.proc else 0
            res.worker_idle_cpu_share = await self.idle_cpu_share(pid)
            print(f"  [{self.name}] worker ready; load {a.rate:,.0f} ev/s x {a.duration:.0f} s over "
                  f"{a.customers:,} customers, clock x{self.speed:,.0f}", flush=True)
            t0_wall, t1_wall = await self.run_load(producer, pid, res)
            await self.run_tail(res, t0_wall, t1_wall)
        finally:
            stop.set()
            await consumer
            await producer.stop()
            self.stop_worker()
            if not a.keep:
                await cleanup(a.bootstrap_servers, a.redis_url, self.prefix)
        self.expected = self.replay()
        self.wall_under = analyze(res, self.records, speed=self.speed, origin_ms=self.origin_ms,
                                  cut_clock_ms=self.cut_clock_ms, expected=self.expected, t0_wall=t0_wall,
                                  t1_wall=t1_wall)
        return res

    async def wait_ready(self, producer: AIOKafkaProducer) -> None:
        """Until a warm-up event came out as a tag change (topics, assignment, recovery done), then 1 s."""
        deadline = time.monotonic() + 120
        while not any(b'"warmup"' in v for _, v in self.records):
            self.assert_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker of phase {self.name} produced nothing in 120 s")
            _key, value = self.event(-1, 0)
            await producer.send_and_wait(self.topic("clickstream"), value.replace(b'"c0"', b'"warmup"'),
                                         key=b"warmup")
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)

    @staticmethod
    async def idle_cpu_share(pid: int) -> float:
        """The share of a core the ready worker uses with no load, over 3 s."""
        idle0, ti = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(3.0)
        return (cpu_seconds(pid) - idle0) / (time.monotonic() - ti)

    async def run_load(self, producer: AIOKafkaProducer, pid: int, res: PhaseResult) -> tuple[int, int]:
        """The steady load, and the worker's CPU time under it; returns its wall start and end (ms)."""
        a = self.args
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        t0_wall = wall_ms()
        n = int(a.rate * a.duration)
        await self.send_events(producer, n, t0)
        t1 = time.monotonic()
        t1_wall = wall_ms()
        cpu1 = cpu_seconds(pid)
        m_load = scrape(self.metrics_port)
        res.events_sent = n
        res.load_wall_s = t1 - t0
        res.worker_cpu_s_load = cpu1 - cpu0
        res.cpu_us_per_event = (cpu1 - cpu0) / n * 1e6 if n else 0.0
        res.worker_events_in_at_load_end = m_load.get("events_in", 0.0)
        return t0_wall, t1_wall

    async def send_events(self, producer: AIOKafkaProducer, n: int, t0: float) -> None:
        """``n`` events at ``--rate`` from ``t0`` (monotonic), customers drawn uniformly (``--seed``)."""
        a = self.args
        rng = random.Random(a.seed)
        pending: list[asyncio.Future[Any]] = []
        last_print = t0
        for i in range(n):
            due = t0 + i / a.rate
            if due - time.monotonic() >= 0.005:
                if pending:
                    await asyncio.gather(*pending)
                    pending.clear()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            key, value = self.event(i, rng.randrange(a.customers))
            self.sent.append(value)
            pending.append(await producer.send(self.topic("clickstream"), value, key=key))
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
            if time.monotonic() - last_print >= 10:
                last_print = time.monotonic()
                self.assert_alive()
                print(f"  [{self.name}] {i:,}/{n:,} events, {len(self.records):,} tag changes", flush=True)
        if pending:
            await asyncio.gather(*pending)
        await producer.flush()

    async def run_tail(self, res: PhaseResult, t0_wall: int, t1_wall: int) -> None:
        """Waits until everything scheduled during the load fell due (one window + resolution), then
        reads the worker's metrics and counts its ticks."""
        a = self.args
        window_ms = WINDOWS_MS.get(self.group)
        tail_s = 3.0 + (window_ms * (1 + 1 / STEPS_PER_WINDOW) / self.speed / 1000
                        if window_ms and window_ms / self.speed < 120_000 else 0.0)
        print(f"  [{self.name}] load done in {res.load_wall_s:.1f} s (worker CPU {res.worker_cpu_s_load:.1f} s, "
              f"{res.cpu_us_per_event:.0f} us/event, idle {res.worker_idle_cpu_share:.0%} of a core); "
              f"tail {tail_s:.0f} s", flush=True)
        await asyncio.sleep(tail_s)
        self.assert_alive()
        cut_wall = wall_ms() - CUT_MARGIN_MS
        self.cut_clock_ms = self.origin_ms + int((cut_wall - self.origin_ms) * self.speed)
        res.metrics_end = scrape(self.metrics_port)
        res.ticks, res.ticks_during_load, res.customer_records = await count_ticks(
            a.bootstrap_servers, self.prefix, a.partitions, t0_wall, t1_wall)

    def replay(self) -> dict[str, str]:
        """The expiry changes the engine should have made: ``expiry_replay.replay_expiries`` on the load's
        events, run on the worker's code snapshot with the worker's environment (engine settings)."""
        inp, out = self.dir / "replay-in.json", self.dir / "replay-out.json"
        inp.write_bytes(orjson.dumps({"rules": str(self.rules_path), "cut_clock_ms": self.cut_clock_ms,
                                      "events": [v.decode() for v in self.sent]}))
        subprocess.run([sys.executable, "-m", "benchmarks.expiry", REPLAY_FLAG, str(inp), str(out)],
                       env=self.env, cwd=self.src, check=True)
        expected: dict[str, str] = orjson.loads(out.read_bytes())
        return expected
