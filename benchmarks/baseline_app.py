"""Benchmark column (b): the straightforward Faust application a competent developer would write.

Same features and tags as tagstream (the compiled rules of ``benchmarks/reference_rules.yaml``:
their ``where`` and ``when`` expressions are evaluated as compiled, so the logic is identical),
but with the obvious implementation choices and no optimisation:

* one agent over the three source topics, values decoded by Faust into a ``faust.Record``
  (Faust's JSON codec; the input topics are already keyed by customer id, so there is no
  repartition step — that saves the baseline a Kafka hop that tagstream pays);
* a Faust table ``customers`` (JSON values, default changelog) of plain dicts per customer:
  windowed features keep a list of ``[ts_ms, value]`` per feature, pruned when read; lifetime
  features keep a running aggregate;
* per event: fold, recompute every feature, evaluate every tag, write the table entry, and
  write the customer's whole tag set to Redis (``SET <prefix>:tags:<id>`` JSON, one round trip),
  plus the audience sets and a tag-change message for the tags that changed;
* no due-time timer: tags only change when an event arrives (tagstream also expires them with
  the clock — more work that the baseline skips).

Run (the benchmark does this)::

    python -m benchmarks.baseline_app --app-id ID --topics a,b,c --rules PATH --redis-prefix P \\
        --metrics-port 9470 --tag-topic T
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from typing import Any, Optional  # faust reads the annotations at run time

import faust
import redis.asyncio as aioredis
from prometheus_client import Counter, Histogram, start_http_server

from tag_rules import load_rules

# One record type for the three sources (one agent reads all three topics): every field that
# any source has, all optional.


class SourceEvent(faust.Record, serializer="json"):
    event_id: Optional[str] = None  # noqa: UP045
    ts: Any = None
    type: Optional[str] = None  # noqa: UP045
    session_id: Optional[str] = None  # noqa: UP045
    user_id: Optional[str] = None  # noqa: UP045
    anonymous_id: Optional[str] = None  # noqa: UP045
    sku: Optional[str] = None  # noqa: UP045
    category: Optional[str] = None  # noqa: UP045
    price: Optional[float] = None  # noqa: UP045
    url: Optional[str] = None  # noqa: UP045
    query: Optional[str] = None  # noqa: UP045
    channel: Optional[str] = None  # noqa: UP045
    store_id: Optional[str] = None  # noqa: UP045
    member_id: Optional[str] = None  # noqa: UP045
    items: Any = None
    total: Optional[float] = None  # noqa: UP045
    payment_method: Optional[str] = None  # noqa: UP045
    order_id: Optional[str] = None  # noqa: UP045
    status: Optional[str] = None  # noqa: UP045
    amount: Optional[float] = None  # noqa: UP045
    currency: Optional[str] = None  # noqa: UP045


def parse_ts(ts: Any) -> int:
    if isinstance(ts, int):
        return ts
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00")).timestamp() * 1000)


def unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v and v not in out:
            out.append(v)
    return out


def to_event(source: str, r: SourceEvent, kafka_ts_ms: int) -> dict[str, Any]:
    """The flat event the rule expressions read (the same fields tagstream's canonical event has)."""
    items = r.items or []
    ev = {
        "event_id": r.event_id, "source": source, "type": r.type, "customer_id": None,
        "ts_ms": parse_ts(r.ts), "src_ts_ms": kafka_ts_ms, "amount": None, "currency": None,
        "skus": [], "categories": [], "channel": None, "store_id": None, "session_id": None,
        "order_id": None, "payment_method": None, "quantity": None, "query": None, "url": None,
    }
    if source == "clickstream":
        ev.update(customer_id=r.user_id, amount=float(r.price) if r.price is not None else None,
                  skus=unique([r.sku]), categories=unique([r.category]), channel=r.channel,
                  session_id=r.session_id, query=r.query, url=r.url)
    elif source == "pos":
        ev.update(customer_id=r.member_id, amount=abs(float(r.total)), skus=unique([i["sku"] for i in items]),
                  categories=unique([i["category"] for i in items]), channel="store", store_id=r.store_id,
                  payment_method=r.payment_method, quantity=sum(i["qty"] for i in items))
    else:
        ev.update(customer_id=r.user_id, type=r.status, amount=float(r.amount), currency=r.currency,
                  skus=unique([i["sku"] for i in items]), categories=unique([i["category"] for i in items]),
                  channel=r.channel, order_id=r.order_id, quantity=sum(i["qty"] for i in items))
    return ev


def feature_inputs(f: Any, ev: dict[str, Any]) -> list[Any]:
    """What one event contributes to feature ``f`` (same rules as tagstream: lists count as their
    first element, except for distinct_count which counts every element)."""
    if f.field is None:
        return [None]
    v = ev.get(f.field)
    if v is None:
        return []
    if isinstance(v, list):
        return v if f.agg == "distinct_count" else v[:1]
    return [v]


def fold(state: dict[str, Any], f: Any, ev: dict[str, Any], now_ms: int) -> None:
    ts = ev["ts_ms"]
    for v in feature_inputs(f, ev):
        if f.window_ms is not None:
            if ts > now_ms - f.window_ms:
                state["w"].setdefault(f.name, []).append([ts, v])
            continue
        life = state["l"]
        cur = life.get(f.name)
        if f.agg == "count":
            life[f.name] = (cur or 0) + 1
        elif f.agg == "sum":
            life[f.name] = (cur or 0) + v
        elif f.agg == "min":
            life[f.name] = v if cur is None else min(cur, v)
        elif f.agg == "max":
            life[f.name] = v if cur is None else max(cur, v)
        elif f.agg == "avg":
            life[f.name] = [v, 1] if cur is None else [cur[0] + v, cur[1] + 1]
        elif f.agg == "since_last":
            life[f.name] = ts if cur is None else max(cur, ts)
        elif f.agg == "distinct_count":
            cur = cur or []
            if v not in cur:
                cur.append(v)
            life[f.name] = cur
        elif f.agg == "first":
            life[f.name] = [ts, v] if cur is None or ts < cur[0] else cur
        elif f.agg == "last":
            life[f.name] = [ts, v] if cur is None or ts >= cur[0] else cur


def feature_value(state: dict[str, Any], f: Any, now_ms: int) -> Any:
    if f.window_ms is None:
        cur = state["l"].get(f.name)
        if f.agg == "since_last":
            return None if cur is None else round((now_ms - cur) / 1000, 3)
        if cur is None:
            return 0 if f.agg in ("count", "sum", "distinct_count") else None
        if f.agg == "sum":
            return round(cur, 6) if isinstance(cur, float) else cur
        if f.agg == "avg":
            return round(cur[0] / cur[1], 6)
        if f.agg == "distinct_count":
            return len(cur)
        if f.agg in ("first", "last"):
            return cur[1]
        return cur
    # Windowed: prune the raw list, then aggregate what is left.
    entries = [e for e in state["w"].get(f.name, []) if e[0] > now_ms - f.window_ms]
    if entries:
        state["w"][f.name] = entries
    else:
        state["w"].pop(f.name, None)
    values = [e[1] for e in entries]
    if f.agg == "count":
        return len(values)
    if f.agg == "sum":
        s = sum(values)
        return round(s, 6) if isinstance(s, float) else s
    if not values:
        return 0 if f.agg == "distinct_count" else None
    if f.agg == "min":
        return min(values)
    if f.agg == "max":
        return max(values)
    if f.agg == "avg":
        return round(sum(values) / len(values), 6)
    if f.agg == "distinct_count":
        return len(set(values))
    if f.agg == "first":
        return min(entries, key=lambda e: e[0])[1]
    if f.agg == "last":
        return max(entries, key=lambda e: e[0])[1]
    raise ValueError(f.agg)


def truthy(v: object) -> bool:
    try:
        return bool(v)
    except Exception:
        return False


def build(args: argparse.Namespace) -> faust.App:
    rules = load_rules(args.rules)
    features = list(rules.features.values())
    tags = list(rules.tags.values())
    topics = args.topics.split(",")
    source_of = dict(zip(topics, ("clickstream", "pos", "orders"), strict=True))

    app = faust.App(args.app_id, broker=f"kafka://{args.bootstrap}", store="memory://",
                    topic_partitions=args.partitions, web_enabled=False,
                    consumer_auto_offset_reset="earliest")
    source_topic = app.topic(*topics, value_type=SourceEvent)
    tag_topic = app.topic(args.tag_topic, value_serializer="json")
    customers = app.Table("customers", default=dict, partitions=args.partitions)
    r = aioredis.from_url(args.redis_url)
    prefix = args.redis_prefix

    events_in = Counter("baseline_events_in", "Source events read")
    tag_changes = Counter("baseline_tag_changes", "Tag changes published")
    latency = Histogram("baseline_event_to_tag_latency_seconds", "Kafka timestamp -> tag change written",
                        buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60))

    @app.agent(source_topic)
    async def process(stream: Any) -> None:
        async for event in stream.events():
            events_in.inc()
            msg = event.message
            source = source_of[msg.topic]
            ev = to_event(source, event.value, int(msg.timestamp * 1000))
            cid = ev["customer_id"]
            if cid is None:
                continue  # anonymous visitor / walk-in: no customer state
            now_ms = int(time.time() * 1000)
            state = customers[cid]
            if not state:
                state = {"w": {}, "l": {}, "t": {}}
            for f in features:
                if source in f.sources and (f.where is None or f.where(ev)):
                    fold(state, f, ev, now_ms)
            values = {f.name: feature_value(state, f, now_ms) for f in features}
            changes = []
            for tag in tags:
                holds = truthy(tag.when(values))
                if holds != (tag.name in state["t"]):
                    if holds:
                        state["t"][tag.name] = now_ms
                    else:
                        del state["t"][tag.name]
                    changes.append({"customer_id": cid, "tag": tag.name, "op": "add" if holds else "remove",
                                    "at_ms": now_ms, "event_id": ev["event_id"],
                                    "features": {n: values[n] for n in tag.features}})
            customers[cid] = state
            await r.set(f"{prefix}:tags:{cid}", json.dumps(state["t"]))
            for c in changes:
                if c["op"] == "add":
                    await r.sadd(f"{prefix}:tag:{c['tag']}", cid)
                else:
                    await r.srem(f"{prefix}:tag:{c['tag']}", cid)
                await tag_topic.send(key=cid, value=c)
                tag_changes.inc()
            if changes:
                latency.observe(max(0.0, time.time() - msg.timestamp))

    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Baseline Faust tagging app (benchmark column b).")
    p.add_argument("--app-id", required=True)
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--topics", required=True, help="clickstream,pos,orders topic names, in that order")
    p.add_argument("--tag-topic", required=True)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--rules", required=True)
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--redis-prefix", required=True)
    p.add_argument("--metrics-port", type=int, required=True)
    args = p.parse_args(argv)
    app = build(args)
    start_http_server(args.metrics_port, addr="127.0.0.1")
    print(f"baseline worker {args.app_id}: metrics on :{args.metrics_port}", flush=True)
    faust.Worker(app, loglevel="warn", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
