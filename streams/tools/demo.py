"""``tagstream demo``: the whole path on the local stack, end to end, in one command.

Starts Kafka, Redis and Prometheus (deploy/local/stack.sh), a worker process, produces a
synthetic retail stream, waits until the worker has read all of it, then shows tags of sample
customers, audience sizes, and the measured event->tag latency.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from streams.settings import IdentitySettings, Settings
from streams.tools.demo_identity import identity_done, report
from streams.tools.prom import Samples, done_count, histogram_quantile, scrape, total

REPO = Path(__file__).resolve().parents[2]


def run_demo(*, count: int, rate: float, customers: int, keep_worker: bool, identity: bool = False) -> int:
    settings = Settings(identity=IdentitySettings(enabled=True)) if identity else Settings()
    stack = REPO / "deploy" / "local" / "stack.sh"
    env = dict(os.environ)
    if identity:
        env["TAGSTREAM_IDENTITY__ENABLED"] = "true"
    env.setdefault("METRICS_PORT", str(settings.metrics.port))
    print("== 1/5 starting the local stack (Kafka, Redis, Prometheus)", flush=True)
    subprocess.run(["bash", str(stack), "up", "kafka", "redis", "prometheus"], check=True, env=env)

    logs = Path(os.environ.get("TAGSTREAM_STACK_DIR", REPO / ".stack")) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    worker_log = logs / "worker.log"
    print(f"== 2/5 starting a worker (log: {worker_log})", flush=True)
    with worker_log.open("ab") as log_file:
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], stdout=log_file,
                                  stderr=subprocess.STDOUT, env=env, cwd=REPO)
    metrics_url = f"http://{settings.metrics.host}:{settings.metrics.port}/metrics"
    try:
        _wait_for_metrics(metrics_url, worker)
        before = scrape(metrics_url)

        print(f"== 3/5 producing {count:,} retail events for {customers:,} customers at {rate:,.0f}/s", flush=True)
        from streams.tools.generator import RetailGenerator
        from streams.tools.produce import produce

        ks = settings.kafka
        seed = int(time.time())
        generator = RetailGenerator(seed=seed, customers=customers, bad_ratio=0.002, identity=identity)
        stats = asyncio.run(produce(bootstrap_servers=ks.bootstrap_servers, topics=settings.ingest_topics(),
                                    count=count, rate=rate or None, generator=generator))
        events = count - stats.per_source.get("identity", 0)  # identity records are links, not events
        done = identity_done if identity else done_count
        start_done = done(before)

        print("== 4/5 waiting for the worker to process every event", flush=True)
        deadline = time.monotonic() + 300
        while True:
            s = scrape(metrics_url)
            seen = done(s) - start_done
            print(f"   worker done with {seen:,.0f}/{events:,} events, "
                  f"{total(s, 'tagstream_tag_changes_total'):,.0f} tag changes so far", flush=True)
            if seen >= events:
                break
            if worker.poll() is not None:
                print(f"worker exited ({worker.returncode}); see {worker_log}", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print("timed out waiting for the worker", file=sys.stderr)
                return 1
            time.sleep(1)
        time.sleep(1.5)  # let the last tag writes land
        _report(settings, scrape(metrics_url))
        if identity:
            for block in report(seed, customers, count, scrape(metrics_url)):
                print(block, flush=True)
    finally:
        if not keep_worker:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
    if identity:
        print("\nWith identity on, customer ids are typed: `.venv/bin/tagstream tags user:u-…` reads any id's "
              "customer (TAGSTREAM_IDENTITY__ENABLED=true in the environment).")
    print("\nThe stack is still running: Prometheus on http://127.0.0.1:9090, Redis, Kafka.\n"
          "Look around with `.venv/bin/tagstream tags c000001` or `.venv/bin/tagstream tags --audience high_value`;\n"
          "stop everything with `bash deploy/local/stack.sh down`.")
    return 0


def _wait_for_metrics(url: str, worker: subprocess.Popen[bytes]) -> None:
    """Waits until the worker has joined its group and recovered its state (tagstream_ready)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"worker exited during start-up ({worker.returncode})")
        try:
            if total(scrape(url), "tagstream_ready") >= 1:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit("worker not ready within 90 s")


def _report(settings: Settings, s: Samples) -> None:
    from streams.io.redis_client import sync_client
    from streams.io.redis_sink import audience_key, tags_key

    print("== 5/5 results", flush=True)
    rs = settings.redis
    client = sync_client(rs)
    rules = settings.load_rules()
    prefix = settings.redis_key_prefix()
    print(f"   audiences (Redis sets {prefix}:tag:{{tag}}):")
    for tag in rules.tags:
        print(f"     {tag:<24} {client.scard(audience_key(prefix, tag)):>6} customers")
    print(f"   sample customers (Redis hashes {tags_key(prefix, '<id>', hash_tag=rs.cluster)}):")
    shown = 0
    sample = [f"c{i:06d}" for i in range(1, 200)]
    if settings.identity.enabled:  # typed ids (member:m-…, user:u-…): take some audience members
        picked: list[Any] = []
        for tag in rules.tags:
            picked += client.srandmember(audience_key(prefix, tag), 5) or []
        sample = sorted({_text(m) for m in picked})
    for cid in sample:
        tags = client.hkeys(tags_key(prefix, cid, hash_tag=rs.cluster))
        if tags:
            print(f"     {cid}: {', '.join(sorted(_text(t) for t in tags))}")
            shown += 1
        if shown >= 8:
            break
    invalid = total(s, "tagstream_events_invalid_total")
    print(f"   events in {total(s, 'tagstream_events_in_total'):,.0f}, dead-lettered {invalid:,.0f}, "
          f"anonymous {total(s, 'tagstream_events_anonymous_total'):,.0f}, "
          f"tag changes {total(s, 'tagstream_tag_changes_total'):,.0f}")
    name = "tagstream_event_to_tag_latency_seconds"
    n = total(s, f"{name}_count")
    p50, p99 = histogram_quantile(s, name, 0.5), histogram_quantile(s, name, 0.99)
    if p50 is not None and p99 is not None:
        print(f"   event->tag latency over {n:,.0f} changes: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
              "(Kafka timestamp of the source record -> written to Redis and tags.changes)")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
