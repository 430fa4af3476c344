"""Benchmark column (d): the same workload written in Quix Streams, the way its documentation teaches.

Issue 9 asks for a peer, not only a naive Faust app: Quix Streams (``quixstreams`` from PyPI,
confluent-kafka underneath, RocksDB state with changelog topics, at-least-once by default) is the
other Python stream-processing framework a team would pick. The application:

* one ``StreamingDataFrame`` per source topic (JSON values; each record's Kafka timestamp taken
  with ``metadata=True``), turned into the flat event the rules read, then ``concat``-ed into one
  (Quix aligns the three topics by time);
* ``filter`` drops the events without a customer (anonymous browsing, walk-in tickets);
* ``apply(..., stateful=True, expand=True)``: the customer's state in Quix's ``State`` (RocksDB,
  changelog topic), folded and evaluated by ``benchmarks.naive_state`` — the same code, features
  and tags as column (b), so the logic is the compiled rule set's; each tag change is one row;
* ``to_topic`` sends the changes to the tag topic; a ``BatchingSink`` (Quix's documented way to
  write to a database) writes them to Redis at each checkpoint: ``SADD``/``SREM`` on the audience
  sets and ``HSET``/``HDEL`` on the customer's tag hash, one pipeline per batch.

``--engine tagstream`` (column d2) keeps the Quix plumbing and puts tagstream's engine in it: the
events validated and made canonical as tagstream's ingest does, tagstream's ``CustomerState`` (its
bytes) in Quix's store, ``TagEngine.process_event`` per event (incremental evaluation, duplicates
dropped, flap control): what Quix's framework costs around the same engine.

Configuration: Quix's defaults except ``auto_offset_reset="earliest"`` (the backlog) and a 1 s
``commit_interval`` (the default 5 s holds every Redis write back for up to 5 s: a latency-minded
user lowers it, as the docs explain). Like (b), no due-time timer (tags only change at events) and
no input validation or dead-letter topic.

Run (the benchmark does this, in the Quix virtual environment ``benchmarks.quix_env`` makes)::

    python -m benchmarks.quix_app --app-id ID --topics a,b,c --rules PATH --redis-prefix P \\
        --metrics-port 9471 --tag-topic T --state-dir DIR
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import redis
from prometheus_client import Counter, Histogram, start_http_server
from quixstreams import Application, State
from quixstreams.sinks import BatchingSink, SinkBatch

from schemas.canonical import to_canonical
from schemas.decode import decode_event
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from tag_rules import load_rules

from . import naive_state

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60)


class RedisTags(BatchingSink):
    """Tag changes into Redis at each checkpoint: the audience sets and each customer's tag hash."""

    def __init__(self, url: str, prefix: str, latency: Histogram, changes: Counter) -> None:
        super().__init__()
        self._url = url
        self._prefix = prefix
        self._latency = latency
        self._changes = changes
        self._client: redis.Redis | None = None

    def setup(self) -> None:
        self._client = redis.Redis.from_url(self._url)
        self._client.ping()

    def write(self, batch: SinkBatch) -> None:
        self._write(list(batch))

    def flush(self) -> None:
        """All of the checkpoint's batches at once, in each customer's order.

        ``BatchingSink`` keeps one batch per *source* topic partition and ``flush`` writes them one
        after the other: after ``concat`` a customer's clickstream and order changes sit in two
        batches, so a cart tag added by a click and removed by the order of the same checkpoint
        came out remove-then-add (a first run had 11 of 50 audiences wrong). The changes carry the
        customer's event count (``seq``), and a stable sort on it restores each customer's order."""
        try:
            items = [item for batch in self._batches.values() for item in batch]
            items.sort(key=lambda item: item.value["seq"])
            self._write(items)
        finally:
            self._batches.clear()

    def _write(self, items: list[Any]) -> None:
        assert self._client is not None
        p = self._prefix
        sent: list[int] = []
        with self._client.pipeline(transaction=False) as pipe:
            for item in items:
                c = item.value
                cid, tag = c["customer_id"], c["tag"]
                if c["op"] == "add":
                    pipe.sadd(f"{p}:tag:{tag}", cid)
                    pipe.hset(f"{p}:tags:{cid}", tag, c["at_ms"])
                else:
                    pipe.srem(f"{p}:tag:{tag}", cid)
                    pipe.hdel(f"{p}:tags:{cid}", tag)
                sent.append(c["src_ts_ms"])
            pipe.execute()
        now = time.time()
        for src_ts_ms in sent:
            self._latency.observe(max(0.0, now - src_ts_ms / 1000))
        self._changes.inc(len(sent))


