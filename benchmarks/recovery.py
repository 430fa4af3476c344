"""Restart-to-processing time with N customers of state (issue 5, item 2).

Writes N customer states straight to a fresh worker's changelog topic (the same bytes and the
same partitions a worker would have written), then starts `tagstream worker` and times
process start -> ready (state recovered, due index rebuilt: `tagstream_ready` = 1).

    python -m benchmarks.recovery [--customers 1000000] [--store memory://|rocksdb://]

With `rocksdb://` (needs `pip install rocksdict`) it starts the worker twice: the first start
replays the whole changelog into the local store, the second only the missed delta.
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

from aiokafka import AIOKafkaProducer

from streams.engine.features.state import CustomerState
from streams.io.topics import ensure_topics

from .common import free_port

REPO = Path(__file__).resolve().parents[1]


def sample_state(i: int, now_ms: int) -> CustomerState:
    """A typical retail customer: a few windowed buckets, lifetime counters, one tag."""
    b_hour = (now_ms - (i % 50) * 60_000) // 60_000
    return CustomerState(
        features={"d16c72e3": {b_hour: i % 7 + 1}, "95e48a2a": {b_hour // 1440: 2}, "e4364efb": i % 5 + 1,
                  "23c85c5a": now_ms - (i % 1000) * 1000},
        tags={"new_customer": now_ms - 1000} if i % 3 == 0 else {},
        rule_version="retail-2026.11.1",
        due_ms=now_ms + 86_400_000 + i % 1000,
    )


async def write_changelog(bootstrap: str, topic: str, n: int, partitions: int) -> float:
    await ensure_topics(bootstrap, [topic], partitions, configs={topic: {"cleanup.policy": "compact"}})
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await p.start()
    now_ms = int(time.time() * 1000)
    total = 0
    t0 = time.monotonic()
    try:
        futs = []
        for i in range(n):
            value = sample_state(i, now_ms).dumps()
            total += len(value)
            futs.append(await p.send(topic, value, key=f"c{i:07d}".encode()))
            if len(futs) >= 20_000:
                await asyncio.gather(*futs)
                futs.clear()
                print(f"  changelog: {i + 1:,}/{n:,} states written ({(i + 1) / (time.monotonic() - t0):,.0f}/s)",
                      flush=True)
        await asyncio.gather(*futs)
    finally:
        await p.stop()
    return total / max(n, 1)


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
    args = ap.parse_args(argv)
    app_id = f"recovery-{uuid.uuid4().hex[:6]}"
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="tagstream-recovery-"))
    env = {**os.environ, "TAGSTREAM_APP_ID": app_id, "TAGSTREAM_STORE": args.store,
           "TAGSTREAM_DATA_DIR": str(data_dir), "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": args.bootstrap,
           "TAGSTREAM_KAFKA__PARTITIONS": str(args.partitions), "TAGSTREAM_METRICS__PORT": str(port),
           "TAGSTREAM_KAFKA__CLICKSTREAM_TOPIC": f"{app_id}.clickstream",
           "TAGSTREAM_KAFKA__POS_TOPIC": f"{app_id}.pos", "TAGSTREAM_KAFKA__ORDERS_TOPIC": f"{app_id}.orders",
           "TAGSTREAM_KAFKA__DEADLETTER_TOPIC": f"{app_id}.deadletter",
           "TAGSTREAM_KAFKA__TAG_CHANGES_TOPIC": f"{app_id}.tags", "TAGSTREAM_REDIS__KEY_PREFIX": app_id}
    print(f"writing {args.customers:,} customer states to {app_id}-customers-changelog", flush=True)
    avg = asyncio.run(write_changelog(args.bootstrap, f"{app_id}-customers-changelog", args.customers,
                                      args.partitions))
    log = data_dir / "worker.log"
    first, rss1, held1 = time_start(env, port, log)
    print(f"start 1 ({args.store}, changelog replay of {args.customers:,} states, {avg:.0f} B each): "
          f"ready after {first:.1f} s with {held1:,.0f} customers in state, peak RSS {rss1 / 1024:.0f} MiB",
          flush=True)
    if args.store.startswith("rocksdb"):
        second, rss2, held2 = time_start(env, port, log)
        print(f"start 2 ({args.store}, local store, delta only): ready after {second:.1f} s with "
              f"{held2:,.0f} customers in state, peak RSS {rss2 / 1024:.0f} MiB", flush=True)
    print(f"worker log: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
