"""Ingest's work per source record, in-process: ``IngestStage.process`` over the generator's records
in batches of 1,000 (decode and check, customer key, item, envelope; the sends go to a producer that
only keeps them), with the Rust core (``native/``) and with the Python path (``TAGSTREAM_CORE=off``),
identity resolution off and on.

    python -m benchmarks.ingest_batch [--records 200000] [--repeat 5] [--seed 7]

Each variant runs in a process of its own (the core is chosen at import), the best of ``--repeat``
passes over the same records. Run it alone (docs/operations.md, *Rust core*).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TOPICS = {"events.clickstream": "clickstream", "events.pos": "pos", "events.orders": "orders"}


class _Record:
    __slots__ = ("key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, topic: str, partition: int, offset: int, timestamp: float, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.timestamp, self.value, self.key = (
            topic, partition, offset, timestamp, value, None)


class _Producer:
    """Keeps nothing: every send is acknowledged at once."""

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


async def measure(records: int, repeat: int, seed: int, identity: bool) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    import streams.engine  # noqa: F401  first, as in the worker: the compiled modules (schemas.fast_decode too)
    from streams.app.envelope import EnvelopeSender
    from streams.app.ingest import IngestStage
    from streams.engine import native_core
    from streams.engine.clock import WallClock
    from streams.engine.identity.repeats import LinkRepeats
    from streams.io.deadletter import DeadLetterWriter
    from streams.io.metrics import Metrics
    from streams.tools.generator import RetailGenerator

    start_ms = int(time.time() * 1000) - records
    gen = RetailGenerator(seed=seed, customers=100_000, start_ms=start_ms, step_ms=1.0)
    recs = [_Record(f"events.{e.source}", i % 4, i, (start_ms + i) / 1000, e.value)
            for i, e in enumerate(gen.take(records))]
    batches = [recs[i:i + 1000] for i in range(0, len(recs), 1000)]
    producer = _Producer()
    metrics = Metrics.create(CollectorRegistry())
    clock = WallClock()
    stage = IngestStage(source_by_topic=TOPICS, partitions=4, clock=clock, future_tolerance_ms=60_000,
                        envelopes=EnvelopeSender(producer, "customers"),
                        deadletter=DeadLetterWriter(producer, "dlq", metrics), metrics=metrics,
                        links=EnvelopeSender(producer, "links") if identity else None,
                        repeats=LinkRepeats(300_000, 100_000, clock.now_ms) if identity else None)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for batch in batches:
            await stage.process(batch)
        best = min(best, time.perf_counter() - t)
    return {"core": native_core.CORE is not None, "reason": native_core.CORE_REASON, "records": len(recs),
            "us_per_record": best / len(recs) * 1e6}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.variant is not None:
        print(json.dumps(asyncio.run(measure(args.records, args.repeat, args.seed, args.variant.endswith("on")))))
        return 0
    out: dict[str, dict[str, Any]] = {}
    for identity in ("off", "on"):
        for path in ("python", "core"):
            variant = f"{path}-identity-{identity}"
            env = {**os.environ, "TAGSTREAM_CORE": "on" if path == "core" else "off"}
            cmd = [sys.executable, "-m", "benchmarks.ingest_batch", "--variant", variant, "--records",
                   str(args.records), "--repeat", str(args.repeat), "--seed", str(args.seed)]
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
            out[variant] = json.loads(proc.stdout)
            print(f"identity {identity:3}  {path:6} {out[variant]['us_per_record']:.2f} µs per record "
                  f"({out[variant]['records']:,} records in batches of 1,000, best of {args.repeat})", flush=True)
        ratio = out[f"core-identity-{identity}"]["us_per_record"] / out[f"python-identity-{identity}"]["us_per_record"]
        print(f"identity {identity:3}  core / python: {ratio:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
