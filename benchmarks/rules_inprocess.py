"""The customer stage's CPU per event with 50 vs 1,000 tags, in-process (issue 12): no Kafka, no Redis.

    python -m benchmarks.rules_inprocess [--events 200000] [--customers 100000] [--rules 50,1000]
                                         [--rules1000 PATH] [--warm-events N] [--distribution] [--json PATH]
                                         [--python-gc]

The workload is ``benchmarks.rules_scale``'s: the repository's generator (``seed`` 20261127, Zipf
customers, event times 1 ms apart ending "now"), validated and turned into canonical events as
the ingest stage does, grouped into envelopes per customer partition (``batch_max`` source
records per ingest batch) and into customer batches of ``envelopes_max`` envelopes, as a worker
draining a backlog receives them. Each batch goes through the real ``CustomerStage.process``
(envelope decoding, ``TagEngine`` per item, one ``state.dumps()`` per customer, the Redis sink's
commands, the tag topic's records, metrics, one changelog write per customer), wired to the
stand-ins of ``benchmarks.inprocess_models``: they do the client libraries' CPU work per record
and command (aiokafka's partitioner and batch builder, redis-py's command packing), not the I/O.

Not in it (the same per event for every rule set): faust consuming and decoding records, the
ingest stage, the sockets. Reports CPU µs per customer event (``time.process_time``), tag changes
per event (and on a customer's first event vs later ones), state bytes per customer, where the
time goes (µs per event per phase) and the ratio 1,000 / 50. ``--distribution`` adds, per rule
set, how the tag changes spread over the tags and the share of customers holding each tag at the
end; ``--rules1000 PATH`` is the file the name ``1000`` stands for (default rules_1000.yaml; e.g.
benchmarks/rules_1000_selective.yaml); ``--warm-events N`` measures the events that follow
N unmeasured ones (customers that already hold their tags, not a cold start). The worker's GC
threshold is applied as ``run_worker`` does (``--python-gc``: Python's). See benchmarks/RULES.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import inspect
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from schemas.canonical import to_canonical
from schemas.decode import decode_event
from streams.app.customers import CustomerStage
from streams.app.envelope import EnvelopeBuilder
from streams.app.ingest import stamp_position
from streams.app.topology import make_engine
from streams.engine.clock import ManualClock
from streams.engine.due import DueIndex
from streams.engine.features.state import CustomerState
from streams.engine.reevaluation import Reevaluation
from streams.engine.tag_engine import TagEngine
from streams.io.deadletter import DeadLetterWriter
from streams.io.metrics import Metrics
from streams.io.redis_sink import RedisTagSink
from streams.io.tag_topic import TagTopicWriter
from streams.settings import Settings
from streams.tools.generator import RetailGenerator
from tag_rules import load_rules

from .common import REFERENCE_RULES
from .inprocess_instruments import FirstEvents, GcTime, Phases, Replaceable
from .inprocess_models import Delivered, Group, Message, ModelProducer, ModelRedis, ModelStore
from .rules_1000 import RULES_1000

tune_gc: Callable[[int], None] | None
try:  # the same harness measures older checkouts too (before issue 12 no tune_gc, before session 18 in worker.py)
    from streams.app.gc_policy import tune_gc
except ImportError:  # pragma: no cover
    try:
        from streams.app.worker import tune_gc  # type: ignore[attr-defined,no-redef]
    except ImportError:
        tune_gc = None
BATCHED_TAG_TOPIC = "batches" in inspect.signature(TagTopicWriter).parameters

RULE_SETS = {"50": REFERENCE_RULES, "1000": RULES_1000}
DRAIN_US_PER_EVENT = 170
"""The simulated clock advances this much per event of a batch (a worker draining ~6,000/s)."""


def prepare(*, events: int, customers: int, seed: int, partitions: int, batch_max: int, envelopes_max: int,
            warm: int = 0, end_ms: int | None = None) -> tuple[list[list[Delivered]], list[list[Delivered]], int, int]:
    """(customer batches of the first ``warm`` events, of the ``events`` after them, customer events
    among the latter, the instant the backlog ends): the generator's events through validation
    and envelopes, as ``ingest`` sends them for a backlog produced just now."""
    end_ms = int(time.time() * 1000) if end_ms is None else end_ms
    total = warm + events
    raw = RetailGenerator(seed=seed, customers=customers, start_ms=end_ms - total, step_ms=1.0).take(total)
    parts: list[list[list[Delivered]]] = []
    items = 0
    for lo, hi in ((0, warm), (warm, total)):
        envelopes: list[Message] = []
        items = 0
        for start in range(lo, hi, batch_max):
            out = EnvelopeBuilder(partitions)
            for offset, ev in enumerate(raw[start:min(start + batch_max, hi)], start):
                if not ev.valid:
                    continue
                decoded = decode_event(ev.source, ev.value)
                canonical = to_canonical(ev.source, decoded, end_ms - total + offset)
                if canonical["customer_id"] is None:
                    continue
                stamp_position(canonical, ev.source, 0, offset)
                out.add(canonical["customer_id"].encode(), orjson.dumps(canonical))
            items += out.items
            envelopes += [Message(value, p, len(envelopes), items=value.count(b'"event_id"'))
                          for p, value in out.records()]
        parts.append([[Delivered(m) for m in envelopes[i:i + envelopes_max]]
                      for i in range(0, len(envelopes), envelopes_max)])
    return parts[0], parts[1], items, end_ms


@dataclass
class _Harness:
    """The real customer stage wired to the stand-ins, and the stand-ins a run reads its figures from."""

    engine: TagEngine
    stage: CustomerStage
    clock: ManualClock
    store: ModelStore
    producer: ModelProducer
    redis: ModelRedis
    metrics: Metrics


def _harness(rules_path: Path, end_ms: int, partitions: int, digests: bool) -> _Harness:
    """A ``CustomerStage`` on ``rules_path``'s engine, its clock at ``end_ms``, from empty state."""
    settings = Settings()
    engine = make_engine(settings, load_rules(rules_path))
    producer = ModelProducer(["tags.changes", "customers-changelog", "events.deadletter"], partitions,
                             digests=digests)
    redis, metrics = ModelRedis(digest=digests), Metrics.create(CollectorRegistry())
    store, clock = ModelStore(producer), ManualClock(end_ms)
    stage = CustomerStage(
        engine=engine, clock=clock, store=store, membership=Group(), due=DueIndex(),
        redis=RedisTagSink(redis, prefix="tagstream"),  # type: ignore[arg-type]
        tag_topic=(TagTopicWriter(producer, "tags.changes", batches=producer.batch_sender) if BATCHED_TAG_TOPIC
                   else TagTopicWriter(producer, "tags.changes")),
        deadletter=DeadLetterWriter(producer, "events.deadletter", metrics), metrics=metrics,
        reevaluation=Reevaluation(500))
    return _Harness(engine, stage, clock, store, producer, redis, metrics)


