"""Expiry precision under load: how late do time-driven tag changes leave the worker?

    python -m benchmarks.expiry [--rate 2000 --duration 60 --customers 20000 --windows 10s,1h,24h,7d,30d]

For each window W (one *phase* each; method and results: benchmarks/EXPIRY.md):

* a real ``tagstream worker`` subprocess runs the W group of ``benchmarks/expiry_rules.yaml``
  (``seen_W: n_W >= 1`` and ``absent_W: since_W >= W``) with its clock sped up
  ``S = W / expire_wall_s`` times (``TAGSTREAM_ENGINE__CLOCK_SPEED``/``CLOCK_ORIGIN_MS``), so W
  elapses in ``expire_wall_s`` wall seconds;
* a steady stream of clickstream events (``--rate`` per second for ``--duration`` s, customers
  drawn uniformly from ``--customers``) is produced with ``ts`` = the worker's scaled now at send
  time; a customer's mean gap between events is ``customers / rate`` wall seconds, so a large share
  of them expire (and turn absent) while events keep coming;
* every record of the worker's tag-change topic is read back; for cause ``expiry`` the lateness
  is ``publish_clock - at_ms`` where ``publish_clock`` is the record's Kafka CreateTime (set when
  the worker sends it) mapped into the worker's clock: ``origin + (create_time - origin) * S``.
  It is reported in the engine's clock *and* divided by S (wall-equivalent, what the same
  scheduling delay costs a real deployment at speed 1); the 1 s target applies to the latter.

Completeness: the same events are replayed through ``TagEngine`` in process (the worker's code
snapshot, each event at its own ``ts`` as "now", then every state caught up to the end of the
run); every expiry change that replay makes must be on the tag topic (by ``change_id``), else the
phase is INCOMPLETE and the run exits 1.

Timer cost: the worker's CPU time (/proc/<pid>/stat) per event under the same load, compared with
two baselines that never fire a due time: the lifetime-only group, and the 30d group at speed 1
(same folding and due scheduling, nothing falls due within the run). Ticks are counted exactly in
the worker's internal customer topic; a micro-benchmark of ``TagEngine.catch_up`` gives the pure
engine part of one tick.

Writes JSON to ``benchmarks/results/``. Needs Kafka and Redis (``bash deploy/local/stack.sh up kafka redis``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from streams.app.envelope import decode_envelope

REPO = Path(__file__).resolve().parents[1]
RULES = Path(__file__).with_name("expiry_rules.yaml")
RESULTS = Path(__file__).with_name("results")

WINDOWS_MS: dict[str, int] = {
    "10s": 10_000,
    "1h": 3_600_000,
    "24h": 86_400_000,
    "7d": 7 * 86_400_000,
    "30d": 30 * 86_400_000,
}
STEPS_PER_WINDOW = 60  # streams.engine.features.windows.DEFAULT_STEPS_PER_WINDOW: resolution = W / 60
CLK_TCK = os.sysconf("SC_CLK_TCK")
WORKER_FLAG = "--as-tagstream-worker"
REPLAY_FLAG = "--replay-expiries"
CUT_MARGIN_MS = 1_000
"""Completeness counts expiries due up to this long (wall) before the end of the tail: time for the
last ones to be published. Every due time of the load falls at least 2 s before the tail ends."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def group_rules(group: str) -> dict[str, Any]:
    """The features and tags of one group (names ending in ``_<group>``) of expiry_rules.yaml."""
    doc = yaml.safe_load(RULES.read_text())
    suffix = f"_{group}"
    doc["features"] = [f for f in doc["features"] if f["name"].endswith(suffix)]
    doc["tags"] = [t for t in doc["tags"] if t["name"].endswith(suffix)]
    doc["version"] = f"{doc['version']}-{group}"
    return doc


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of sorted ``values``."""
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, math.ceil(q / 100 * len(values)) - 1))
    return values[k]


def summary(values: list[float]) -> dict[str, Any]:
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {"n": len(v), "min": v[0], "p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99),
            "max": v[-1], "mean": statistics.fmean(v)}


def scrape(port: int) -> dict[str, Any]:
    """The worker's tagstream_* metrics we use (events in, tag changes by cause, expiry lateness histogram)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out: dict[str, Any] = {"events_in": 0.0, "tag_changes": {}, "expiry_lateness_buckets": {}}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "tagstream_events_in_total":
                out["events_in"] += s.value
            elif s.name == "tagstream_tag_changes_total":
                cause = s.labels.get("cause", "?")
                out["tag_changes"][cause] = out["tag_changes"].get(cause, 0.0) + s.value
            elif s.name == "tagstream_expiry_lateness_seconds_bucket":
                out["expiry_lateness_buckets"][s.labels["le"]] = s.value
    return out


