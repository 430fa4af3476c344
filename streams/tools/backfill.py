"""``tagstream backfill FEATURE...``: seed features a deployment added from the source topics'
retained history.

The source records are read again (their own consumer, no group, ``read_committed``) from a time,
an offset or the earliest retained record, up to the end offsets taken at the start; each event
that feeds one of the features is sent to the customer topic, in envelopes like ingest's, marked
``"bf": {"keys": [state keys], "from": the run's start offset on that source partition}``. The
worker that owns the customer applies it to those features only, unless the live path or an
earlier run already counted that source record (streams/engine/backfill.py): running it twice, or
again after a crash, changes nothing. Nothing but the customer topic is written; progress goes
to stderr.

Refused (``BackfillRefused``, exit 2): a name that is not a feature some tag of the deployed rule
set reads, a feature no deployment added (or added longer ago than
``TAGSTREAM_ENGINE__BACKFILL_WINDOW_MS``: its books are gone), a worker running another rule
set, and a start before what the topics retain (the message says what is lost).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from schemas.canonical import to_canonical
from schemas.decode import EventDecodeError, decode_event
from streams.app.envelope import EnvelopeBuilder
from streams.app.ingest import INTERNAL_RECORD_MAX_BYTES, stamp_position
from streams.app.rules_watch import fold_deployments
from streams.engine.features.runtime import Runtime
from streams.engine.tag_engine import TagEngine
from streams.io.rules_topic import Deployment, RulesFollower, read_status
from streams.io.topics import customer_topic_name, rules_topic_name
from streams.settings import Settings
from streams.tools.backfill_checks import (
    BackfillRefused,
    Range,
    Target,
    check_retention,
    check_workers,
    fmt_time,
    parse_from,
    parse_offsets,
    resolve_targets,
)
from tag_rules import CompiledRuleSet, load_rules

PROGRESS_EVERY_S = 2.0
STALL_TIMEOUT_S = 60.0
"""No record read for this long while partitions are left: the run stops (exit 1); run it again."""


# -- what to send -------------------------------------------------------------------------------

@dataclass
class Replay:
    """Turns source records into replayed events for the target features (pure)."""

    target: Target
    runtimes: list[Runtime]
    future_tolerance_ms: int
    skipped: Counter[str] = field(default_factory=Counter)
    sent: int = 0

    @classmethod
    def of(cls, rules: CompiledRuleSet, target: Target, future_tolerance_ms: int) -> Replay:
        engine = TagEngine(rules)
        return cls(target, [rt for rt in engine.runtimes if rt.key in target.keys], future_tolerance_ms)

    def item(self, source: str, value: bytes | None, partition: int, offset: int, timestamp_ms: int,
             start: int) -> tuple[bytes, bytes] | None:
        """(customer key, encoded event) when the record feeds a target feature, else None (the
        reason counted in ``skipped``: what ingest dead-lettered or left out, or another feature's)."""
        try:
            if not value:
                raise EventDecodeError("invalid_json", "empty")
            event = to_canonical(source, decode_event(source, value), timestamp_ms)
        except (EventDecodeError, ValueError):
            self.skipped["invalid"] += 1
            return None
        if event["customer_id"] is None:
            self.skipped["anonymous"] += 1
            return None
        if event["ts_ms"] > timestamp_ms + self.future_tolerance_ms:  # ingest's check, at the record's time
            self.skipped["future"] += 1
            return None
        if not any(source in rt.sources and rt.matches(event) for rt in self.runtimes):
            self.skipped["other features"] += 1
            return None
        stamp_position(event, source, partition, offset)
        event["bf"] = {"keys": list(self.target.keys), "from": start}
        encoded = orjson.dumps(event)
        if len(encoded) > INTERNAL_RECORD_MAX_BYTES:
            self.skipped["too large"] += 1
            return None
        self.sent += 1
        return event["customer_id"].encode(), encoded


# -- progress -----------------------------------------------------------------------------------

def progress_line(ranges: Sequence[Range], elapsed_s: float) -> str:
    """``records read / total`` overall and per source partition, the rate and the time left."""
    read, total = sum(r.read for r in ranges), sum(r.total for r in ranges)
    rate = read / elapsed_s if elapsed_s > 0 else 0.0
    eta = f"{(total - read) / rate:,.0f} s" if rate > 0 else "?"
    parts = " ".join(f"{r.source}[{r.partition}] {r.read:,}/{r.total:,}" for r in ranges if r.total)
    pct = 100.0 * read / total if total else 100.0
    return f"backfill: {read:,} / {total:,} records ({pct:.1f} %), {rate:,.0f}/s, ETA {eta} | {parts}"


# -- the command --------------------------------------------------------------------------------

@dataclass
class Options:
    features: Sequence[str]
    from_text: str = "earliest"
    from_offsets: Sequence[str] = ()
    dry_run: bool = False
    wait_s: float = 0.0
    progress: bool = True


def run(settings: Settings, opts: Options, *, out: Callable[[str], None] = print) -> int:
    """The command: 0 sent (and, with ``--wait``, applied), 1 ``--wait`` timed out; raises
    BackfillRefused (exit 2) or RuntimeError (Kafka or Redis unreachable, exit 1)."""
    return asyncio.run(_run(settings, opts, out))


async def _run(settings: Settings, opts: Options, out: Callable[[str], None]) -> int:
    now_ms = time.time_ns() // 1_000_000
    from_ms = parse_from(opts.from_text, now_ms)
    offsets = parse_offsets(opts.from_offsets)
    rules, births = await deployed_with_births(settings)
    target = resolve_targets(rules, births, opts.features, now_ms=now_ms,
                             window_ms=settings.engine.backfill_window_ms)
    ks = settings.kafka
    partitions = await topic_partitions(settings, [*ks.source_topics().values(), customer_topic_name(settings)])
    async with _consumer(settings) as consumer:
        ranges = await source_ranges(consumer, ks.source_topics(), from_ms, offsets, partitions)
        check_retention(ranges, from_ms, offsets)
        out(f"backfill of {', '.join(target.names)} (rules {target.version}, added at "
            f"{fmt_time(min(target.births.values()))}) from {opts.from_text if not offsets else 'the given offsets'}:")
        for r in ranges:
            deleted = f"; offsets before {r.beginning} deleted by retention" if r.beginning else ""
            out(f"  {r.name}: offsets {r.start:,} … {r.end - 1:,} ({r.total:,} records){deleted}")
        out(f"  {sum(r.total for r in ranges):,} records to read")
        if opts.dry_run:
            out("dry run: nothing sent")
            return 0
        check_workers(await _worker_status(settings), target.version, now_ms)
        replay = Replay.of(rules, target, settings.engine.future_tolerance_ms)
        customer_partitions = len(partitions.get(customer_topic_name(settings), ()))
        if not customer_partitions:
            raise RuntimeError(f"{customer_topic_name(settings)} not found: has a worker of {settings.app_id} run?")
        last = await send_replay(consumer, settings, ranges, replay, customer_partitions, progress=opts.progress)
    skipped = ", ".join(f"{n:,} {why}" for why, n in sorted(replay.skipped.items())) or "none"
    out(f"sent {replay.sent:,} events to {customer_topic_name(settings)} (skipped: {skipped}); each worker "
        "applies its customers' events, once")
    if opts.wait_s <= 0 or not last:
        return 0
    return await wait_applied(settings, last, opts.wait_s, out)


async def deployed_with_births(settings: Settings) -> tuple[CompiledRuleSet, dict[str, int]]:
    """The deployed rule set and its features' births, computed as a starting worker does."""
    ks = settings.kafka
    follower = RulesFollower(ks.bootstrap_servers, rules_topic_name(settings), ks.client_options())
    try:
        deployments = await asyncio.wait_for(follower.read_to_end(30.0), 35.0)
    except (KafkaError, TimeoutError) as exc:
        raise RuntimeError(f"could not read the rules topic {rules_topic_name(settings)}: {exc!r}") from exc
    finally:
        await follower.close()

    def compile_(d: Deployment) -> CompiledRuleSet:
        with tempfile.TemporaryDirectory(prefix="tagstream-rules-") as folder:
            return load_rules(d.write_to(Path(folder)))

    rules, offset, births = fold_deployments(settings.load_rules(), deployments, compile_)
    if offset < 0:
        raise BackfillRefused(f"nothing deployed on {rules_topic_name(settings)}: a backfill seeds the features a "
                              "deployment (`tagstream rules deploy`) added")
    return rules, births


async def topic_partitions(settings: Settings, topics: Sequence[str]) -> dict[str, list[int]]:
    """The partitions of each of ``topics`` that exists (metadata of every topic: naming ours
    could auto-create them on a broker that allows that)."""
    ks = settings.kafka
    admin = AIOKafkaAdminClient(bootstrap_servers=ks.bootstrap_servers, client_id="tagstream-backfill",
                                **ks.client_options())
    try:
        try:
            await admin.start()
        except KafkaConnectionError as exc:
            raise RuntimeError(f"cannot reach Kafka at {ks.bootstrap_servers}: {exc}") from exc
        described = await admin.describe_topics(None)
    except KafkaError as exc:
        raise RuntimeError(f"Kafka metadata request to {ks.bootstrap_servers} failed: {exc!r}") from exc
    finally:
        await admin.close()
    return {t["topic"]: [p["partition"] for p in t["partitions"]] for t in described
            if t["topic"] in topics and t["error_code"] == 0}


class _consumer:
    """A consumer of the source topics with no group (``async with``)."""

    def __init__(self, settings: Settings) -> None:
        ks = settings.kafka
        self.consumer = AIOKafkaConsumer(bootstrap_servers=ks.bootstrap_servers, group_id=None,
                                         enable_auto_commit=False, isolation_level="read_committed",
                                         client_id="tagstream-backfill", max_partition_fetch_bytes=ks.fetch_max_bytes,
                                         **ks.client_options())

    async def __aenter__(self) -> AIOKafkaConsumer:
        try:
            await self.consumer.start()
        except KafkaConnectionError as exc:
            raise RuntimeError(f"cannot reach Kafka: {exc}") from exc
        return self.consumer

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()


async def source_ranges(consumer: AIOKafkaConsumer, topics: Mapping[str, str], from_ms: int | None,
                        offsets: Mapping[tuple[str, int], int], partitions: Mapping[str, Sequence[int]]) -> list[Range]:
    """Every partition of the source topics (``partitions``: topic -> its partitions), with the
    replay's start and end offsets."""
    tps: dict[TopicPartition, str] = {}
    for source, topic in topics.items():
        if not partitions.get(topic):
            raise RuntimeError(f"source topic {topic} ({source}) not found")
        for p in sorted(partitions[topic]):
            tps[TopicPartition(topic, p)] = source
    unknown = set(offsets) - {(s, tp.partition) for tp, s in tps.items()}
    if unknown:
        raise BackfillRefused(f"--from-offset: no such source partition: {sorted(unknown)}")
    begin = await consumer.beginning_offsets(list(tps))
    end = await consumer.end_offsets(list(tps))
    oldest = await consumer.offsets_for_times(dict.fromkeys(tps, 0))
    at_from = await consumer.offsets_for_times(dict.fromkeys(tps, from_ms)) if from_ms is not None else {}
    ranges = []
    for tp, source in tps.items():
        asked = offsets.get((source, tp.partition))
        if asked is not None:
            start = min(max(asked, begin[tp]), end[tp])
        elif from_ms is None:
            start = begin[tp]
        else:
            found = at_from.get(tp)
            start = found.offset if found is not None else end[tp]
        first = oldest.get(tp)
        ranges.append(Range(source, tp.topic, tp.partition, start, end[tp], begin[tp],
                            first.timestamp if first is not None else None))
    return ranges


async def send_replay(consumer: AIOKafkaConsumer, settings: Settings, ranges: Sequence[Range], replay: Replay,
                      partitions: int, *, progress: bool) -> dict[int, int]:
    """Reads every range and sends its replayed events to the customer topic, batch by batch,
    each batch acknowledged before the next (one source partition's events stay in order);
    returns the last offset written per customer-topic partition."""
    ks = settings.kafka
    topic = customer_topic_name(settings)
    producer = AIOKafkaProducer(bootstrap_servers=ks.bootstrap_servers, acks="all", enable_idempotence=True,
                                linger_ms=ks.linger_ms, client_id="tagstream-backfill", **ks.client_options())
    await producer.start()
    last: dict[int, int] = {}
    try:
        todo = {TopicPartition(r.topic, r.partition): r for r in ranges if r.total}
        consumer.assign(list(todo))
        for tp, r in todo.items():
            consumer.seek(tp, r.start)
        started = reported = moved = time.monotonic()
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=500, max_records=5000)
            if batch:
                moved = time.monotonic()
            elif time.monotonic() - moved > STALL_TIMEOUT_S:
                left = ", ".join([f"{r.name} at {await consumer.position(tp)} of {r.end}" for tp, r in todo.items()])
                raise RuntimeError(f"no record read for {STALL_TIMEOUT_S:.0f} s ({left}); what was sent is applied "
                                   "once: run the backfill again")
            envelopes = EnvelopeBuilder(partitions)
            for tp, records in batch.items():
                r = todo[tp]
                for rec in records:
                    if rec.offset >= r.end:
                        break
                    r.read += 1
                    found = replay.item(r.source, rec.value, tp.partition, rec.offset, rec.timestamp, r.start)
                    if found is not None:
                        envelopes.add(*found)
                if await consumer.position(tp) >= r.end:
                    r.read = r.total
                    del todo[tp]
                    consumer.pause(tp)
            acks = [await producer.send(topic, value, partition=p) for p, value in envelopes.records()]
            for meta in await asyncio.gather(*acks):
                last[meta.partition] = max(last.get(meta.partition, -1), meta.offset)
            now = time.monotonic()
            if progress and (now - reported >= PROGRESS_EVERY_S or not todo):
                reported = now
                print(progress_line(ranges, now - started), file=sys.stderr, flush=True)
    finally:
        await producer.stop()
    return last


