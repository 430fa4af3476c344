"""Probes of the fuzz run (benchmarks/fuzz.py): records found or suspected to break the worker, each
sent on its own small worker (``PROBES``, ``run_probe``), and the broker's record size limit."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from .fuzz_fields import MB, RAW, dumps_raw
from .fuzz_worker import crash_lines, metrics_totals, new_producer, start_worker, wait_ready


def _probe_qty(now_ms: int) -> tuple[bytes, dict[str, Any]]:
    ev = {"event_id": "probe-qty", "ts": now_ms - 1000, "store_id": "s01", "member_id": "probe-c1", "type": "sale",
          "items": [{"sku": "a", "category": "b", "qty": RAW, "unit_price": 1.0}], "total": 1.0,
          "payment_method": "card"}
    return dumps_raw(ev, str(10**30).encode()), {}


def _probe_size(size: int, compress: bool) -> Callable[[int], tuple[bytes, dict[str, Any]]]:
    def build(now_ms: int) -> tuple[bytes, dict[str, Any]]:
        body = orjson.dumps({"event_id": "probe-big", "ts": "yesterday", "note": "x" * (size - 80)})
        return body, ({"compression_type": "gzip"} if compress else {})
    return build


PROBES: dict[str, tuple[str, Callable[[int], tuple[bytes, dict[str, Any]]], str]] = {
    "qty_over_64_bits": ("pos", _probe_qty,
                         "a POS sale with items[0].qty = 10**30: valid for the schema (strict int >= 1), "
                         "but orjson cannot encode it when ingest repartitions the canonical event"),
    "dlq_record_over_producer_limit": ("clickstream", _probe_size(1_000_000, False),
                                       "an invalid 1,000,000-byte record: the broker takes it (limit "
                                       "1,048,588), the worker's DLQ copy (+ headers) is over faust's "
                                       "producer_max_request_size (1,000,000)"),
    "compressed_3mb": ("orders", _probe_size(3 * MB, True),
                       "an invalid 3 MiB record sent gzip-compressed: the broker checks the compressed "
                       "size, so it is accepted; the worker must dead-letter 3 MiB"),
}


async def run_probe(args: argparse.Namespace, name: str, run_id: str, out_dir: Path) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.io.topics import ensure_topics

    source, build, why = PROBES[name]
    pid = f"{run_id}-p-{name.replace('_', '-')}"
    proc, url, load = start_worker(pid, pid + "-w", args.bootstrap, args.redis_url, 1, out_dir)
    res: dict[str, Any] = {"probe": name, "what": why}
    try:
        await ensure_topics(args.bootstrap, load.topics.values(), 1)
        await wait_ready(proc, url)
        now_ms = int(time.time() * 1000)
        value, pkw = build(now_ms)
        canary = b'{"event_id": "canary", "ts": '  # truncated JSON, sent after the probe
        p = new_producer(args.bootstrap, **pkw)
        await p.start()
        try:
            try:
                md = await p.send_and_wait(load.topic(source), value, key=b"probe")
                res["produced"] = {"bytes": len(value), "offset": md.offset}
            except Exception as exc:
                res["produced"] = {"bytes": len(value), "refused": f"{type(exc).__name__}: {exc}"[:300]}
            await p.send_and_wait(load.topic(source), canary, key=b"canary")
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, enable_auto_commit=False,
                             max_partition_fetch_bytes=16 * MB)
        await c.start()
        got: list[dict[str, Any]] = []
        try:
            deadline = time.monotonic() + 30
            tp = TopicPartition(f"{pid}-w.deadletter", 0)
            while time.monotonic() < deadline and not c.partitions_for_topic(tp.topic):
                await c._client.force_metadata_update()
                await asyncio.sleep(1)
            if c.partitions_for_topic(tp.topic):
                c.assign([tp])
                await c.seek_to_beginning(tp)
                while time.monotonic() < deadline and len(got) < 2:
                    for recs in (await c.getmany(timeout_ms=500)).values():
                        for r in recs:
                            h = dict(r.headers or [])
                            got.append({"key": r.key.decode(errors="replace") if r.key else None,
                                        "reason": h.get("ts.reason", b"").decode(),
                                        "error": h.get("ts.error", b"").decode(errors="replace")[:200],
                                        "value_identical": (r.key == b"canary" and r.value == canary)
                                        or (r.key == b"probe" and r.value == value)})
        finally:
            await c.stop()
        m = await metrics_totals(url)
        res.update(dlq=got, alive=proc.alive(), metrics={k: m[k] for k in ("events_in", "deadletter",
                                                                            "events_processed")})
    finally:
        proc.stop()
    res["crash_log_lines"] = crash_lines(proc.log_path)[:12]
    keys = {g["key"] for g in got}
    if "refused" in res.get("produced", {}):
        res["verdict"] = "refused by the broker (not a worker issue)"
    elif "probe" in keys and "canary" in keys and not res["crash_log_lines"]:
        res["verdict"] = "ok: dead-lettered, ingest kept going"
    else:
        res["verdict"] = ("FAIL: " + ("probe not dead-lettered; " if "probe" not in keys else "")
                          + ("ingest stopped (canary not dead-lettered); " if "canary" not in keys else "")
                          + ("agent crash in the worker log" if res["crash_log_lines"] else "")).rstrip("; ")
    return res


async def broker_limit(bootstrap: str, run_id: str) -> dict[str, Any]:
    """The largest value (uncompressed, no key) the broker accepts on a default topic (bisection)."""
    from aiokafka.errors import KafkaError

    from streams.io.topics import ensure_topics

    topic = f"{run_id}.limit"
    await ensure_topics(bootstrap, [topic], 1)
    p = new_producer(bootstrap)
    await p.start()
    lo, hi = 900_000, 1_100_000  # accepted, refused
    try:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                await p.send_and_wait(topic, b"x" * mid)
                lo = mid
            except KafkaError:
                hi = mid
    finally:
        await p.stop()
    return {"max_value_bytes_accepted": lo, "min_value_bytes_refused": hi}
