"""What the identity tests compare: per canonical customer, the feature values in a worker's changelog
(forwarding stubs left out) against an independent in-process reference that resolves every event
with the pure identity graph and folds the events of each canonical id with the engine. Counts and
sums over every event make one lost, doubled or mis-attributed event visible.

Which of several competing links a cap keeps depends on the order the identity stage decided them
("first come, first kept"), and around a rebalance faust re-delivers records it dropped after later
ones: that order is not the topic's. The clusters, though, depend only on the *set* of accepted
links (tests/unit/test_identity_graph.py), so the reference takes every link on the topic except
those the worker refused — their ids are in its dead-letter topic — and applies them without caps."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.canonical import to_canonical
from schemas.decode import decode_event
from streams.app.envelope import decode_envelope
from streams.app.identity_links import decode_links, usable_ids
from streams.engine.features.state import CustomerState
from streams.engine.identity.graph import REFUSAL_REASONS, GraphLimits, IdentityGraph
from streams.engine.tag_engine import TagEngine
from tag_rules import load_rules

from .conftest import WorkerProc
from .faultcheck import RULES, feature_diff, read_records, read_to_end

Features = dict[str, dict[str, Any]]


def read_all(bootstrap: str, topic: str, isolation_level: str = "read_uncommitted") -> list[Any]:
    """Every record of a one-partition ``topic`` up to its end offset, in order."""

    async def run() -> list[Any]:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", isolation_level=isolation_level)
        await c.start()
        try:
            if topic not in await c.topics():  # refreshes the metadata
                return []
            parts = [TopicPartition(topic, 0)]
            c.assign(parts)
            await c.seek_to_beginning(*parts)
            ends = await c.end_offsets(parts)
            out: list[Any] = []
            while [tp for tp in parts if await c.position(tp) < ends[tp]]:
                for recs in (await c.getmany(timeout_ms=500)).values():
                    out.extend(recs)
            return out
        finally:
            await c.stop()

    return asyncio.run(run())


def links_read(w: WorkerProc) -> list[dict[str, Any]]:
    """The links on the identity stage's topic, in the order it read them."""
    return [link for r in read_all(w.stack.bootstrap, f"{w.prefix}-identity-links") for link in decode_links(r.value)]


UNCAPPED = GraphLimits(per_type={}, max_cluster=10**9)


def refused_links(w: WorkerProc) -> set[str]:
    """Ids of the links the worker refused (dead-lettered with a graph refusal reason)."""
    out: set[str] = set()
    for r in read_records(w.stack.bootstrap, w.topic("deadletter")):
        headers = {k: v.decode() for k, v in r.headers}
        if headers.get("ts.reason") in REFUSAL_REASONS and r.value and r.value.startswith(b"{"):
            link = orjson.loads(r.value)
            if isinstance(link, dict) and "link_id" in link:
                out.add(str(link["link_id"]))
    return out


def reference(events: list[tuple[str, bytes]], links: list[dict[str, Any]], rules: Path = RULES,
              refused: set[str] | None = None) -> tuple[Features, IdentityGraph]:
    """Feature values per canonical customer, by the pure graph and the engine alone (no Kafka):
    every link but the ``refused`` ones (ids), or, without ``refused``, the links in topic order with
    the default caps."""
    graph = IdentityGraph() if refused is None else IdentityGraph(UNCAPPED)
    for link in links:
        if refused is None or link["link_id"] not in refused:
            graph.link(link["ids"], link["ts_ms"])
    engine = TagEngine(load_rules(rules))
    states: dict[str, CustomerState] = {}
    now = int(time.time() * 1000)
    for source, value in events:
        event = decode_event(source, value)
        ids, _ = usable_ids(event)
        if not ids:
            continue
        c = to_canonical(source, event, now)
        c["customer_id"] = graph.resolve(ids[0])
        engine.process_event(states.setdefault(c["customer_id"], CustomerState()), c, now)
    return {cid: engine.feature_values(s, now) for cid, s in states.items()}, graph