def build(args: argparse.Namespace) -> Application:
    rules = load_rules(args.rules)
    features = list(rules.features.values())
    tags = list(rules.tags.values())
    events_in = Counter("quix_events_in", "Source events read")
    events_done = Counter("quix_events_done", "Source events folded into a customer's state, or set aside (anonymous)")
    tag_changes = Counter("quix_tag_changes", "Tag changes written to Redis")
    latency = Histogram("quix_event_to_tag_latency_seconds", "Kafka timestamp -> tag change written to Redis",
                        buckets=LATENCY_BUCKETS)

    app = Application(broker_address=args.bootstrap, consumer_group=args.app_id, auto_offset_reset="earliest",
                      state_dir=args.state_dir, commit_interval=1.0, loglevel="WARNING")

    engine = TagEngine(rules) if args.engine == "tagstream" else None

    def reader(source: str) -> Any:
        def to_event(value: Any, key: Any, timestamp: int, headers: Any) -> dict[str, Any]:
            events_in.inc()
            if engine is not None:  # validated as tagstream's ingest does (no invalid events in the backlog)
                return to_canonical(source, decode_event(source, value), timestamp)
            return naive_state.to_event(source, value, timestamp)
        return to_event

    sdf = None
    for source, name in zip(("clickstream", "pos", "orders"), args.topics.split(","), strict=True):
        topic = app.topic(name, value_deserializer="bytes" if engine is not None else "json")
        part = app.dataframe(topic).apply(reader(source), metadata=True)
        sdf = part if sdf is None else sdf.concat(part)
    assert sdf is not None

    def known(ev: dict[str, Any]) -> bool:
        if ev["customer_id"] is None:
            events_done.inc()  # anonymous visitor / walk-in: no customer state
            return False
        return True

    def customer(ev: dict[str, Any], state: State) -> list[dict[str, Any]]:
        """One event of one customer; the state store keeps ``[state, seq]`` under one key (``seq``:
        the customer's changes so far, the order the sink restores)."""
        now_ms = int(time.time() * 1000)
        kept, seq = state.get("customer") or (None, 0)
        if engine is not None:  # tagstream's state and engine in Quix's store
            st = CustomerState.loads(kept.encode()) if kept else CustomerState()
            changes: list[dict[str, Any]] = [
                {**c, "src_ts_ms": ev["src_ts_ms"]} for c in engine.process_event(st, ev, now_ms).changes]
            new: Any = st.dumps().decode()
        else:
            new, changes = naive_state.process(kept, ev, features, tags, now_ms)
        if changes:
            seq += 1
            for c in changes:
                c["seq"] = seq
        state.set("customer", [new, seq])
        events_done.inc()
        return changes

    sdf = sdf.filter(known).apply(customer, stateful=True, expand=True)
    sdf = sdf.to_topic(app.topic(args.tag_topic, value_serializer="json"))
    sdf.sink(RedisTags(args.redis_url, args.redis_prefix, latency, tag_changes))
    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="The reference workload in Quix Streams (benchmark column d).")
    naive_state.add_app_arguments(p)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--engine", choices=("naive", "tagstream"), default="naive",
                   help="naive: benchmarks.naive_state (as column b); tagstream: tagstream's TagEngine and "
                        "CustomerState in Quix's state store (column d2: Quix's plumbing, tagstream's engine)")
    args = p.parse_args(argv)
    app = build(args)
    start_http_server(args.metrics_port, addr="127.0.0.1")
    print(f"quix worker {args.app_id}: metrics on :{args.metrics_port}", flush=True)
    app.run()


if __name__ == "__main__":
    main()
