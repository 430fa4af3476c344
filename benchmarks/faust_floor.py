"""Benchmark column (f): the floor of any Faust application — consume and decode, nothing else.

One Faust agent over the source topics, reading them the way tagstream's ingest agent does
(``stream.take_events(500, within=5 ms)``, raw bytes, ``orjson.loads`` per value, tagstream's
fetch size and source buffer) and doing
nothing more: no validation, no state, no output. Whatever a Faust-based worker does per event
comes on top of this, so it bounds what tagstream (or any Faust app) can reach per process.
It measures itself and prints one JSON line like ``raw_consumer``::

    python -m benchmarks.faust_floor --topics a,b,c --expect 200000
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import uuid

import faust
import orjson

from .procstat import cpu_seconds, vm_hwm_bytes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Faust consume+decode floor (benchmark column f).")
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--topics", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--faust-as-is", action="store_true",
                   help="plain Faust: without tagstream's fetch/buffer settings")
    p.add_argument("--batch-delivery", action="store_true",
                   help="with the experimental per-batch delivery patch (streams/app/faust_compat.py, off)")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                   help="extra faust.App setting (int/float values parsed), e.g. stream_buffer_maxsize=16384")
    args = p.parse_args(argv)
    extra: dict[str, object] = {}
    for kv in args.conf:
        k, v = kv.split("=", 1)
        extra[k] = int(v) if v.isdigit() else (float(v) if v.replace(".", "", 1).isdigit() else v)
    if args.batch_delivery:
        from streams.app import faust_compat

        faust_compat.install_batch_delivery()
    if not args.faust_as_is:  # what the tagstream worker runs with (streams/app/topology.py, KafkaSettings)
        from streams.settings import KafkaSettings

        extra.setdefault("consumer_max_fetch_size", KafkaSettings().fetch_max_bytes)
        extra.setdefault("stream_buffer_maxsize", KafkaSettings().source_buffer)

    app = faust.App(f"bench-floor-{uuid.uuid4().hex[:8]}", broker=f"kafka://{args.bootstrap}",
                    web_enabled=False, stream_wait_empty=False, consumer_auto_offset_reset="earliest",
                    datadir=tempfile.mkdtemp(prefix="faust-floor-"), **extra)
    topic = app.topic(*args.topics.split(","), key_serializer="raw", value_serializer="raw")
    seen = {"n": 0, "bytes": 0, "t_first": 0.0, "cpu_first": 0.0}

    async def batches(stream: faust.StreamT):  # type: ignore[no-untyped-def]
        if args.batch > 1:
            async for events in stream.take_events(args.batch, within=0.005):
                yield events
        else:  # plain per-event iteration, for comparison
            async for event in stream.events():
                yield [event]

    @app.agent(topic)
    async def consume(stream: faust.StreamT) -> None:
        async for events in batches(stream):
            if seen["n"] == 0:
                seen["t_first"], seen["cpu_first"] = time.time(), cpu_seconds()
            for ev in events:
                orjson.loads(ev.message.value)
                seen["bytes"] += len(ev.message.value)
            seen["n"] += len(events)
            if seen["n"] >= args.expect:
                result = {"events": seen["n"], "bytes": seen["bytes"], "t_first": seen["t_first"],
                          "t_last": time.time(), "cpu_first": seen["cpu_first"], "cpu_last": cpu_seconds(),
                          "vm_hwm_bytes": vm_hwm_bytes()}
                os.write(1, orjson.dumps(result) + b"\n")  # fd 1: faust routes sys.stdout to its logger
                os._exit(0)  # measured; no need for a graceful Faust shutdown

    logging.basicConfig(level=logging.WARNING)
    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.execute_from_commandline()
    return 1


if __name__ == "__main__":
    sys.exit(main())
