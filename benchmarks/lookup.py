"""Look-up latency of the HTTP API: GET /customers/{id}/tags at a fixed rate (issue 13).

    python -m benchmarks.lookup --rate 1000 --seconds 30

Seeds ``--customers`` customers with 1-3 tags each through the worker's own Redis sink (a
run-specific key prefix), starts ``tagstream serve`` on a free loopback port against that Redis
(or drives ``--api-url``, e.g. a worker's embedded API with the same prefix), then sends requests
open-loop: request i is due at start + i / rate, whether or not earlier ones came back, and its
latency counts from that due instant (so a stalled server cannot hide behind a slowed client).
Reports p50 / p90 / p99 / p99.9 / max, errors (any status but 200, or a failed request), the rate
achieved, how late the client itself sent (if the client cannot keep the rate, the figure is not
the server's), and the server's CPU seconds per 1,000 requests. Deletes its Redis keys unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from streams.io.redis_sink import RedisTagSink

from .common import REPO, RESULTS, free_port, log, machine_info
from .procstat import cpu_seconds

TAGS = ("high_value", "lapsed", "omnichannel", "hot_browser", "new_customer", "discount_seeker")


@dataclass
class Tally:
    latencies_s: list[float] = field(default_factory=list)
    send_lag_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def seed(redis_url: str, prefix: str, customers: int, seed_: int) -> list[str]:
    """Writes the customers' tags through the real sink, 5,000 changes per flush."""
    rng = random.Random(seed_)
    ids = [f"c{i:07d}" for i in range(customers)]
    sink = RedisTagSink(aioredis.Redis.from_url(redis_url), prefix=prefix)
    now_ms = int(time.time() * 1000)
    for n, cid in enumerate(ids, 1):
        for tag in rng.sample(TAGS, rng.randint(1, 3)):
            sink.add({"customer_id": cid, "tag": tag, "op": "add", "at_ms": now_ms, "rule_version": "bench-1"})
        if n % 5000 == 0:
            await sink.flush()
    await sink.flush()
    await sink.close()
    return ids


async def drop_keys(redis_url: str, prefix: str) -> int:
    client = aioredis.Redis.from_url(redis_url)
    deleted = 0
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            deleted += await client.unlink(*batch)
            batch = []
    if batch:
        deleted += await client.unlink(*batch)
    await client.aclose()
    return deleted


async def one(http: aiohttp.ClientSession, url: str, due_s: float, tally: Tally) -> None:
    tally.send_lag_s.append(time.perf_counter() - due_s)
    try:
        async with http.get(url) as r:
            await r.read()
            if r.status != 200:
                tally.error(f"http_{r.status}")
                return
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.error(type(exc).__name__)
        return
    tally.latencies_s.append(time.perf_counter() - due_s)


async def drive(base_url: str, ids: list[str], *, rate: float, seconds: float, token: str | None,
                seed_: int) -> tuple[Tally, float]:
    """Open-loop load; returns the tally and the wall time the whole run took (last reply included)."""
    rng = random.Random(seed_ + 1)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connector = aiohttp.TCPConnector(limit=256)
    tally = Tally()
    total = int(rate * seconds)
    async with aiohttp.ClientSession(connector=connector, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=10)) as http:
        for cid in ids[:50]:  # warm the connection pool and the server's code paths
            async with http.get(f"{base_url}/customers/{cid}/tags") as r:
                await r.read()
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(http, f"{base_url}/customers/{rng.choice(ids)}/tags", due, tally))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        return tally, time.perf_counter() - start


def start_serve(redis_url: str, prefix: str, port: int, token: str | None, logs: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TAGSTREAM_REDIS__URL": redis_url, "TAGSTREAM_REDIS__KEY_PREFIX": prefix,
           "TAGSTREAM_API__PORT": str(port)}
    env.pop("TAGSTREAM_API__TOKEN", None)
    if token:
        env["TAGSTREAM_API__TOKEN"] = token
    logs.parent.mkdir(parents=True, exist_ok=True)
    with logs.open("wb") as f:
        return subprocess.Popen([sys.executable, "-m", "streams.cli", "serve"], env=env, cwd=REPO, stdout=f,
                                stderr=subprocess.STDOUT)


