"""Restart-to-processing time with N customers of state (issue 5, item 2).

Writes N customer states straight to a fresh worker's changelog topic (the same bytes and the
same partitions a worker would have written), then starts `tagstream worker` and times
process start -> ready (state recovered, due index rebuilt: `tagstream_ready` = 1).

    python -m benchmarks.recovery [--customers 1000000] [--store memory://|rocksdb://] [--delta 50000]

The states are real: ``--pool-events`` RetailGenerator events (the throughput benchmark's load)
run through ``TagEngine`` with the reference workload (benchmarks/reference_rules.yaml, which
the worker runs too, so no state is re-evaluated as a rule change), encoded with
``CustomerState.dumps()``: ~900 B on average, the same as the throughput run's changelog.
Customer i gets state ``i mod pool size``; the ids vary.

With `rocksdb://` (needs `pip install rocksdict`) it starts the worker twice: the first start
replays the whole changelog into the local store; then ``--delta N`` state updates (existing
customers, new states) are written to the changelog, so the second start replays those N records.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from streams.io.topics import ensure_topics

from .common import REFERENCE_RULES, free_port

REPO = Path(__file__).resolve().parents[1]


def state_pool(events: int, seed: int, rules: Path = REFERENCE_RULES) -> list[bytes]:
    """Encoded states of real customers: the throughput benchmark's load (RetailGenerator, 1 ms
    apart, ending now, ``events / 2`` customers in the population) folded by ``TagEngine`` with
    ``rules``, each event at its own time; customers left with no state (their events feed no
    feature) are dropped, as the worker drops them."""
    from itertools import islice

    from schemas.canonical import to_canonical
    from schemas.decode import decode_event
    from streams.engine.features.state import CustomerState
    from streams.engine.tag_engine import TagEngine
    from streams.settings import EngineSettings
    from streams.tools.generator import RetailGenerator
    from tag_rules import load_rules

    es = EngineSettings()
    engine = TagEngine(load_rules(rules), allowed_lateness_ms=es.allowed_lateness_ms,
                       dedup_horizon_ms=es.dedup_horizon_ms, dedup_max_ids=es.dedup_max_ids)
    now_ms = int(time.time() * 1000)
    gen = RetailGenerator(seed=seed, customers=max(1, events // 2), start_ms=now_ms - events, step_ms=1.0)
    states: dict[str, CustomerState] = {}
    for ev in islice(gen, events):
        if ev.key is None or not ev.valid:
            continue
        canonical = to_canonical(ev.source, decode_event(ev.source, ev.value), now_ms)
        state = states.setdefault(canonical["customer_id"], CustomerState())
        engine.process_event(state, canonical, canonical["ts_ms"])
    pool = [s.dumps() for s in states.values() if s.features or s.tags]
    if not pool:
        raise SystemExit(f"no customer state from {events} events")
    return pool


async def write_states(bootstrap: str, topic: str, keys: range | list[int], pool: list[bytes], shift: int,
                       what: str) -> float:
    """Writes customer ``c<i>`` (i in ``keys``) with state ``pool[(i + shift) % len(pool)]``;
    returns the mean value size."""
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await p.start()
    total = n = 0
    t0 = time.monotonic()
    try:
        futs = []
        for i in keys:
            value = pool[(i + shift) % len(pool)]
            total += len(value)
            n += 1
            futs.append(await p.send(topic, value, key=f"c{i:07d}".encode()))
            if len(futs) >= 20_000:
                await asyncio.gather(*futs)
                futs.clear()
                print(f"  {what}: {n:,}/{len(keys):,} states written ({n / (time.monotonic() - t0):,.0f}/s)",
                      flush=True)
        await asyncio.gather(*futs)
    finally:
        await p.stop()
    return total / max(n, 1)


async def write_changelog(bootstrap: str, topic: str, n: int, partitions: int, pool: list[bytes]) -> float:
    await ensure_topics(bootstrap, [topic], partitions, configs={topic: {"cleanup.policy": "compact"}})
    return await write_states(bootstrap, topic, range(n), pool, 0, "changelog")


def delta_keys(customers: int, delta: int) -> list[int]:
    """``delta`` existing customers, spread evenly over all of them (all partitions)."""
    return [j * customers // delta for j in range(delta)] if delta <= customers else \
        [j % customers for j in range(delta)]


def time_start(env: dict[str, str], port: int, log: Path) -> tuple[float, int, float]:
    t0 = time.monotonic()
    with log.open("ab") as f:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=f,
                                stderr=subprocess.STDOUT, cwd=REPO)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"worker exited ({proc.returncode}); log: {log}")
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                if "tagstream_ready 1.0" in text:
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > 1800:
                raise SystemExit("not ready after 30 min")
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        time.sleep(0.5)  # one timer tick: the gauge of customers held
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        held = float(next(ln.split()[1] for ln in text.splitlines() if ln.startswith("tagstream_customers_in_state ")))
        rss_kb = int(next(ln.split()[1] for ln in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                          if ln.startswith("VmHWM")))
        return elapsed, rss_kb, held
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--store", default="memory://")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--delta", type=int, default=0,
                    help="rocksdb:// only: state updates written to the changelog between the two starts, "
                         "replayed by the second (default 0)")
    ap.add_argument("--pool-events", type=int, default=20_000,
                    help="generator events folded into the pool of real states (default 20,000: ~1,100 states)")
    ap.add_argument("--seed", type=int, default=20261127)
    args = ap.parse_args(argv)
    if args.delta and not args.store.startswith("rocksdb"):
        ap.error("--delta needs --store rocksdb:// (memory:// replays the whole changelog on every start)")
    app_id = f"recovery-{uuid.uuid4().hex[:6]}"
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="tagstream-recovery-"))
    env = {**os.environ, "TAGSTREAM_APP_ID": app_id, "TAGSTREAM_STORE": args.store,
           "TAGSTREAM_DATA_DIR": str(data_dir), "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": args.bootstrap,
           "TAGSTREAM_KAFKA__PARTITIONS": str(args.partitions), "TAGSTREAM_METRICS__PORT": str(port),
           "TAGSTREAM_API__ENABLED": "false",
           "TAGSTREAM_KAFKA__CLICKSTREAM_TOPIC": f"{app_id}.clickstream",
           "TAGSTREAM_KAFKA__POS_TOPIC": f"{app_id}.pos", "TAGSTREAM_KAFKA__ORDERS_TOPIC": f"{app_id}.orders",
           "TAGSTREAM_KAFKA__DEADLETTER_TOPIC": f"{app_id}.deadletter",
           "TAGSTREAM_KAFKA__TAG_CHANGES_TOPIC": f"{app_id}.tags", "TAGSTREAM_REDIS__KEY_PREFIX": app_id,
           "TAGSTREAM_RULES_PATH": str(REFERENCE_RULES)}
    changelog = f"{app_id}-customers-changelog"
    pool = state_pool(args.pool_events, args.seed)
    sizes = sorted(len(v) for v in pool)
    first_due = min((d for d in (orjson.loads(v).get("d") for v in pool) if d is not None), default=None)
    print(f"state pool: {len(pool):,} real states (reference workload), {sum(sizes) / len(sizes):.0f} B mean, "
          f"{sizes[len(sizes) // 2]} B median, {sizes[-1]:,} B max"
          + (f"; first due time in {(first_due - time.time() * 1000) / 60_000:.0f} min (the run should end "
             f"before it)" if first_due else ""), flush=True)
    print(f"writing {args.customers:,} customer states to {changelog}", flush=True)
    avg = asyncio.run(write_changelog(args.bootstrap, changelog, args.customers, args.partitions, pool))
    log = data_dir / "worker.log"
    first, rss1, held1 = time_start(env, port, log)
    print(f"start 1 ({args.store}, changelog replay of {args.customers:,} states, {avg:.0f} B/state): "
          f"ready after {first:.1f} s with {held1:,.0f} customers in state, peak RSS {rss1 / 1024:.0f} MiB",
          flush=True)
    if args.store.startswith("rocksdb"):
        delta_avg = 0.0
        if args.delta:
            print(f"writing a delta of {args.delta:,} state updates to {changelog}", flush=True)
            delta_avg = asyncio.run(write_states(args.bootstrap, changelog, delta_keys(args.customers, args.delta),
                                                 pool, 1, "delta"))
        second, rss2, held2 = time_start(env, port, log)
        print(f"start 2 ({args.store}, local store + changelog delta of {args.delta:,} records"
              + (f", {delta_avg:.0f} B/state" if args.delta else "")
              + f"): ready after {second:.1f} s with {held2:,.0f} customers in state, "
              f"peak RSS {rss2 / 1024:.0f} MiB", flush=True)
    print(f"worker log: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