def _instrument(h: _Harness) -> tuple[Phases, FirstEvents]:
    """Wraps the stage's parts in the phase timers and its engine's ``process_event`` in ``FirstEvents``
    (``CustomerState.dumps`` too: the caller puts it back)."""
    stage = h.stage
    phases = Phases()
    first = FirstEvents(h.engine.process_event)
    stage.engine = Replaceable(h.engine)  # type: ignore[assignment]
    stage.engine.process_event = first  # type: ignore[method-assign]
    phases.wrap(stage.engine, "process_event", "engine (process_event)")
    phases.wrap(stage, "process_customer", "process_customer (engine + metrics per event)")
    phases.wrap(stage.redis, "flush", "redis sink flush (commands, pack)")
    phases.wrap(stage.tag_topic, "flush", "tag topic flush (tag_record, producer)")
    phases.wrap(stage, "_observe", "metrics per change")
    phases.wrap(h.store, "put", "save: dumps + changelog record")
    with contextlib.suppress(TypeError):  # the compiled engine's class (engine/native.py): not measured apart
        phases.wrap(CustomerState, "dumps", "state.dumps (all)")
    return phases, first


async def _process(h: _Harness, batches: Iterable[list[Delivered]], now_ms: int) -> int:
    """Every batch through the stage, the clock at ``now_ms`` advancing ``DRAIN_US_PER_EVENT`` per
    event of a batch; returns where it ended."""
    for batch in batches:
        h.clock.set(now_ms)
        await h.stage.process(batch)
        now_ms += sum(d.message.items for d in batch) * DRAIN_US_PER_EVENT // 1000
    return now_ms


async def run_stage(rules_path: Path, batches: list[list[Delivered]], items: int, end_ms: int,
                    partitions: int, warm: list[list[Delivered]] | None = None,
                    digests: bool = False) -> dict[str, Any]:
    """One rule set over every batch, from empty state (or the state ``warm``'s batches leave,
    processed first and not measured); CPU µs per event and the phases."""
    h = _harness(rules_path, end_ms, partitions, digests)
    dumps = CustomerState.dumps
    phases, first = _instrument(h)
    try:
        now_ms = await _process(h, warm or (), end_ms)
        before = _totals(h.producer, h.redis, h.metrics)
        phases.spent.clear()
        first.events.clear()
        first.changes.clear()
        gc.collect()
        t0, w0 = time.process_time(), time.perf_counter()
        with GcTime() as gc_time:
            await _process(h, batches, now_ms)
        cpu_s, wall_s = time.process_time() - t0, time.perf_counter() - w0
        after = _totals(h.producer, h.redis, h.metrics)
    finally:
        if CustomerState.dumps is not dumps:
            CustomerState.dumps = dumps  # type: ignore[method-assign]
        await h.producer.close()
    phases.spent["garbage collector (inside the others)"] = gc_time.spent_s
    return {"rules": str(rules_path), "tags": len(h.engine.tags), "events": items, "batches": len(batches),
            "cpu_us_per_event": cpu_s / items * 1e6, "wall_us_per_event": wall_s / items * 1e6,
            **_figures(h, items, before, after, phases, first, gc_time)}