def worker_features(w: WorkerProc, rules: Path = RULES) -> tuple[Features, dict[str, str]]:
    """Feature values of the live customers in the worker's changelog, and the stubs (id -> survivor)."""
    engine = TagEngine(load_rules(rules))
    now = int(time.time() * 1000)
    live: Features = {}
    stubs: dict[str, str] = {}
    for key, value in read_to_end(w.stack.bootstrap, f"{w.prefix}-customers-changelog").items():
        if value is None:
            continue
        state = CustomerState.loads(value)
        if state.moved is not None:
            stubs[key.decode()] = state.moved["to"]
        else:
            live[key.decode()] = engine.feature_values(state, now)
    return live, stubs


def await_same_features(w: WorkerProc, events: list[tuple[str, bytes]], timeout_s: float = 180,
                        rules: Path = RULES) -> tuple[Features, IdentityGraph, dict[str, str]]:
    """Waits until the worker's live customers equal the reference, or fails with the difference."""
    deadline = time.monotonic() + timeout_s
    while True:
        want, graph = reference(events, links_read(w), rules, refused_links(w))
        got, stubs = worker_features(w, rules)
        if got == want:
            return want, graph, stubs
        w.assert_alive()
        if time.monotonic() > deadline:
            raw = read_to_end(w.stack.bootstrap, f"{w.prefix}-customers-changelog")
            differing = [k for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)][:5]
            states = "\n".join(f"{k}: {raw.get(k.encode())!r}"[:600] for k in differing)
            raise AssertionError(f"worker state differs from the identity reference:\n{feature_diff(want, got)}\n"
                                 f"{states}\n"
                                 f"stubs: {dict(list(stubs.items())[:20])}\n"
                                 f"{trace(w, differing, graph, events)}\n{w.group_tail(40)}")
        time.sleep(1)


def trace(w: WorkerProc, customers: list[str], graph: IdentityGraph, events: list[tuple[str, bytes]],
          limit: int = 6000) -> str:
    """For a failure: the customer-topic history of the differing customers' clusters (by the reference
    graph) -- every merge item, and every event seen more than once on the topic, with its positions,
    keys and forwarding -- so a doubled or lost event shows the path it took."""
    try:
        cluster = {k for c in customers for k in (graph.members(graph.resolve(c)) or {c: 0})}
        mine = set()
        for source, value in events:
            ids, _ = usable_ids(decode_event(source, value))
            if ids and ids[0] in cluster:
                mine.add(str(orjson.loads(value)["event_id"]))
        seen: dict[str, list[str]] = {}
        lines: list[str] = []
        for r in read_records(w.stack.bootstrap, f"{w.prefix}-customer-events"):
            for item in decode_envelope(r.value):
                where = f"p{r.partition}@{r.offset}"
                if "merge" in item and (item["customer_id"] in cluster or item["merge"]["from"] in cluster):
                    st = item["merge"].get("state") or {}
                    lines.append(f"{where} merge {item['merge']['from']} -> {item['customer_id']} "
                                 f"id {item['merge']['merge_id']} via {item.get('via')} "
                                 f"seen-bytes {len(st.get('s', ''))}")
                elif "absorb" in item and item["customer_id"] in cluster:
                    lines.append(f"{where} absorb {item['customer_id']} -> {item['absorb']['into']} "
                                 f"id {item['absorb']['merge_id']}")
                elif item.get("event_id") in mine:
                    seen.setdefault(item["event_id"], []).append(
                        f"{where} {item['customer_id']} via {item.get('via')} hops {item.get('hops', 0)}")
        again = {e: p for e, p in seen.items() if len(p) > 1}
        head = [f"{len(mine)} events of the cluster {sorted(cluster)}; {len(again)} on the topic more than once:"]
        head += [f"  {e}: " + " | ".join(p) for e, p in sorted(again.items())]
        return "\n".join([*head, "merges and absorbs:", *lines])[:limit]
    except Exception as exc:  # the trace only explains a failure: never hides it
        return f"(no trace: {type(exc).__name__}: {exc})"


def encoded(events: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(e) for e in events]