async def _worker_status(settings: Settings) -> dict[str, dict[str, Any]]:
    from redis.exceptions import RedisError

    from streams.io.redis_client import async_client

    client = async_client(settings.redis)
    try:
        return await read_status(client, settings.redis_key_prefix())
    except RedisError as exc:
        raise RuntimeError(f"Redis: could not read which rules the workers run: {exc}") from exc
    finally:
        await client.aclose()


async def wait_applied(settings: Settings, last: Mapping[int, int], wait_s: float,
                       out: Callable[[str], None]) -> int:
    """Waits until the workers' group has committed past every replayed envelope (its states saved)."""
    ks = settings.kafka
    topic = customer_topic_name(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=ks.bootstrap_servers, client_id="tagstream-backfill",
                                **ks.client_options())
    await admin.start()
    deadline = time.monotonic() + wait_s
    try:
        while True:
            committed = await admin.list_consumer_group_offsets(settings.app_id)
            behind = {p: o for p, o in last.items()
                      if (m := committed.get(TopicPartition(topic, p))) is None or m.offset <= o}
            if not behind:
                out("applied: the workers have processed every replayed event")
                return 0
            if time.monotonic() > deadline:
                out(f"not yet applied after {wait_s:.0f} s: {topic} partitions {sorted(behind)} (the workers will "
                    "apply them when they get there)")
                return 1
            await asyncio.sleep(1.0)
    finally:
        await admin.close()