async def wait_ready(base_url: str, proc: subprocess.Popen[bytes] | None, logs: Path | None) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"tagstream serve exited {proc.returncode}; its log: {logs}")
            try:
                async with http.get(f"{base_url}/openapi.json") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"no API answering at {base_url} within 60 s")


def report(tally: Tally, *, rate: float, seconds: float, wall_s: float, cpu_s: float | None) -> dict[str, Any]:
    lat = sorted(tally.latencies_s)
    lag = sorted(tally.send_lag_s)
    sent = len(tally.send_lag_s)
    ms = {f"p{q}": round(quantile(lat, q / 100) * 1000, 2) for q in (50, 90, 99, 99.9)}
    out = {"rate_target": rate, "seconds": seconds, "requests": sent, "ok": len(lat),
           "errors": sum(tally.errors.values()), "errors_by_kind": tally.errors,
           "achieved_rate": round(sent / wall_s, 1), "latency_ms": {**ms, "max": round(lat[-1] * 1000, 2) if lat
                                                                   else None},
           "client_send_lag_ms": {"p99": round(quantile(lag, 0.99) * 1000, 2),
                                  "max": round(lag[-1] * 1000, 2) if lag else None},
           "server_cpu_s_per_1000_requests": round(cpu_s / sent * 1000, 3) if cpu_s is not None and sent else None}
    print(f"\nlookups: {sent} requests at {rate:g}/s target, {out['achieved_rate']}/s achieved, "
          f"{out['errors']} errors {tally.errors or ''}")
    print("latency ms: " + "  ".join(f"{k} {v}" for k, v in out["latency_ms"].items()))
    print(f"client send lag ms: p99 {out['client_send_lag_ms']['p99']}  max {out['client_send_lag_ms']['max']}"
          "  (high values mean the load client, not the server, missed the schedule)")
    if cpu_s is not None:
        print(f"server CPU: {cpu_s:.2f} s = {out['server_cpu_s_per_1000_requests']} s per 1,000 requests")
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    run_id = f"lookup-{time.strftime('%Y%m%d-%H%M%S')}"
    prefix = args.prefix or f"bench-{run_id}"
    log(f"seeding {args.customers:,} customers under prefix {prefix!r} in {args.redis_url}")
    ids = await seed(args.redis_url, prefix, args.customers, args.seed)
    proc = logs = None
    base_url = args.api_url
    if base_url is None:
        port = free_port()
        logs = RESULTS / run_id / "serve.log"
        proc = start_serve(args.redis_url, prefix, port, args.token, logs)
        base_url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base_url.rstrip("/"), proc, logs)
        log(f"driving {base_url}/customers/{{id}}/tags at {args.rate:g}/s for {args.seconds:g} s")
        cpu0 = cpu_seconds(proc.pid) if proc else None
        tally, wall_s = await drive(base_url.rstrip("/"), ids, rate=args.rate, seconds=args.seconds,
                                    token=args.token, seed_=args.seed)
        cpu_s = cpu_seconds(proc.pid) - cpu0 if proc and cpu0 is not None else None
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        if not args.keep:
            log(f"deleted {await drop_keys(args.redis_url, prefix):,} keys")
    result = report(tally, rate=args.rate, seconds=args.seconds, wall_s=wall_s, cpu_s=cpu_s)
    result.update(run=run_id, customers=args.customers, api=base_url if args.api_url else "tagstream serve",
                  machine=machine_info(args.redis_url))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{run_id}.json"
    path.write_text(json.dumps(result, indent=2))
    log(f"written {path}")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lookup", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=1000.0, help="requests per second (default 1000)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the run (default 30)")
    p.add_argument("--customers", type=int, default=100_000, help="customers seeded (default 100,000)")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--api-url", help="drive this API instead of starting tagstream serve (give --prefix too)")
    p.add_argument("--prefix", help="Redis key prefix (default: a fresh one per run)")
    p.add_argument("--token", help="bearer token (given to the server started, and sent)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the seeded Redis keys")
    args = p.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.customers < 1:
        p.error("--rate, --seconds and --customers must be positive")
    result = asyncio.run(main_async(args))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
