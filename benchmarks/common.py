"""Shared pieces of the benchmarks: topics and load, worker processes, drain watching, state size."""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.io.topics import ensure_topics
from streams.tools.generator import SOURCES, RetailGenerator
from streams.tools.produce import ProduceStats, produce
from streams.tools.prom import done_count, progress_url, scrape, total

from .procstat import cpu_seconds, vm_hwm_bytes

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
REFERENCE_RULES = REPO / "benchmarks" / "reference_rules.yaml"

Samples = dict[str, list[tuple[dict[str, str], float]]]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    """A free loopback port below the ephemeral range (32768+), where no client socket lands."""
    import random
    import socket

    for _ in range(1000):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port in 20000-32000")


@dataclass
class Load:
    """The source topics of one benchmark run."""

    run_id: str
    bootstrap: str
    partitions: int

    def topic(self, source: str) -> str:
        return f"{self.run_id}.{source}"

    @property
    def topics(self) -> dict[str, str]:
        return {s: self.topic(s) for s in SOURCES}


async def produce_backlog(load: Load, *, events: int, customers: int, seed: int) -> ProduceStats:
    """Pre-produces ``events`` to fresh topics. Event times end now (1 ms apart), so the backlog
    is "the last events/1000 seconds" of business time: all inside every window, none in the future."""
    await ensure_topics(load.bootstrap, load.topics.values(), load.partitions)
    gen = RetailGenerator(seed=seed, customers=customers, start_ms=int(time.time() * 1000) - events, step_ms=1.0)
    return await produce(bootstrap_servers=load.bootstrap, topics=load.topics, count=events, rate=None,
                         generator=gen, progress=True, out=sys.stdout)


def input_customers(*, events: int, customers: int, seed: int) -> dict[str, int]:
    """What the backlog of :func:`produce_backlog` holds, recomputed from the deterministic generator
    (ids do not depend on ``start_ms``): valid and invalid events, anonymous ones, and the distinct
    customer ids (``user_id`` for clickstream/orders, ``member_id`` for pos) — the customers a
    worker should hold in state once it is done with the backlog."""
    ids: set[str] = set()
    anonymous = invalid = 0
    for ev in islice(RetailGenerator(seed=seed, customers=customers, start_ms=0, step_ms=1.0), events):
        if not ev.valid:
            invalid += 1
            continue
        cid = orjson.loads(ev.value).get("member_id" if ev.source == "pos" else "user_id")
        if cid is None:
            anonymous += 1
        else:
            ids.add(cid)
    return {"events": events, "invalid": invalid, "anonymous": anonymous,
            "customer_events": events - invalid - anonymous, "distinct_customers": len(ids)}


def check_customers(label: str, held: float, expected: int, *, tolerance: float = 0.01) -> dict[str, Any]:
    """Customers with state after a drain vs the input's distinct customers; warns on stderr when
    they differ by more than ``tolerance`` (a worker "drained" before its customer stage was done,
    or lost state). A few customers may legitimately hold nothing (their events feed no feature)."""
    diff = (held - expected) / expected if expected else 0.0
    if abs(diff) > tolerance:
        print(f"\n!!! WARNING {label}: {held:,.0f} customers in state after the drain, but the input has "
              f"{expected:,} distinct customers ({diff:+.1%}, tolerance {tolerance:.0%}): the figures of this "
              f"run are suspect !!!\n", file=sys.stderr, flush=True)
    return {"input_distinct_customers": expected, "customers_in_state": held, "customers_diff_share": diff}


async def produce_at_rate(load: Load, *, events: int, rate: float, customers: int, seed: int) -> ProduceStats:
    """Produces ``events`` at ``rate`` events/s with event times following the wall clock."""
    gen = RetailGenerator(seed=seed, customers=customers, start_ms=int(time.time() * 1000), step_ms=1000 / rate)
    return await produce(bootstrap_servers=load.bootstrap, topics=load.topics, count=events, rate=rate,
                         generator=gen, progress=True, out=sys.stdout)


async def delete_topics(bootstrap: str, prefixes: list[str]) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-cleanup")
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if any(t.startswith(p) for p in prefixes)]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


# -- processes -----------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    cwd: Path = REPO
    """Where ``python -m ...`` finds the code: another checkout runs that checkout's worker."""

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as f:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=f, stderr=subprocess.STDOUT, cwd=self.cwd)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, n: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def vm_hwm_bytes(self) -> int:
        return vm_hwm_bytes(self.pid)