def histogram_quantile(buckets: dict[str, float], q: float) -> str:
    """Upper bound of the bucket holding quantile ``q`` (0..1) of a cumulative Prometheus histogram."""
    items = sorted(((float(le), n) for le, n in buckets.items()), key=lambda x: x[0])
    if not items or items[-1][1] == 0:
        return "n/a"
    target = q * items[-1][1]
    for le, n in items:
        if n >= target:
            return f"<= {le:g} s" if le != float("inf") else f"> {items[-2][0]:g} s"
    return "n/a"


@dataclass
class PhaseResult:
    name: str
    group: str
    speed: float
    rate: float
    duration_s: float
    customers: int
    events_sent: int = 0
    load_wall_s: float = 0.0
    worker_idle_cpu_share: float = 0.0
    worker_cpu_s_load: float = 0.0
    cpu_us_per_event: float = 0.0
    worker_events_in_at_load_end: float = 0.0
    ticks: int = 0
    ticks_during_load: int = 0
    customer_records: int = 0
    tag_changes: dict[str, int] = field(default_factory=dict)
    expiries: int = 0
    expiries_under_load: int = 0
    lateness_clock_ms_under_load: dict[str, Any] = field(default_factory=dict)
    lateness_wall_ms_under_load: dict[str, Any] = field(default_factory=dict)
    lateness_wall_ms_all: dict[str, Any] = field(default_factory=dict)
    lateness_wall_ms_by_tag: dict[str, Any] = field(default_factory=dict)
    worker_histogram_clock_s: dict[str, str] = field(default_factory=dict)
    metrics_end: dict[str, Any] = field(default_factory=dict)
    expiry_check_cut_clock_ms: int = 0
    """Expiries with ``at_ms`` up to this instant (worker clock) are compared."""
    expiries_expected: int = 0
    """Distinct expiry changes the in-process replay of the same events makes (see ``replay_expiries``)."""
    expiries_published: int = 0
    """Distinct expiry changes (by change_id) on the tag topic."""
    expiries_missing: int = 0
    """Expected change_ids not published: must be 0."""
    expiries_extra: int = 0
    """Published but not in the replay: a due time that fell between an event's send and its processing."""
    expiries_missing_by_tag: dict[str, int] = field(default_factory=dict)
    expiries_missing_sample: list[str] = field(default_factory=list)
    complete: bool = True


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

    async def consume_tags(self, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer

        c = AIOKafkaConsumer(self.topic("tags"), bootstrap_servers=self.args.bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=f"{self.prefix}-probe")
        await c.start()
        try:
            while not stop.is_set():
                batch = await c.getmany(timeout_ms=200, max_records=5000)
                for recs in batch.values():
                    self.records.extend((r.timestamp, r.value) for r in recs)
        finally:
            await c.stop()

    async def count_ticks(self, t0_wall: int, t1_wall: int) -> tuple[int, int, int]:
        """(ticks, ticks sent during [t0_wall, t1_wall], all items) in the worker's internal
        customer topic, read to its end."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        topic = f"{self.prefix}-customer-events"
        c = AIOKafkaConsumer(bootstrap_servers=self.args.bootstrap_servers, enable_auto_commit=False,
                             auto_offset_reset="earliest")
        await c.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(self.args.partitions)]  # Faust made it so
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            ends = await c.end_offsets(tps)
            ticks = in_load = total = 0
            remaining = {tp for tp in tps if ends[tp] > 0}
            while remaining:
                batch = await c.getmany(timeout_ms=1000, max_records=20000)
                for tp, recs in batch.items():
                    for r in recs:
                        for item in decode_envelope(r.value):  # an envelope of events or ticks
                            total += 1
                            if "tick" in item:
                                ticks += 1
                                in_load += t0_wall <= r.timestamp <= t1_wall
                    if recs and recs[-1].offset + 1 >= ends[tp]:
                        remaining.discard(tp)
            return ticks, in_load, total
        finally:
            await c.stop()

    async def cleanup(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.args.bootstrap_servers)
        await admin.start()
        try:
            mine = [t for t in await admin.list_topics() if t.startswith(self.prefix)]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()
        import redis.asyncio as aioredis

        r = aioredis.from_url(self.args.redis_url)
        try:
            keys = [k async for k in r.scan_iter(match=f"{self.prefix}:*", count=5000)]
            for i in range(0, len(keys), 5000):
                await r.delete(*keys[i:i + 5000])
        finally:
            await r.aclose()

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
        consumer = asyncio.create_task(self.consume_tags(stop))
        producer = AIOKafkaProducer(bootstrap_servers=a.bootstrap_servers, acks=1, linger_ms=5)
        await producer.start()
        try:
            # Ready = a warm-up event came out as a tag change (topics, assignment, recovery done).
            deadline = time.monotonic() + 120
            while not any(b'"warmup"' in v for _, v in self.records):
                self.assert_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker of phase {self.name} produced nothing in 120 s")
                key, value = self.event(-1, 0)
                await producer.send_and_wait(self.topic("clickstream"), value.replace(b'"c0"', b'"warmup"'),
                                             key=b"warmup")
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)
            rng = random.Random(a.seed)
            pid = self.proc.pid if self.proc else 0
            idle0, ti = cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(3.0)
            res.worker_idle_cpu_share = (cpu_seconds(pid) - idle0) / (time.monotonic() - ti)
            print(f"  [{self.name}] worker ready; load {a.rate:,.0f} ev/s x {a.duration:.0f} s over "
                  f"{a.customers:,} customers, clock x{self.speed:,.0f}", flush=True)
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            t0_wall = wall_ms()
            n = int(a.rate * a.duration)
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
            t1 = time.monotonic()
            t1_wall = wall_ms()
            cpu1 = cpu_seconds(pid)
            m_load = scrape(self.metrics_port)
            res.events_sent = n
            res.load_wall_s = t1 - t0
            res.worker_cpu_s_load = cpu1 - cpu0
            res.cpu_us_per_event = (cpu1 - cpu0) / n * 1e6 if n else 0.0
            res.worker_events_in_at_load_end = m_load.get("events_in", 0.0)
            # Tail: everything scheduled during the load falls due within one window (+ resolution).
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
            res.ticks, res.ticks_during_load, res.customer_records = await self.count_ticks(t0_wall, t1_wall)
        finally:
            stop.set()
            await consumer
            await producer.stop()
            self.stop_worker()
            if not a.keep:
                await self.cleanup()
        self.expected = self.replay()
        self.analyze(res, t0_wall, t1_wall)
        return res

    def replay(self) -> dict[str, str]:
        """The expiry changes the engine should have made: :func:`replay_expiries` on the load's
        events, run on the worker's code snapshot with the worker's environment (engine settings)."""
        inp, out = self.dir / "replay-in.json", self.dir / "replay-out.json"
        inp.write_bytes(orjson.dumps({"rules": str(self.rules_path), "cut_clock_ms": self.cut_clock_ms,
                                      "events": [v.decode() for v in self.sent]}))
        subprocess.run([sys.executable, "-m", "benchmarks.expiry", REPLAY_FLAG, str(inp), str(out)],
                       env=self.env, cwd=self.src, check=True)
        expected: dict[str, str] = orjson.loads(out.read_bytes())
        return expected

    def analyze(self, res: PhaseResult, t0_wall: int, t1_wall: int) -> None:
        s, origin = self.speed, self.origin_ms
        clock_under: list[float] = []
        wall_under: list[float] = []
        wall_all: list[float] = []
        by_tag: dict[str, list[float]] = {}
        counts: dict[str, int] = {}
        published: set[str] = set()
        for create_ms, value in self.records:
            c = orjson.loads(value)
            if c["customer_id"] == "warmup":
                continue
            counts[c["cause"]] = counts.get(c["cause"], 0) + 1
            if c["cause"] != "expiry":
                continue
            if c["at_ms"] <= self.cut_clock_ms:
                published.add(c["change_id"])
            due = c["at_ms"]
            publish_clock = origin + (create_ms - origin) * s
            late_clock = publish_clock - due
            late_wall = late_clock / s
            wall_all.append(late_wall)
            by_tag.setdefault(f"{c['tag']} {c['op']}", []).append(late_wall)
            due_wall = origin + (due - origin) / s
            if t0_wall <= due_wall <= t1_wall:
                clock_under.append(late_clock)
                wall_under.append(late_wall)
        res.tag_changes = counts
        res.expiries = len(wall_all)
        res.expiries_under_load = len(wall_under)
        res.lateness_clock_ms_under_load = summary(clock_under)
        res.lateness_wall_ms_under_load = summary(wall_under)
        self.wall_under = wall_under
        res.lateness_wall_ms_all = summary(wall_all)
        res.lateness_wall_ms_by_tag = {k: summary(v) for k, v in sorted(by_tag.items())}
        buckets = res.metrics_end.get("expiry_lateness_buckets", {})
        res.worker_histogram_clock_s = {"p50": histogram_quantile(buckets, 0.5),
                                        "p99": histogram_quantile(buckets, 0.99),
                                        "count": f"{buckets.get('+Inf', 0):.0f}"}
        missing = sorted(set(self.expected) - published)
        res.expiry_check_cut_clock_ms = self.cut_clock_ms
        res.expiries_expected = len(self.expected)
        res.expiries_published = len(published)
        res.expiries_missing = len(missing)
        res.expiries_extra = len(published - set(self.expected))
        for cid in missing:
            res.expiries_missing_by_tag[self.expected[cid]] = res.expiries_missing_by_tag.get(self.expected[cid], 0) + 1
        res.expiries_missing_sample = missing[:20]
        res.complete = not missing and res.expiries_published >= res.expiries_expected


def replay_expiries(rules_path: Path, values: list[bytes], cut_clock_ms: int) -> dict[str, str]:
    """change_id -> "tag op" of every expiry change (``at_ms <= cut_clock_ms``) the engine makes
    from the load's events, each processed at its own ``ts`` as now — the earliest instant the
    worker can process it — and every customer then caught up to ``cut_clock_ms``.

    The worker processes an event a little after its ``ts``; before folding it, it runs every due
    time up to then (``catch_up``), so it can only make *more* expiry changes (a due time that fell
    between the send and the processing: removed, then re-added by the event), never fewer; the
    change_ids of the others are equal (the due instant is a function of the event times).
    """
    from schemas.canonical import to_canonical
    from schemas.decode import decode_event
    from streams.engine.features.state import CustomerState
    from streams.engine.tag_engine import Change, TagEngine
    from streams.settings import Settings
    from tag_rules import load_rules

    es = Settings().engine  # the worker's environment: its engine settings
    engine = TagEngine(load_rules(rules_path), allowed_lateness_ms=es.allowed_lateness_ms,
                       dedup_horizon_ms=es.dedup_horizon_ms, dedup_max_ids=es.dedup_max_ids)
    states: dict[str, CustomerState] = {}
    out: dict[str, str] = {}

    def keep(changes: list[Change]) -> None:
        for c in changes:
            if c["cause"] == "expiry" and c["at_ms"] <= cut_clock_ms:
                out[c["change_id"]] = f"{c['tag']} {c['op']}"

    for raw in values:
        ev = to_canonical("clickstream", decode_event("clickstream", raw), 0)
        state = states.setdefault(ev["customer_id"], CustomerState())
        keep(engine.process_event(state, ev, ev["ts_ms"]).changes)
    for customer_id, state in states.items():
        keep(engine.catch_up(state, customer_id, cut_clock_ms))
    return out


def replay_main(inp: Path, out: Path) -> int:
    """``python -m benchmarks.expiry --replay-expiries IN OUT`` (run by ``Phase.replay``)."""
    job = orjson.loads(inp.read_bytes())
    expected = replay_expiries(Path(job["rules"]), [v.encode() for v in job["events"]], job["cut_clock_ms"])
    out.write_bytes(orjson.dumps(expected))
    return 0


def micro_benchmark(group: str, n: int) -> dict[str, float]:
    """Pure engine cost (no Kafka, no Faust): one event vs one due tick, in microseconds."""
    from streams.engine.features.state import CustomerState
    from streams.engine.tag_engine import TagEngine
    from tag_rules import load_rules

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(group_rules(group), f)
    try:
        engine = TagEngine(load_rules(Path(f.name)))
    finally:
        os.unlink(f.name)
    t = 1_700_000_000_000
    states = [CustomerState() for _ in range(n)]
    events = [{"customer_id": f"c{i}", "source": "clickstream", "type": "page_view", "ts_ms": t + i,
               "event_id": f"e{i}", "session_id": f"c{i}-s0", "src_ts_ms": t + i} for i in range(n)]
    t0 = time.perf_counter()
    for st, ev in zip(states, events, strict=True):
        engine.process_event(st, ev, t + n)
    per_event = (time.perf_counter() - t0) / n * 1e6
    ticks = 0
    t0 = time.perf_counter()
    for i, st in enumerate(states):
        while st.due_ms is not None:
            engine.catch_up(st, f"c{i}", st.due_ms)
            ticks += 1
    per_tick = (time.perf_counter() - t0) / max(1, ticks) * 1e6
    from streams.engine.due import DueIndex

    idx = DueIndex()
    keys = [f"c{i}".encode() for i in range(n)]
    t0 = time.perf_counter()
    for i, k in enumerate(keys):
        idx.schedule(k, t + i)
    popped = idx.pop_due(t + n, limit=n)
    per_index = (time.perf_counter() - t0) / max(1, len(popped)) * 1e6
    return {"engine_us_per_event": per_event, "engine_us_per_tick": per_tick,
            "ticks_per_customer": ticks / n, "due_index_us_per_schedule_and_pop": per_index}


def fmt_ms(v: Any) -> str:
    return "-" if not isinstance(v, int | float) or v != v else f"{v:,.1f}"


def print_report(results: list[PhaseResult], overall: dict[str, Any], micro: dict[str, Any],
                 baseline: dict[str, float]) -> None:
    print("\nExpiry lateness = publish time - due time, cause=expiry, due during the load "
          "(wall-equivalent ms = clock ms / speed; target p99 <= 1000 ms)")
    hdr = (f"{'phase':<10}{'speed':>10}{'expiries':>10}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"
           f"{'  clock p99':>16}{'  all p99':>10}{'  worker hist p99 (clock)':>26}")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        if r.group not in WINDOWS_MS or r.name.endswith("@1x-nodue"):
            continue
        w = r.lateness_wall_ms_under_load
        c = r.lateness_clock_ms_under_load
        clock_p99 = c.get("p99", float("nan"))
        clock_txt = f"{clock_p99 / 1000:,.1f} s" if clock_p99 == clock_p99 else "-"
        print(f"{r.name:<10}{r.speed:>10,.0f}{r.expiries_under_load:>10,}{fmt_ms(w.get('p50')):>9}"
              f"{fmt_ms(w.get('p90')):>9}{fmt_ms(w.get('p99')):>9}{fmt_ms(w.get('max')):>9}{clock_txt:>16}"
              f"{fmt_ms(r.lateness_wall_ms_all.get('p99')):>10}{r.worker_histogram_clock_s.get('p99', ''):>26}")
    o = overall
    if o.get("n"):
        print(f"{'overall':<10}{'':>10}{o['n']:>10,}{fmt_ms(o['p50']):>9}{fmt_ms(o['p90']):>9}{fmt_ms(o['p99']):>9}"
              f"{fmt_ms(o['max']):>9}")
    print("\nWorker CPU per event under the same load (timer cost)")
    print(f"{'phase':<16}{'events':>9}{'ticks':>9}{'expiries':>10}{'ticks/ev':>9}{'cpu s':>8}{'us/event':>10}"
          f"{'share vs lifetime':>19}{'share vs no-due':>17}{'us/tick':>9}")
    for r in results:
        sl = 1 - baseline["lifetime"] / r.cpu_us_per_event if baseline.get("lifetime") else float("nan")
        sn = 1 - baseline["nodue"] / r.cpu_us_per_event if baseline.get("nodue") else float("nan")
        per_tick = ((r.cpu_us_per_event - baseline["nodue"]) * r.events_sent / r.ticks_during_load
                    if r.ticks_during_load and baseline.get("nodue") else float("nan"))
        tpe = r.ticks_during_load / r.events_sent if r.events_sent else 0.0
        print(f"{r.name:<16}{r.events_sent:>9,}{r.ticks_during_load:>9,}{r.expiries:>10,}{tpe:>9.2f}{r.worker_cpu_s_load:>8.1f}"
              f"{r.cpu_us_per_event:>10.0f}{sl:>18.1%} {sn:>16.1%} {fmt_ms(per_tick):>8}")
    print("\nEngine micro-benchmark (pure Python, no Kafka): "
          + ", ".join(f"{k} {v:.1f}" for k, v in micro.items()))
    print("\nCompleteness: expiry changes the in-process replay of the same events makes vs those on the tag "
          "topic (by change_id)")
    print(f"{'phase':<16}{'expected':>10}{'published':>11}{'missing':>9}{'extra':>7}  verdict")
    for r in results:
        verdict = "complete" if r.complete else f"INCOMPLETE {r.expiries_missing_by_tag}"
        print(f"{r.name:<16}{r.expiries_expected:>10,}{r.expiries_published:>11,}{r.expiries_missing:>9,}"
              f"{r.expiries_extra:>7,}  {verdict}")


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    phases: list[tuple[str, str, float]] = []
    if args.baselines:
        phases += [("lifetime@1x", "lifetime", 1.0), ("30d@1x-nodue", "30d", 1.0)]
    for w in args.windows:
        speed = max(1.0, WINDOWS_MS[w] / (args.expire_wall_s * 1000))
        phases.append((w, w, speed))
    results: list[PhaseResult] = []
    wall_under: list[float] = []
    tmp = Path(tempfile.mkdtemp(prefix="tagstream-bench-"))  # worker logs; removed when all went well
    src, code = snapshot_code(tmp / "src", args.worktree)
    print(f"worker code: {code}", flush=True)
    for name, group, speed in phases:
        print(f"phase {name}: rules group {group}, clock speed {speed:,.0f}", flush=True)
        phase = Phase(args, run_id, name, group, speed, tmp, src)
        results.append(await phase.run())
        if name in args.windows:
            wall_under += phase.wall_under
    shutil.rmtree(tmp, ignore_errors=True)
    baseline = {}
    for r in results:
        if r.name == "lifetime@1x":
            baseline["lifetime"] = r.cpu_us_per_event
        if r.name == "30d@1x-nodue":
            baseline["nodue"] = r.cpu_us_per_event
    micro = {f"{g}:{k}": v for g in ("10s", "30d") for k, v in micro_benchmark(g, args.micro_n).items()}
    overall = summary(wall_under)
    print_report(results, overall, micro, baseline)
    return {"run_id": run_id, "args": vars(args), "machine": machine(), "code": code,
            "complete": all(r.complete for r in results), "baseline_cpu_us_per_event": baseline,
            "micro_benchmark_us": micro, "phases": [asdict(r) for r in results], "overall": overall}


def snapshot_code(dest: Path, worktree: bool) -> tuple[Path, dict[str, Any]]:
    """Copies the packages the worker imports (as committed at HEAD, or the working tree), so every
    phase runs the same code even while others edit the tree; returns the copy and what it is."""

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()

    dest.mkdir(parents=True)
    pkgs = ("streams", "schemas", "tag_rules")
    if worktree:
        for pkg in pkgs:
            shutil.copytree(REPO / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        archive = subprocess.run(["git", "archive", "HEAD", *pkgs], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    (dest / "benchmarks").mkdir()
    for f in ("__init__.py", "expiry.py"):
        shutil.copy2(REPO / "benchmarks" / f, dest / "benchmarks" / f)
    imported = subprocess.run([sys.executable, "-c", "import streams; print(streams.__file__)"], cwd=dest,
                              capture_output=True, text=True, check=True).stdout.strip()
    if not imported.startswith(str(dest)):
        raise RuntimeError(f"the worker would not run the snapshot: streams imports from {imported}")
    return dest, {"source": "working tree" if worktree else "HEAD", "commit": git("rev-parse", "--short", "HEAD"),
                  "uncommitted": git("status", "--porcelain", *pkgs).splitlines() if worktree else []}


def machine() -> dict[str, Any]:
    import platform

    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cores": os.cpu_count(), "loadavg_at_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == [WORKER_FLAG]:
        from streams.cli import main as tagstream

        return tagstream(["worker"])
    if len(argv) == 3 and argv[0] == REPLAY_FLAG:
        return replay_main(Path(argv[1]), Path(argv[2]))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--rate", type=float, default=250.0,
                   help="events per second during the load (default 250: one worker on a shared 2-core box\n"
                        "spends ~2.5 ms CPU per event, so ~400/s saturates it)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load per phase (default 60)")
    p.add_argument("--customers", type=int, default=2_500,
                   help="customers drawn uniformly (default 2500: mean gap per customer = customers / rate = 10 s)")
    p.add_argument("--windows", default="10s,1h,24h,7d,30d", type=lambda s: [w for w in s.split(",") if w],
                   help="windows to measure, each its own phase (default 10s,1h,24h,7d,30d)")
    p.add_argument("--expire-wall-s", type=float, default=10.0,
                   help="wall seconds one window lasts: clock speed = W / this (default 10; 10s runs at 1x)")
    p.add_argument("--timer-interval-ms", type=int, default=100, help="TAGSTREAM_ENGINE__TIMER_INTERVAL_MS")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-baselines", dest="baselines", action="store_false",
                   help="skip the two no-due baseline phases (then no timer cost)")
    p.add_argument("--micro-n", type=int, default=20_000, help="customers in the engine micro-benchmark")
    p.add_argument("--worker-loglevel", default="warn")
    p.add_argument("--worktree", action="store_true",
                   help="run the worker on the working tree's streams/ (default: as committed at HEAD)")
    p.add_argument("--keep", action="store_true", help="keep the phase topics and Redis keys")
    p.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/results/expiry-<time>.json)")
    args = p.parse_args(argv)
    bad = [w for w in args.windows if w not in WINDOWS_MS]
    if bad:
        p.error(f"unknown window(s) {bad}; choose from {list(WINDOWS_MS)}")
    report = asyncio.run(amain(args))
    out = args.out or RESULTS / f"expiry-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report["args"]["out"] = str(out)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwrote {out}")
    if not report["complete"]:
        bad = [f"{p['name']} ({p['expiries_missing']:,} of {p['expiries_expected']:,} missing)"
               for p in report["phases"] if not p["complete"]]
        print(f"INCOMPLETE: expiry changes the engine should have made are not on the tag topic: {', '.join(bad)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
