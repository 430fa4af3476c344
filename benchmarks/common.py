"""Shared pieces of the benchmarks: topics and load, a worker's environment, free ports.

The rest lives in modules named after it, and is re-exported here for the many benchmarks (and
tests) that import it from ``benchmarks.common``: paths (``REPO``, ``RESULTS``, ``REFERENCE_RULES``),
``log``, worker processes (``processes``: ``Proc``, ``ProcGroup``), scraping /metrics (``metrics``:
``Samples``, ``scrape_all``, ``try_scrape``, ``hist_delta``, ...), drain watching (``drain``:
``watch_drain``, ``Drain``, ...), ``state_size`` and the machine (``machine``: ``machine_info``,
``git_state``). New code may import from those modules directly.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from streams.io.topics import ensure_topics
from streams.tools.generator import SOURCES, RetailGenerator
from streams.tools.produce import ProduceStats, produce

from .drain import Drain, EndOffsets, baseline_done, watch_drain
from .log import log
from .machine import git_state, machine_info
from .metrics import SCRAPE_SLOW, Samples, hist_delta, hist_delta_where, merge_samples, scrape_all, try_scrape
from .paths import REFERENCE_RULES, REPO, RESULTS
from .processes import Proc, ProcGroup
from .state_size import state_size

__all__ = [
    "REFERENCE_RULES", "REPO", "RESULTS", "SCRAPE_SLOW", "Drain", "EndOffsets", "Load", "Proc", "ProcGroup",
    "Samples", "baseline_done", "check_customers", "delete_topics", "free_port", "git_state", "hist_delta",
    "hist_delta_where", "input_customers", "log", "machine_info", "merge_samples", "produce_at_rate",
    "produce_backlog", "scrape_all", "state_size", "tagstream_env", "try_scrape", "watch_drain",
]


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
    """The source topics of one benchmark run, and how its fixed-rate phases send their events
    (``producer``: ``records``, ``streams.tools.produce`` record by record; ``paced``, made before
    the phase and sent in record batches, benchmarks/paced_producer.py)."""

    run_id: str
    bootstrap: str
    partitions: int
    producer: str = "records"

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