@dataclass
class ProcGroup:
    """Several worker processes of one consumer group, watched as one (CPU summed, peak memory
    the largest of them, alive while all are)."""

    procs: list[Proc]

    @property
    def name(self) -> str:
        return "+".join(p.name for p in self.procs)

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return next((p.proc for p in self.procs if not p.alive()), self.procs[0].proc)

    def alive(self) -> bool:
        return all(p.alive() for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.stop()

    def tail(self, n: int = 30) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.tail(n)}" for p in self.procs)

    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds() for p in self.procs)

    def vm_hwm_bytes(self) -> int:
        return max(p.vm_hwm_bytes() for p in self.procs)


def merge_samples(parts: list[Samples]) -> Samples:
    """Scrapes of several workers as one: values of equal name and labels summed."""
    acc: dict[str, dict[tuple[tuple[str, str], ...], tuple[dict[str, str], float]]] = {}
    for part in parts:
        for name, samples in part.items():
            d = acc.setdefault(name, {})
            for labels, v in samples:
                k = tuple(sorted(labels.items()))
                d[k] = (labels, d[k][1] + v if k in d else v)
    return {name: list(d.values()) for name, d in acc.items()}


SCRAPE_SLOW: list[float] = []
"""Scrapes of a worker's /metrics that took over 2 s in this run (seconds each): reported, not hidden."""


def scrape_all(urls: str | list[str], timeout_s: float = 30.0) -> Samples:
    """One scrape of every worker's /metrics, merged; raises if one is not answering within
    ``timeout_s`` (a worker busy with a million customers can answer slowly: ``SCRAPE_SLOW``)."""
    out = []
    for u in [urls] if isinstance(urls, str) else urls:
        started = time.monotonic()
        out.append(scrape(u, timeout_s))
        if (took := time.monotonic() - started) > 2.0:
            SCRAPE_SLOW.append(round(took, 1))
    return merge_samples(out)


def tagstream_env(load: Load, app_id: str, metrics_port: int, data_dir: Path, rules: Path,
                  redis_url: str) -> dict[str, str]:
    """The TAGSTREAM_* environment of a worker on the benchmark topics (as tests/integration do)."""
    return {
        **os.environ,
        "TAGSTREAM_APP_ID": app_id,
        "TAGSTREAM_RULES_PATH": str(rules),
        "TAGSTREAM_DATA_DIR": str(data_dir),
        "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": load.bootstrap,
        "TAGSTREAM_KAFKA__CLICKSTREAM_TOPIC": load.topic("clickstream"),
        "TAGSTREAM_KAFKA__POS_TOPIC": load.topic("pos"),
        "TAGSTREAM_KAFKA__ORDERS_TOPIC": load.topic("orders"),
        "TAGSTREAM_KAFKA__DEADLETTER_TOPIC": f"{app_id}.deadletter",
        "TAGSTREAM_KAFKA__TAG_CHANGES_TOPIC": f"{app_id}.tags",
        "TAGSTREAM_KAFKA__PARTITIONS": str(load.partitions),
        "TAGSTREAM_REDIS__URL": redis_url,
        "TAGSTREAM_REDIS__KEY_PREFIX": app_id,
        "TAGSTREAM_METRICS__PORT": str(metrics_port),
        "TAGSTREAM_API__ENABLED": "false",  # several workers per run; the API has its own benchmark (lookup.py)
        "TAGSTREAM_LOGLEVEL": "warn",
    }


def try_scrape(url: str | list[str]) -> Samples | None:
    try:
        return scrape_all(url)
    except (OSError, urllib.error.URLError):
        return None


# -- watching a worker drain a backlog ---------------------------------------------------------------


@dataclass
class Drain:
    """How a worker drained a backlog of ``events`` source events."""

    events: int
    startup_s: float = 0.0
    """Process start -> first event read."""
    t_first: float = 0.0
    seen_at_first: float = 0.0
    t_ingest_done: float = 0.0
    """First poll at which ingest had read every event (diagnostic only: not the end)."""
    t_done: float = 0.0
    """First poll at which the second stage was done with every event (see ``watch_drain``)."""
    t_last: float = 0.0
    cpu_first: float = 0.0
    cpu_last: float = 0.0
    vm_hwm_bytes: int = 0
    changelog_records: int = 0
    ok: bool = False
    partial: bool = False
    """The budget ran out before the backlog was drained: the figures cover ``events`` read so far."""
    trace: list[tuple[float, float, float, int]] = field(default_factory=list)
    """(t, events read, events done, changelog end offset) per poll."""

    @property
    def seconds(self) -> float:
        return max(1e-9, self.t_last - self.t_first)

    @property
    def events_per_s(self) -> float:
        return (self.events - self.seen_at_first) / self.seconds

    @property
    def cpu_s_per_million(self) -> float:
        return (self.cpu_last - self.cpu_first) / max(1, self.events - self.seen_at_first) * 1e6

    @property
    def cpu_utilisation(self) -> float:
        return (self.cpu_last - self.cpu_first) / self.seconds


