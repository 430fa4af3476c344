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
from typing import Any, Optional  # faust reads the annotations at run time

import faust
import redis.asyncio as aioredis
from prometheus_client import Counter, Histogram, start_http_server

from tag_rules import load_rules

from . import naive_state

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
            ev = naive_state.to_event(source, event.value.asdict(), int(msg.timestamp * 1000))
            cid = ev["customer_id"]
            if cid is None:
                continue  # anonymous visitor / walk-in: no customer state
            now_ms = int(time.time() * 1000)
            state, changes = naive_state.process(customers[cid], ev, features, tags, now_ms)
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
    naive_state.add_app_arguments(p)
    p.add_argument("--partitions", type=int, default=4)
    args = p.parse_args(argv)
    app = build(args)
    start_http_server(args.metrics_port, addr="127.0.0.1")
    print(f"baseline worker {args.app_id}: metrics on :{args.metrics_port}", flush=True)
    faust.Worker(app, loglevel="warn", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