def _figures(h: _Harness, items: int, before: dict[str, Any], after: dict[str, Any], phases: Phases,
             first: FirstEvents, gc_time: GcTime) -> dict[str, Any]:
    """The rest of ``run_stage``'s result: per event (of ``items``) between the ``before`` and
    ``after`` totals, the customers' state at the end, the phases and the collector."""
    store, engine, producer, redis = h.store, h.engine, h.producer, h.redis
    delta = {k: after[k] - before[k] for k in after if isinstance(after[k], int)}
    by_tag = {t: {op: n - before["by_tag"].get(t, {}).get(op, 0) for op, n in ops.items()}
              for t, ops in after["by_tag"].items()}
    changes = delta["tag_records"]
    sizes = [len(s.dumps()) for s in store.data.values()]
    holders = Counter(t for s in store.data.values() for t in s.tags)
    per_event = {k: v / items * 1e6 for k, v in phases.spent.items()}
    return {
        "changes_per_event": changes / items,
        "changes_per_first_event": first.changes["first"] / max(1, first.events["first"]),
        "changes_per_later_event": first.changes["later"] / max(1, first.events["later"]),
        "first_events": first.events["first"], "later_events": first.events["later"],
        "customers": len(store.data), "state_bytes_per_customer": statistics.fmean(sizes) if sizes else 0.0,
        "changelog_bytes_per_event": delta["changelog_bytes"] / items,
        "tag_topic_bytes_per_event": delta["tag_bytes"] / items,
        "redis_commands_per_event": delta["redis_commands"] / items,
        "phases_us_per_event": dict(sorted(per_event.items(), key=lambda kv: -kv[1])),
        "gc_collections": dict(gc_time.collections),
        "gc_us_per_event_by_generation": {g: t / items * 1e6 for g, t in sorted(gc_time.by_generation_s.items())},
        "held_per_customer": statistics.fmean(len(s.tags) for s in store.data.values()) if store.data else 0.0,
        "holders_by_tag": {t: holders.get(t, 0) for t in engine.rules.tags},
        "tag_changes_by_tag": {t: ops for t, ops in by_tag.items() if any(ops.values())},
        **({"digests": {**{f"{t}[{p}]": d.hexdigest()[:16] for (t, p), d in sorted(producer.digests.items())},
                        "redis": redis.digest.hexdigest()[:16] if redis.digest else ""}}
           if producer.digests is not None else {}),
    }

def _totals(producer: ModelProducer, redis: ModelRedis, metrics: Metrics) -> dict[str, Any]:
    return {"tag_records": producer.records.get("tags.changes", 0),
            "tag_bytes": producer.batch_bytes.get("tags.changes", 0),
            "changelog_bytes": producer.batch_bytes.get("customers-changelog", 0),
            "redis_commands": redis.stats["commands"], "by_tag": _by_tag(metrics)}


def _by_tag(metrics: Metrics) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for fam in metrics.tag_changes.collect():
        for s in fam.samples:
            if s.name.endswith("_total"):
                out.setdefault(s.labels["tag"], {}).setdefault(s.labels["op"], 0)
                out[s.labels["tag"]][s.labels["op"]] += int(s.value)
    return out


def distribution(res: dict[str, Any], customers: int) -> list[str]:
    """How the tag changes spread over the tags (for the question: is the workload plausible?)."""
    by_tag = res["tag_changes_by_tag"]
    totals = sorted(((sum(v.values()), t) for t, v in by_tag.items()), reverse=True)
    n = sum(c for c, _ in totals)
    lines = [f"  {len(totals)} of {res['tags']} tags changed at least once; {n:,} changes"]
    acc = 0
    for share in (0.5, 0.8, 0.95):
        k = 0
        while acc < share * n and k < len(totals):
            acc += totals[k][0]
            k += 1
        lines.append(f"  {share:.0%} of the changes come from the top {k} tags")
        acc = 0
    adds = sum(v.get("add", 0) for v in by_tag.values())
    lines.append(f"  adds {adds:,}, removes {n - adds:,}")
    held = res.get("holders_by_tag")
    if held and res["customers"]:
        shares = sorted(h / res["customers"] for h in held.values())
        q = {p: shares[min(len(shares) - 1, int(p * len(shares)))] for p in (0.1, 0.25, 0.5, 0.75, 0.9)}
        lines.append(f"  share of the {res['customers']:,} customers holding a tag at the end, over the tags: "
                     + ", ".join(f"p{round(p * 100)} {v:.2%}" for p, v in q.items()) + f", max {shares[-1]:.1%}; "
                     f"{sum(h > 0 for h in held.values())} tags held by someone")
    lines.append("  top 15: " + ", ".join(f"{t} {c:,} (+{by_tag[t].get('add', 0):,}/-{by_tag[t].get('remove', 0):,})"
                                          for c, t in totals[:15]))
    return lines