class EndOffsets:
    """Sum of the end offsets of a topic (all partitions), polled cheaply."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []

    async def total(self) -> int | None:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
            await self._consumer.start()
        if not self._tps:
            await self._consumer._client.force_metadata_update()
            parts = self._consumer.partitions_for_topic(self.topic)
            if not parts:
                return None
            self._tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        offsets = await self._consumer.end_offsets(self._tps)
        return sum(offsets.values())

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


def baseline_done(samples: Samples) -> float:
    """Events the baseline app (column b) is done with: it has one agent, which counts an event
    when it starts on it; the changelog-quiet half of the drain rule covers the last one."""
    return total(samples, "baseline_events_in_total")


async def watch_drain(proc: Proc | ProcGroup, *, metrics_url: str | list[str], counter: str, changelog: str,
                      bootstrap: str, events: int, done: Callable[[Samples], float] = done_count,
                      base_seen: float = 0.0, base_done: float = 0.0, timeout_s: float = 1800, poll_s: float = 0.5,
                      stable_s: float = 2.5, budget_s: float | None = None, label: str = "",
                      progress_only: bool = False) -> Drain:
    """Polls the worker until it is done with ``events`` more source events; returns when and at
    what cost.

    The drain rule: drained when (1) ``done(scrape) - base_done >= events`` — by default
    :func:`streams.tools.prom.done_count`, i.e. ``tagstream_events_processed_total`` (folded into
    customer state by the second stage) + ``_anonymous_total`` + ``_invalid_total`` (set aside by
    ingest), so every produced event, valid or not, counts once when the worker is through with it —
    and (2) the state changelog has not grown for ``stable_s`` after that (a batch's states are saved
    after its events are counted). The drain ends (``t_last``) at the later of the first poll that saw
    (1) and the changelog's last growth; the rate and CPU figures run from ``t_first`` to there.
    Ingest having read every event (``counter``) is NOT the end: the customer stage can lag far
    behind it (a run once ended with 16 of ~9,900 customers in state and reported ingest's rate).

    ``t_first`` is the first poll that saw events read; the events already read by then are
    left out of the rate (``seen_at_first``), so poll granularity does not inflate it.
    With ``budget_s``, a drain still running that long after ``t_first`` is cut short: the result
    then covers the events done so far (``partial``).

    ``progress_only`` (a tagstream worker): each poll asks for ``PROGRESS_METRICS`` only. A full
    scrape every 0.5 s cost the worker 14 % of its CPU with 1,000 tags (rendering ~5,000 per-tag
    series, under the GIL), which the benchmark then booked as the cost of the tags.
    """
    d = Drain(events)
    if progress_only:
        metrics_url = progress_url(metrics_url) if isinstance(metrics_url, str) else [
            progress_url(u) for u in metrics_url]
    offsets = EndOffsets(bootstrap, changelog)
    t_start = time.time()
    last_print = 0.0
    last_end: int | None = None
    last_growth: tuple[float, float] | None = None
    at_done: tuple[float, float] | None = None
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited ({proc.proc.returncode if proc.proc else '?'}):\n"
                                   f"{proc.tail()}")
            # In a thread: a load generator may share this event loop (``latency_phase``), and a
            # scrape blocking it would hold back records it has already timestamped.
            s = await asyncio.to_thread(try_scrape, metrics_url)
            now, cpu = time.time(), proc.cpu_seconds()
            if s is None:
                await asyncio.sleep(poll_s)
                continue
            seen = total(s, counter) - base_seen
            finished = done(s) - base_done
            if d.t_first == 0.0 and seen > 0:
                d.t_first, d.cpu_first, d.seen_at_first = now, cpu, seen
                d.startup_s = now - t_start
            end = await offsets.total() if d.t_first else None
            if end is not None and end != last_end:
                last_end, last_growth = end, (now, cpu)
            d.trace.append((round(now - t_start, 3), seen, finished, end or 0))
            if seen >= events and not d.t_ingest_done:
                d.t_ingest_done = now
            if finished >= events and at_done is None:
                d.t_done, at_done = now, (now, cpu)
            if now - last_print >= 2.0:
                rate = (finished - d.seen_at_first) / max(1e-9, now - d.t_first) if d.t_first else 0.0
                log(f"{label}: {seen:,.0f}/{events:,} events read, {finished:,.0f} done ({rate:,.0f}/s), "
                    f"state changelog +{(end or 0):,} records, cpu {cpu:.1f}s")
                last_print = now
            if budget_s is not None and d.t_first and at_done is None and now - d.t_first > budget_s:
                d.events, d.t_last, d.cpu_last = int(finished), now, cpu
                d.changelog_records = last_end or 0
                d.vm_hwm_bytes = proc.vm_hwm_bytes()
                d.partial = True
                log(f"{label}: budget of {budget_s:.0f}s used up after {finished:,.0f}/{events:,} events done; "
                    f"stopping it")
                return d
            if at_done is not None:
                last = max(at_done, last_growth or at_done)  # the later of (1) and the last growth
                if now - last[0] >= stable_s:
                    d.t_last, d.cpu_last = last
                    d.changelog_records = last_end or 0
                    d.vm_hwm_bytes = proc.vm_hwm_bytes()
                    d.ok = True
                    return d
            await asyncio.sleep(poll_s)
        raise TimeoutError(f"{label}: not drained after {timeout_s}s")
    finally:
        await offsets.close()


async def state_size(bootstrap: str, changelog: str) -> dict[str, float]:
    """Reads a table's changelog topic and keeps the latest value per key: active customers
    (keys whose latest value is not a tombstone) and the bytes of those latest values."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    latest: dict[bytes, int] = {}
    records = 0
    try:
        parts = c.partitions_for_topic(changelog)
        if not parts:
            await c._client.force_metadata_update()
            parts = c.partitions_for_topic(changelog) or set()
        tps = [TopicPartition(changelog, p) for p in sorted(parts)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        ends = await c.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await c.getmany(*remaining, timeout_ms=1000)
            for recs in batch.values():
                for r in recs:
                    records += 1
                    if r.value is None:
                        latest.pop(r.key, None)
                    else:
                        latest[r.key] = len(r.value)
            for tp in list(remaining):  # by position: a transactional changelog (exactly_once) ends
                if await c.position(tp) >= ends[tp]:  # with a commit marker, never delivered as a record
                    remaining.discard(tp)
    finally:
        await c.stop()
    n = len(latest)
    b = sum(latest.values())
    return {"customers": n, "bytes": b, "bytes_per_customer": b / n if n else 0.0, "changelog_records": records}


def hist_delta_where(after: Samples, before: Samples, name: str, where: dict[str, str]) -> Samples:
    """``hist_delta`` of the one series of a labelled histogram whose labels include ``where``."""
    def pick(s: Samples) -> Samples:
        return {k: [(lb, v) for lb, v in s.get(k, []) if all(lb.get(a) == b for a, b in where.items())]
                for k in (f"{name}_bucket", f"{name}_count", f"{name}_sum")}
    return hist_delta(pick(after), pick(before), name)


def hist_delta(after: Samples, before: Samples, name: str) -> Samples:
    """The samples of histogram ``name`` accumulated between two scrapes."""
    prev = {lb.get("le"): v for lb, v in before.get(f"{name}_bucket", [])}
    out: Samples = {f"{name}_bucket": [(lb, v - prev.get(lb.get("le"), 0.0)) for lb, v in
                                       after.get(f"{name}_bucket", [])]}
    for suffix in ("_count", "_sum"):
        out[name + suffix] = [({}, total(after, name + suffix) - total(before, name + suffix))]
    return out


# -- machine -----------------------------------------------------------------------------------------


def git_state(repo: Path | None = None) -> dict[str, Any]:
    """Which code a worker started now runs: HEAD and the uncommitted files of the packages."""

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], capture_output=True, text=True, cwd=repo or REPO).stdout.strip()

    return {"git_head": git("rev-parse", "--short", "HEAD"),
            "git_uncommitted_in_code": git("status", "--porcelain", "--", "streams", "tag_rules",
                                           "schemas").splitlines()}


def machine_info(redis_url: str) -> dict[str, Any]:
    from importlib.metadata import version

    cpu_model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "mem_total_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }
    for pkg in ("faust-streaming", "aiokafka", "orjson", "redis", "pydantic", "prometheus-client"):
        try:
            info[pkg] = version(pkg)
        except Exception:
            info[pkg] = None
    try:
        import redis

        info["redis_server"] = redis.Redis.from_url(redis_url).info("server").get("redis_version")
    except Exception:
        info["redis_server"] = None
    info.update(git_state())
    info["kafka"] = sorted(p.name for p in (REPO / ".cache").glob("kafka-*") if p.is_dir())
    return info
