"""Benchmark column (a): the raw limit of one Python process reading the source topics.

An aiokafka consumer reads the topics in batches (``getmany``) and decodes every value with
orjson — nothing else. It measures itself and prints one JSON line on stdout::

    python -m benchmarks.raw_consumer --topics a,b,c --expect 200000

``t_first``/``t_last``: wall clock when the first batch arrived / the last value was decoded;
``cpu_first``/``cpu_last``: the process's utime+stime (s) at the same instants.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

import orjson
from aiokafka import AIOKafkaConsumer

from .procstat import cpu_seconds, vm_hwm_bytes


async def run(args: argparse.Namespace) -> dict[str, float | int]:
    consumer = AIOKafkaConsumer(*args.topics.split(","), bootstrap_servers=args.bootstrap,
                                group_id=f"bench-raw-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    n = 0
    decoded_bytes = 0
    t_first = cpu_first = 0.0
    deadline = time.monotonic() + args.timeout
    try:
        while n < args.expect and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=args.max_records)
            for records in batches.values():
                if n == 0 and records:
                    t_first, cpu_first = time.time(), cpu_seconds()
                for rec in records:
                    orjson.loads(rec.value)
                    decoded_bytes += len(rec.value)
                n += len(records)
        t_last, cpu_last = time.time(), cpu_seconds()
    finally:
        await consumer.stop()
    return {"events": n, "bytes": decoded_bytes, "t_first": t_first, "t_last": t_last, "cpu_first": cpu_first,
            "cpu_last": cpu_last, "vm_hwm_bytes": vm_hwm_bytes()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Raw aiokafka + orjson consumer (benchmark column a).")
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--topics", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--max-records", type=int, default=None)
    p.add_argument("--timeout", type=float, default=600)
    args = p.parse_args(argv)
    result = asyncio.run(run(args))
    print(orjson.dumps(result).decode(), flush=True)
    return 0 if result["events"] >= args.expect else 1


if __name__ == "__main__":
    sys.exit(main())
