"""Worker part of the fuzz run (benchmarks/fuzz.py): starts a real ``tagstream worker``, produces
every payload to it, checks its dead-letter topic (benchmarks/fuzz_dlq.py), samples its RSS/CPU all
along and reports its throughput, metrics and crash log lines."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.tools.generator import SOURCES

from .common import REPO, Load, Proc, free_port, log, tagstream_env, try_scrape
from .fuzz_dlq import DlqCheck, code, consume_dlq
from .fuzz_failures import Failure
from .fuzz_fields import MB
from .fuzz_kinds import KINDS, Kind
from .fuzz_plan import digest, payloads
from .procstat import cpu_seconds, vm_hwm_bytes, vm_rss_bytes


@dataclass
class RssSample:
    t: float
    progress: float
    """Source records the worker has read (tagstream_events_in_total) / records produced."""
    rss: int
    hwm: int
    cpu: float
    events_in: float
    deadletter: float


async def sample_worker(proc: Proc, samples: list[RssSample], url: str, total_records: int,
                        stop: asyncio.Event) -> None:
    from streams.tools.demo import total

    t0 = time.monotonic()
    while not stop.is_set():
        if proc.alive():
            s = await asyncio.to_thread(try_scrape, url) or {}
            ein = total(s, "tagstream_events_in_total")
            with contextlib.suppress(OSError):
                samples.append(RssSample(round(time.monotonic() - t0, 2), ein / max(1, total_records),
                                         vm_rss_bytes(proc.pid), vm_hwm_bytes(proc.pid), cpu_seconds(proc.pid), ein,
                                         total(s, "tagstream_deadletter_total")))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def wait_ready(proc: Proc, url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"worker exited during start:\n{proc.tail()}")
        s = try_scrape(url)
        if s is not None and any(v == 1 for _, v in s.get("tagstream_ready", [])):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"worker not ready after {timeout_s}s:\n{proc.tail()}")


CRASH_PATTERNS = re.compile(r"Traceback|crashed|Crashed|Restarting|Error|exception", re.I)
NOISE = re.compile(r"ignoring missing topic|UNKNOWN_TOPIC_OR_PART|LeaderNotAvailable|NotCoordinator"
                   r"|GroupCoordinatorNotAvailable|Heartbeat failed", re.I)


def crash_lines(log_path: Path) -> list[str]:
    if not log_path.exists():
        return []
    out = []
    for ln in log_path.read_text(errors="replace").splitlines():
        if CRASH_PATTERNS.search(ln) and not NOISE.search(ln):
            out.append(ln[:300])
    return out


def start_worker(run_id: str, app_id: str, bootstrap: str, redis_url: str, partitions: int,
                 out_dir: Path) -> tuple[Proc, str, Load]:
    load = Load(run_id, bootstrap, partitions)
    port = free_port()
    env = tagstream_env(load, app_id, port, out_dir / f"data-{app_id}", REPO / "tag_rules" / "retail.yaml",
                        redis_url)
    env["TAGSTREAM_LOGLEVEL"] = "info"
    env["TAGSTREAM_RULES_PATH"] = ""
    env.pop("TAGSTREAM_RULES_PATH")  # the shipped retail rules
    proc = Proc(app_id, [sys.executable, "-m", "streams.cli", "worker"], env, out_dir / f"{app_id}.log").start()
    return proc, f"http://127.0.0.1:{port}/metrics", load


def new_producer(bootstrap: str, **kw: Any) -> Any:
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_request_size=8 * MB,
                            max_batch_size=256 * 1024, request_timeout_ms=60_000, **kw)


async def produce_all(bootstrap: str, load: Load, order: array, seed: int, now_ms: int, digests: bytearray,
                      where: dict[int, int], topic_ids: dict[str, int], refused: list[dict[str, Any]],
                      failures: list[Failure]) -> dict[str, float]:
    """Produces every payload; fills ``where`` ((topic id, partition, offset) code -> index)."""
    from aiokafka.errors import KafkaError

    p = new_producer(bootstrap)
    pz = new_producer(bootstrap, compression_type="gzip")
    await p.start()
    await pz.start()
    t0 = time.monotonic()
    last = t0
    sent = 0
    pending: list[tuple[int, Kind, int, Any]] = []

    async def settle() -> None:
        res = await asyncio.gather(*(f for *_, f in pending), return_exceptions=True)
        for (i, kind, size, _), md in zip(pending, res, strict=True):
            if isinstance(md, BaseException):
                refused.append({"index": i, "kind": kind.name, "bytes": size, "error": type(md).__name__})
                continue
            where[code(topic_ids[md.topic], md.partition, md.offset)] = i
        pending.clear()

    try:
        for i, kind, source, key, value in payloads(order, seed, now_ms):
            if digest(value) != bytes(digests[i * 16: i * 16 + 8]):
                failures.append(Failure("generator", i, kind.name, source, "payload not deterministic"))
            try:
                fut = await (pz if kind.compressed else p).send(load.topic(source), value, key=key)
            except KafkaError as exc:  # refused by the client before sending
                refused.append({"index": i, "kind": kind.name, "bytes": len(value or b""),
                                "error": f"{type(exc).__name__} (client)"})
                continue
            pending.append((i, kind, len(value or b""), fut))
            sent += 1
            if len(pending) >= 5000:
                await settle()
            now = time.monotonic()
            if now - last >= 2:
                last = now
                log(f"produce: {sent:,}/{len(order):,} sent ({sent / (now - t0):,.0f}/s), "
                    f"{len(refused)} refused by the broker")
        await settle()
        await p.flush()
        await pz.flush()
    finally:
        await p.stop()
        await pz.stop()
    secs = time.monotonic() - t0
    log(f"produce: done, {sent - len([r for r in refused if 'client' not in r['error']]):,} accepted, "
        f"{len(refused)} refused, {secs:.1f}s ({sent / secs:,.0f}/s)")
    return {"seconds": secs, "per_s": sent / secs}


async def metrics_totals(url: str) -> dict[str, float]:
    s = try_scrape(url) or {}
    from streams.tools.demo import total

    return {n: total(s, f"tagstream_{n}_total") for n in
            ("events_in", "events_invalid", "deadletter", "events_anonymous", "events_processed",
             "events_duplicate")}


async def run_worker_part(args: argparse.Namespace, order: array, now_ms: int, digests: bytearray,
                          expected: array, out_dir: Path, run_id: str, failures: list[Failure]) -> dict[str, Any]:
    from streams.io.topics import ensure_topics

    app_id = f"{run_id}-w"
    proc, url, load = start_worker(run_id, app_id, args.bootstrap, args.redis_url, args.partitions, out_dir)
    dlq_topic = f"{app_id}.deadletter"
    topic_ids = {load.topic(s): n for n, s in enumerate(SOURCES)}
    samples: list[RssSample] = []
    chk = DlqCheck()
    where: dict[int, int] = {}
    refused: list[dict[str, Any]] = []
    stop = asyncio.Event()
    sampler: asyncio.Task[None] | None = None
    result: dict[str, Any] = {"app_id": app_id, "worker_log": str(proc.log_path.relative_to(REPO))}
    try:
        await ensure_topics(args.bootstrap, load.topics.values(), args.partitions)
        log(f"worker pid {proc.pid} starting (app id {app_id}, metrics {url})")
        t_start = time.monotonic()
        await wait_ready(proc, url)
        result["startup_s"] = round(time.monotonic() - t_start, 1)
        log(f"worker ready after {result['startup_s']}s")
        expected_total = sum(1 for i, k in enumerate(order) if KINDS[k].expect != "valid")
        sampler = asyncio.create_task(sample_worker(proc, samples, url, len(order), stop))
        cpu0 = cpu_seconds(proc.pid)
        result["produce"] = await produce_all(args.bootstrap, load, order, args.seed, now_ms, digests, where,
                                              topic_ids, refused, failures)
        refused_idx = {r["index"] for r in refused}
        expected_total = sum(1 for i, k in enumerate(order) if KINDS[k].expect != "valid" and i not in refused_idx)
        accepted = len(order) - len(refused_idx)
        log(f"expecting {expected_total:,} dead-letter records ({accepted:,} records accepted by the broker)")
        await consume_dlq(args.bootstrap, dlq_topic, order, where, topic_ids, digests, expected, expected_total,
                          proc, chk, failures, out_dir / "repro")
        # the valid controls: wait until the second stage has folded them in (or give up after 60 s)
        valid_idx = [i for i, k in enumerate(order) if KINDS[k].expect == "valid" and i not in refused_idx]
        anon = sum(1 for i in valid_idx if KINDS[order[i]].anonymous)
        want_processed = len(valid_idx) - anon
        m: dict[str, float] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = await metrics_totals(url)
            if m.get("events_in", 0) >= accepted and m.get("events_processed", 0) >= want_processed:
                break
            await asyncio.sleep(1)
        result["metrics"] = m
        result["expected_metrics"] = {"events_in": accepted, "events_invalid": expected_total,
                                      "events_processed": want_processed}
        result["cpu_s"] = round(cpu_seconds(proc.pid) - cpu0, 1) if proc.alive() else None
        result["alive_at_end"] = proc.alive()
    finally:
        stop.set()
        if sampler is not None:
            await sampler
        result["vm_hwm_bytes_end"] = samples[-1].hwm if samples else None
        proc.stop()
    result["exit_code"] = proc.proc.returncode if proc.proc else None
    result["crash_log_lines"] = crash_lines(proc.log_path)[:50]
    result["expected_dlq"] = expected_total
    result["refused_by_broker"] = refused
    result["dlq"] = chk.report()
    lost = [i for c_, i in where.items() if KINDS[order[i]].expect != "valid" and c_ not in chk.seen]
    result["dlq"]["lost"] = len(lost)
    for i in lost[:20]:
        failures.append(Failure("dlq", i, KINDS[order[i]].name, "", "produced, never dead-lettered"))
    result["rss"] = rss_at(samples)
    result["worker_throughput"] = worker_rate(samples)
    result["samples"] = [s.__dict__ for s in samples[:: max(1, len(samples) // 400)]]
    return result


def worker_rate(samples: list[RssSample]) -> dict[str, Any]:
    """Source records read per second by the worker, from its first record read to its last."""
    idle = [s for s in samples if s.events_in == 0]
    busy = [s for s in samples if s.events_in > 0]
    if not busy:
        return {}
    first = idle[-1] if idle else busy[0]  # the last poll before the first record was read
    last = next(s for s in busy if s.events_in >= busy[-1].events_in)
    secs = max(1e-9, last.t - first.t)
    return {"records_per_s": round((last.events_in - first.events_in) / secs, 1),
            "deadletter_per_s": round((last.deadletter - first.deadletter) / secs, 1), "seconds": round(secs, 1),
            "cpu_s": round(last.cpu - first.cpu, 1),
            "cpu_utilisation": round((last.cpu - first.cpu) / secs, 2)}


def rss_at(samples: list[RssSample]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    final = max((s.events_in for s in samples), default=0.0)  # the records the broker accepted
    for frac in (0.1, 0.5, 1.0):
        s = next((s for s in samples if s.events_in >= frac * final > 0), samples[-1] if samples else None)
        out[f"{int(frac * 100)}%"] = None if s is None else {"t_s": s.t, "rss_mib": round(s.rss / MB, 1),
                                                              "vm_hwm_mib": round(s.hwm / MB, 1)}
    if samples:
        out["start"] = {"t_s": samples[0].t, "rss_mib": round(samples[0].rss / MB, 1),
                        "vm_hwm_mib": round(samples[0].hwm / MB, 1)}
        out["peak_vm_hwm_mib"] = round(max(s.hwm for s in samples) / MB, 1)
    return out
