"""What the fault tests compare: per-customer feature values and final tags of a worker (read
from its changelog, i.e. the state it would recover) against the engine run in-process on the
same input. Counts and sums over every event make a single lost or doubled event visible."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.canonical import to_canonical
from schemas.decode import decode_event
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from tag_rules import load_rules

from .conftest import WorkerProc

RULES = Path(__file__).with_name("rules_lifetime")
MONOTONE_TAGS = frozenset({"big_spender", "frequent", "omnichannel", "explorer", "browser"})
"""Tags that never leave under RULES: their histories do not depend on the interleaving."""

Features = dict[str, dict[str, Any]]


def reference(events: list[Any], rules: Path = RULES) -> tuple[Features, dict[str, set[str]]]:
    """Feature values and final tags per customer, by the engine alone (no Kafka)."""
    engine = TagEngine(load_rules(rules))
    states: dict[str, CustomerState] = {}
    now = int(time.time() * 1000)
    for e in events:
        c = to_canonical(e.source, decode_event(e.source, e.value), now)
        if c["customer_id"]:
            engine.process_event(states.setdefault(c["customer_id"], CustomerState()), c, now)
    return ({cid: engine.feature_values(s, now) for cid, s in states.items()},
            {cid: set(s.tags) for cid, s in states.items() if s.tags})


def worker_features(w: WorkerProc, rules: Path = RULES) -> Features:
    """Feature values per customer in the worker's changelog (the last record of each key)."""
    engine = TagEngine(load_rules(rules))
    now = int(time.time() * 1000)
    out: Features = {}
    for key, value in read_to_end(w.stack.bootstrap, f"{w.prefix}-customers-changelog").items():
        if value is not None:
            out[key.decode()] = engine.feature_values(CustomerState.loads(value), now)
    return out


def read_records(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` (all its partitions, in order per partition), read up to the end
    offsets seen when the read starts."""

    async def run() -> list[Any]:
        # no group: a subscribed consumer is assigned every partition of the topic
        # read_committed: an exactly-once worker's aborted transactions are not its state
        c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", isolation_level="read_committed")
        await c.start()
        try:
            deadline = time.monotonic() + 30
            while not c.assignment():
                assert time.monotonic() < deadline, f"no partitions of {topic}"
                await asyncio.sleep(0.1)
            parts = sorted(c.assignment())
            end = await c.end_offsets(parts)
            await c.seek_to_beginning(*parts)
            out: list[Any] = []
            while [tp for tp in parts if await c.position(tp) < end[tp]]:
                assert time.monotonic() < deadline, f"could not read {topic} to its end"
                for recs in (await c.getmany(timeout_ms=500)).values():
                    out.extend(r for r in recs if r.offset < end[TopicPartition(r.topic, r.partition)])
            return out
        finally:
            await c.stop()

    return asyncio.run(run())


def read_to_end(bootstrap: str, topic: str) -> dict[bytes, bytes | None]:
    """Last value per key of ``topic``, read up to the end offsets seen when the read starts."""
    return {r.key: r.value for r in read_records(bootstrap, topic)}


def feature_diff(want: Features, got: Features, limit: int = 12) -> str:
    """The customers whose feature values differ, with the values (empty when equal)."""
    lines = []
    for cid in sorted(set(want) | set(got)):
        a, b = want.get(cid), got.get(cid)
        if a != b:
            keys = sorted(set(a or {}) | set(b or {}))
            lines.append(f"{cid}: " + ", ".join(f"{k} {(a or {}).get(k)!r} vs {(b or {}).get(k)!r}"
                                                for k in keys if (a or {}).get(k) != (b or {}).get(k)))
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more customers"]
    return "\n".join(lines)


def await_same_state(w: WorkerProc, want_features: Features, want_tags: dict[str, set[str]],
                     tags_of: Any, timeout_s: float = 180, rules: Path = RULES) -> None:
    """Waits until the worker's feature values (under ``rules``) and Redis tags equal the reference,
    or fails with the difference (feature values first: they show a lost or doubled event)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = worker_features(w, rules)
        tags = tags_of()
        if got == want_features and tags == want_tags:
            return
        w.assert_alive()
        if time.monotonic() > deadline:
            diff = feature_diff(want_features, got) or "features equal"
            raise AssertionError(f"worker state differs from the reference:\n{diff}\n"
                                 f"tags: {tag_diff(want_tags, tags)}\n{w.group_tail(30)}")
        time.sleep(1)


def tag_diff(a: dict[str, set[str]], b: dict[str, set[str]]) -> str:
    keys = sorted(set(a) | set(b))
    return "; ".join(f"{k}: {sorted(a.get(k, set()))} vs {sorted(b.get(k, set()))}"
                     for k in keys if a.get(k) != b.get(k))[:2000] or "equal"