def table(results: dict[str, dict[str, Any]]) -> str:
    keys = [("cpu_us_per_event", "CPU µs per event", ".1f"), ("changes_per_event", "tag changes per event", ".2f"),
            ("changes_per_generated_event", "  per generated event (as rules_scale)", ".2f"),
            ("changes_per_first_event", "  on a first event", ".2f"),
            ("changes_per_later_event", "  on a later event", ".2f"),
            ("state_bytes_per_customer", "state B per customer", ".0f"),
            ("held_per_customer", "tags held per customer", ".1f"),
            ("redis_commands_per_event", "Redis commands per event", ".2f"),
            ("tag_topic_bytes_per_event", "tag topic batch B per event", ".0f"),
            ("changelog_bytes_per_event", "changelog batch B per event", ".0f")]
    names = list(results)
    lines = ["| | " + " | ".join(f"{n} tags" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for k, label, fmt in keys:
        lines.append(f"| {label} | " + " | ".join(format(results[n].get(k, math.nan), fmt) for n in names) + " |")
    phases = list(dict.fromkeys(p for n in names for p in results[n]["phases_us_per_event"]))
    for p in phases:
        lines.append(f"| µs/event: {p} | " + " | ".join(f"{results[n]['phases_us_per_event'].get(p, 0):.1f}"
                                                      for n in names) + " |")
    if "50" in results and "1000" in results:
        r = results["1000"]["cpu_us_per_event"] / results["50"]["cpu_us_per_event"]
        lines.append(f"\nCPU per event 1,000 / 50 tags: x{r:.2f} (50-tag speed kept: {1 / r:.0%} of this stage)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--warm-events", type=int, default=0,
                   help="process this many generated events first, unmeasured (customers that already hold tags)")
    p.add_argument("--rules", default="50,1000", help="comma-separated: 50, 1000 or rule file paths")
    p.add_argument("--rules1000", type=Path, default=RULES_1000,
                   help="the file the name 1000 stands for (e.g. benchmarks/rules_1000_selective.yaml)")
    p.add_argument("--distribution", action="store_true", help="print how tag changes spread over the tags")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--end-ms", type=int, help="the instant the backlog ends (default: now; fix it to compare digests)")
    p.add_argument("--digests", action="store_true",
                   help="print a digest of every record and Redis command sent (to compare two checkouts; "
                        "decoding the batches costs CPU: not a timing run)")
    p.add_argument("--python-gc", action="store_true",
                   help="keep Python's collector thresholds (the worker sets TAGSTREAM_ENGINE__GC_YOUNG_THRESHOLD)")
    args = p.parse_args(argv)
    s = Settings()
    if not args.python_gc and tune_gc is not None:
        tune_gc(s.engine.gc_young_threshold)  # as run_worker does
    warm, batches, items, end_ms = prepare(events=args.events, customers=args.customers, seed=args.seed,
                                           partitions=s.kafka.partitions, batch_max=s.engine.batch_max,
                                           envelopes_max=s.engine.envelopes_max, warm=args.warm_events,
                                           end_ms=args.end_ms)
    print(f"{args.events:,} generated events -> {items:,} customer events in {len(batches):,} customer batches"
          + (f" (after {args.warm_events:,} not measured)" if args.warm_events else ""), flush=True)
    results: dict[str, dict[str, Any]] = {}
    for name in args.rules.split(","):
        path = {**RULE_SETS, "1000": args.rules1000}.get(name, Path(name))
        results[name] = asyncio.run(run_stage(path, batches, items, end_ms, s.kafka.partitions, warm, args.digests))
        results[name]["generated_events"] = args.events
        results[name]["changes_per_generated_event"] = results[name]["changes_per_event"] * items / args.events
        print(f"{name}: {results[name]['cpu_us_per_event']:.1f} CPU µs per event", flush=True)
        if args.distribution:
            print("\n".join(distribution(results[name], args.customers)))
        if args.digests:
            print(json.dumps(results[name]["digests"], indent=1))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
