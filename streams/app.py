"""The Faust application: two thin agents and a timer.

    events.clickstream ┐                          ┌─> Redis  tagstream:tags:{id}, tagstream:tag:{tag}
    events.pos         ├─ ingest ─> customer-events ─ customers ─┤
    events.orders      ┘   │   (envelopes per partition)   ▲     └─> tags.changes
                           └─> events.deadletter           │
                                        due-time timer ────┘ (ticks, in envelopes too)

* ``ingest`` decodes raw bytes (orjson/pydantic-core, no faust.Record), validates, normalizes to
  the canonical event and repartitions it by customer id: one record per customer partition
  and batch (an *envelope*, see ``envelope.py``), not one per event. Bad input goes to the dead-letter
  topic with its original bytes and the reason in headers; it never stops the worker.
* ``customers`` owns the per-customer state (a Faust table backed by its changelog topic): it
  folds the event in, evaluates the rules, publishes tag changes and reschedules the customer
  in the due-time index.
* the timer pops due customers and sends a *tick* for each through the same customer topic, so
  every state change (event or clock) happens inside stream iteration, in order, per customer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
import redis.asyncio as aioredis
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import MessageSizeTooLargeError
from faust import streams as faust_streams
from faust.serializers import codecs

from schemas.canonical import to_canonical
from schemas.decode import EventDecodeError, decode_event
from tag_rules.compiler import CompiledRuleSet

from . import faust_patches
from .clock import Clock, ScaledClock, WallClock
from .due import DueIndex
from .engine import TagEngine
from .envelope import EnvelopeBuilder, decode_envelope
from .features.state import CustomerState
from .health import Health
from .metrics import Metrics
from .settings import Settings
from .sinks import RedisTagSink

log = logging.getLogger(__name__)


class StateCodec(codecs.Codec):
    """Changelog encoding of CustomerState (compact JSON via orjson)."""

    def _dumps(self, obj: Any) -> bytes:
        return obj.dumps()  # type: ignore[no-any-return]

    def _loads(self, s: bytes) -> Any:
        return CustomerState.loads(s)


codecs.register("tagstate", StateCodec())


DLQ_MAX_RECORD_BYTES = 8 * 1024 * 1024
"""Largest dead-letter record (the producer's max request size and the DLQ topic's
max.message.bytes are set to it): a source record the broker took (≤ 1 MB, or a well
compressed bigger one) fits whole with its headers."""
KAFKA_PROBE_INTERVAL_S = 3.0
SAFE_RECORD_BYTES = 900_000
"""Under Kafka's 1 MB default record limit, headers included."""
DLQ_MAX_KEY_BYTES = 16_384
CUSTOMER_BUFFER_ENVELOPES = 256
"""Customer-topic records Faust may hold ahead of the customers agent (each up to 512 KB)."""


def dlq_headers(msg: Any, reason: str, error: str) -> list[tuple[str, bytes]]:
    """Dead-letter headers: where the record came from and why it was rejected."""
    return [
        ("ts.source_topic", msg.topic.encode()),
        ("ts.source_partition", str(msg.partition).encode()),
        ("ts.source_offset", str(msg.offset).encode()),
        ("ts.source_timestamp_ms", str(int(msg.timestamp * 1000)).encode()),
        ("ts.reason", reason.encode()),
        ("ts.error", error[:1000].encode("utf-8", "replace")),
    ]


@contextmanager
def current_event_as(event: Any) -> Iterator[None]:
    """Makes ``event`` faust's current event, so table writes go to its partition's changelog.

    Workaround for faust-streaming #497 (tables can't be written from ``take()`` batches). The
    table write then is exactly what it is inside ``async for event in stream``: same store,
    same changelog partition, so recovery stays correct.
    """
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


@dataclass(frozen=True)
class ItemRecord:
    """One item of an envelope, dead-lettered alone with its envelope's coordinates."""

    topic: str
    partition: int
    offset: int
    timestamp: float
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Runtime:
    """Everything the agents share; built once per worker by ``create_app``."""

    settings: Settings
    rules: CompiledRuleSet
    engine: TagEngine
    metrics: Metrics
    clock: Clock
    due: DueIndex = field(default_factory=DueIndex)
    health: Health = field(default_factory=Health)
    redis_sink: RedisTagSink | None = None


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Configs of the topics the worker creates when they are missing."""
    return {settings.kafka.deadletter_topic: {"max.message.bytes": str(DLQ_MAX_RECORD_BYTES)},
            **internal_topics(settings)}


def internal_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Topics the worker owns besides the source/DLQ/tag topics, with their configs.

    They are created before Faust subscribes: a consumer that subscribes to a topic that does
    not exist yet drops it from its subscription ("Ignoring missing topic") until the next
    rebalance, which would stall the customer agent.
    """
    return {
        f"{settings.app_id}-customer-events": {},
        f"{settings.app_id}-customers-changelog": {"cleanup.policy": "compact"},
    }


def create_app(settings: Settings, rules: CompiledRuleSet, metrics: Metrics,
               clock: Clock | None = None) -> tuple[faust.App, Runtime]:
    """Builds the Faust app for ``settings`` and ``rules``."""
    if settings.kafka.batch_delivery:
        faust_patches.install()  # per-batch record delivery (see faust_patches.py)
    ks = settings.kafka
    broker_credentials: Any = None
    if ks.sasl_mechanism:
        broker_credentials = faust.SASLCredentials(
            username=ks.sasl_username or "",
            password=ks.sasl_password.get_secret_value() if ks.sasl_password else "",
            mechanism=ks.sasl_mechanism,
            ssl_context=ks.ssl_context(),
        )
    elif ks.protocol() == "SSL":
        broker_credentials = faust.SSLCredentials(ks.ssl_context())
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{ks.bootstrap_servers}",
        broker_credentials=broker_credentials,
        store=settings.store,
        datadir=str(settings.data_dir),
        table_standby_replicas=settings.standby_replicas,
        topic_partitions=ks.partitions,
        topic_replication_factor=ks.replication_factor,
        web_enabled=False,
        producer_acks=-1,
        producer_max_request_size=DLQ_MAX_RECORD_BYTES,
        stream_wait_empty=False,
        consumer_auto_offset_reset="earliest",
        # Batch produced records for a few ms instead of one produce request per record.
        producer_linger=settings.kafka.linger_ms / 1000,
        broker_session_timeout=ks.session_timeout_ms / 1000,
        broker_heartbeat_interval=min(3.0, ks.session_timeout_ms / 3000),
        consumer_max_fetch_size=ks.fetch_max_bytes,
    )
    es = settings.engine
    origin_ms = es.clock_origin_ms if es.clock_origin_ms is not None else WallClock().now_ms()
    clock = clock or (ScaledClock(es.clock_speed, origin_ms) if es.clock_speed != 1 else WallClock())
    engine = TagEngine(rules, allowed_lateness_ms=es.allowed_lateness_ms, dedup_horizon_ms=es.dedup_horizon_ms,
                       dedup_max_ids=es.dedup_max_ids)
    rt = Runtime(settings, rules, engine, metrics, clock)
    rs = settings.redis
    rt.redis_sink = RedisTagSink(
        aioredis.from_url(rs.url, **rs.client_options(), socket_timeout=rs.timeout_ms / 1000,
                          socket_connect_timeout=rs.timeout_ms / 1000),
        prefix=rs.key_prefix, metrics=metrics, backoff_max_ms=rs.retry_backoff_max_ms)
    source_by_topic = {topic: source for source, topic in ks.source_topics().items()}

    sources = app.topic(*ks.source_topics().values(), key_serializer="raw", value_serializer="raw",
                        maxsize=ks.source_buffer)
    deadletter_topic = ks.deadletter_topic
    customer_events = app.topic(f"{settings.app_id}-customer-events", partitions=ks.partitions, internal=True,
                                key_serializer="raw", value_serializer="raw", maxsize=CUSTOMER_BUFFER_ENVELOPES)
    # Faust derives a table's codecs from Record types; our state has its own compact codec, so
    # the table and its (compacted) changelog topic are given it explicitly. Recovery decodes
    # with the topic's codec, writes with the table's: both must say "tagstate".
    changelog = app.topic(f"{settings.app_id}-customers-changelog", partitions=ks.partitions, internal=True,
                          compacting=True, deleting=False, acks=False, key_serializer="raw",
                          value_serializer="tagstate", allow_empty=True, maxsize=131_072)
    customers = app.Table("customers", default=None, partitions=ks.partitions, key_type=bytes,
                          changelog_topic=changelog)
    customers.value_serializer = "tagstate"
    m = metrics
    future_tolerance_ms = settings.engine.future_tolerance_ms

    async def dead_letter(msg: Any, source: str, reason: str, error: str) -> None:
        """Writes ``msg`` to the dead-letter topic; never raises, never drops it.

        Key and value go unchanged (a null value stays null) up to ``DLQ_MAX_RECORD_BYTES``
        (the DLQ topic is created to take them). Bigger ones, or a big one the topic refuses (a
        DLQ topic made elsewhere with Kafka's 1 MB default), go truncated, marked with
        ``ts.truncated_from_bytes`` and ``ts.value_sha256``; the whole record stays at its
        source topic/partition/offset.
        """
        headers = dlq_headers(msg, reason, error)
        key, value = msg.key, msg.value
        if key is not None and len(key) > DLQ_MAX_KEY_BYTES:
            headers.append(("ts.key_truncated_from_bytes", str(len(key)).encode()))
            key = key[:DLQ_MAX_KEY_BYTES]
        limit = DLQ_MAX_RECORD_BYTES
        backoff_s = 0.1
        while True:
            sent_headers, sent_value = headers, value
            budget = limit - len(key or b"") - sum(len(k) + len(v) + 64 for k, v in headers) - 1024
            if value is not None and len(value) > budget:
                sent_headers = [*headers, ("ts.truncated_from_bytes", str(len(value)).encode()),
                                ("ts.value_sha256", hashlib.sha256(value).hexdigest().encode())]
                sent_value = value[:budget]
            try:
                fut = await app.producer.send(deadletter_topic, key, sent_value, None, None, sent_headers)
                if sent_value is not None and len(sent_value) > SAFE_RECORD_BYTES:
                    await fut  # a big record: learn now whether the topic took it
                break
            except MessageSizeTooLargeError:
                limit = SAFE_RECORD_BYTES  # the topic's own limit is lower: send a truncated copy
            except Exception as exc:  # the broker is away: keep the record, retry
                log.warning("dead-letter write failed (%r); retrying in %.1f s", exc, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)
        m.events_invalid.labels(source, reason).inc()
        m.deadletter.labels(source, reason).inc()

    customer_events_topic = customer_events.get_topic_name()

    async def send_envelopes(out: EnvelopeBuilder) -> None:
        # Straight to the producer: our values are bytes already, so faust's Topic.send layers
        # (serializer registry, FutureMessage, callbacks) were pure overhead (py-spy: ~10 %).
        # faust flushes this producer before it commits offsets, so at-least-once holds.
        for partition, value in out.records():
            await app.producer.send(customer_events_topic, None, value, partition, None, None)

    batch_max = settings.engine.batch_max
    envelopes_max = settings.engine.envelopes_max
    batch_within_s = settings.engine.batch_within_ms / 1000

    def validate(msg: Any, source: str) -> dict[str, Any]:
        """Raw record -> canonical event; raises EventDecodeError with the DLQ reason."""
        if not msg.value:
            raise EventDecodeError("invalid_json", "empty record value")
        canonical = to_canonical(source, decode_event(source, msg.value), int(msg.timestamp * 1000))
        now_ms = rt.clock.now_ms()
        if canonical["ts_ms"] > now_ms + future_tolerance_ms:
            raise EventDecodeError(
                "future_timestamp",
                f"ts {canonical['ts_ms']} is {(canonical['ts_ms'] - now_ms) / 1000:.0f}s in the future "
                f"(tolerance {future_tolerance_ms / 1000:.0f}s)")
        return canonical

    @app.agent(sources, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        async for events in stream.take_events(batch_max, within=batch_within_s):
            out = EnvelopeBuilder(ks.partitions)
            for ev in events:
                msg = ev.message
                source = source_by_topic.get(msg.topic, msg.topic)
                m.events_in.labels(source).inc()
                try:
                    canonical = validate(msg, source)
                    customer_id = canonical["customer_id"]
                    if customer_id is None:
                        m.events_anonymous.labels(source).inc()
                        continue
                    out.add(customer_id.encode(), orjson.dumps(canonical))
                except EventDecodeError as exc:
                    await dead_letter(msg, source, exc.reason, exc.message)
                except Exception as exc:  # never let one record stop the worker
                    log.exception("ingest failed on %s[%s]@%s", msg.topic, msg.partition, msg.offset)
                    await dead_letter(msg, source, "internal_error", f"{type(exc).__name__}: {exc}")
            await send_envelopes(out)  # one record per customer partition, not one per event

    @app.agent(customer_events, name="customers")
    async def process_customers(stream: faust.StreamT) -> None:
        # Batches: each customer's state is read once, updated by all its records in order,
        # and written (one changelog record) once per batch; one Redis round trip per batch.
        async for events in stream.take_events(envelopes_max, within=batch_within_s):
            await process_batch(events)

    async def process_batch(events: list[Any]) -> None:
        generation = app.consumer_generation_id
        by_key: dict[bytes, list[dict[str, Any]]] = {}
        record_of: dict[bytes, Any] = {}  # the (last) record that carried the customer's items
        for ev in events:
            if ev.message.generation_id != generation:
                continue  # fetched before a rebalance: faust re-reads it from the committed offset
            try:
                items = decode_envelope(ev.message.value)
            except ValueError as exc:
                await dead_letter(ev.message, "customers", "internal_error", f"{type(exc).__name__}: {exc}")
                continue
            for obj in items:
                key = obj["customer_id"].encode()
                by_key.setdefault(key, []).append(obj)
                record_of[key] = ev
        published: list[tuple[dict[str, Any], int | None]] = []
        updated: list[tuple[bytes, CustomerState, Any]] = []
        for key, objs in by_key.items():
            try:
                changes, state = process_customer(key, objs)
            except Exception as exc:
                log.exception("customer processing failed for %r", key)
                msg = record_of[key].message
                for obj in objs:  # the customer's own items, with the envelope's coordinates
                    item = ItemRecord(msg.topic, msg.partition, msg.offset, msg.timestamp, key, orjson.dumps(obj))
                    await dead_letter(item, "customers", "internal_error", f"{type(exc).__name__}: {exc}")
                continue
            published += changes
            if state is not None:
                updated.append((key, state, record_of[key]))
        if published:
            await publish(published)
        if app.consumer_generation_id != generation:
            # A rebalance happened while we published. A partition that went to another worker
            # is restored there from the changelog and its records re-read from the committed
            # offset: writing our state of it now would be a zombie write landing in the
            # changelog after the new owner's. Partitions we kept are saved as usual (their
            # records come back too and count once, by event id).
            owned = app.consumer.assignment()
            kept = [u for u in updated if u[2].message.tp in owned]
            log.info("rebalance during a batch: %d of %d customer states not saved (partition moved)",
                     len(updated) - len(kept), len(updated))
            updated = kept
        # Only now do the new states go to the changelog. A crash before this point replays the
        # batch from the old state and publishes the same changes again (same change_id); the
        # other order could persist a state whose tag changes never reached the tag topic.
        for key, state, last in updated:
            save(key, state, last)

    def save(key: bytes, state: CustomerState, last: Any) -> None:
        keep = bool(state.features or state.tags)
        # faust only writes a table (and its changelog, to the record's partition) inside stream
        # iteration (faust-streaming #497); take_events() is not, so we name the record ourselves.
        with current_event_as(last):
            if keep:
                customers[key] = state
            elif key in customers:
                del customers[key]  # nothing left to remember: keep the state bounded
        rt.due.schedule(key, state.due_ms if keep else None)

    def process_customer(key: bytes, objs: list[dict[str, Any]]) -> tuple[
            list[tuple[dict[str, Any], int | None]], CustomerState | None]:
        """Applies one customer's items (events and ticks) of a batch; returns its changes (with
        the source record's Kafka timestamp, or None for clock-driven ones) and its new state."""
        state: CustomerState | None = customers.get(key)
        out: list[tuple[dict[str, Any], int | None]] = []
        for obj in objs:
            now_ms = rt.clock.now_ms()
            tick = obj.get("tick")
            if tick is not None:
                if state is None or state.due_ms != tick:
                    continue  # stale tick: an event since then already moved the due time
                out += [(c, None) for c in rt.engine.catch_up(state, obj["customer_id"], now_ms)]
                continue
            if state is None:
                state = CustomerState()
            outcome = rt.engine.process_event(state, obj, now_ms)
            m.events_processed.labels(obj["source"]).inc()
            if outcome.duplicate:
                m.events_duplicate.labels(obj["source"]).inc()
            if outcome.late:
                m.events_late.labels(obj["source"]).inc()
            out += [(c, obj["src_ts_ms"] if c["cause"] == "event" else None) for c in outcome.changes]
        return out, state

    async def publish(changes: list[tuple[dict[str, Any], int | None]]) -> None:
        sink = rt.redis_sink
        assert sink is not None, "redis sink starts with the worker"
        for c, _ in changes:
            sink.add(c)
        await sink.flush()
        acks = [await app.producer.send(ks.tag_changes_topic, c["customer_id"].encode(), orjson.dumps(c),
                                        None, None, None) for c, _ in changes]
        await asyncio.gather(*acks)  # on the tag topic before the new state is saved
        for c, _ in changes:
            m.tag_changes.labels(c["tag"], c["op"], c["cause"]).inc()
        done_s = rt.clock.now_ms() / 1000
        for c, src_ts_ms in changes:
            if src_ts_ms is not None:
                m.event_to_tag_latency.observe(max(0.0, done_s - src_ts_ms / 1000))
            else:
                m.expiry_lateness.observe(max(0.0, done_s - c["at_ms"] / 1000))

    @app.timer(settings.engine.timer_interval_ms / 1000, name="due-timer")
    async def due_timer() -> None:
        rt.health.beat()
        rt.health.redis_ok = rt.redis_sink is None or rt.redis_sink.healthy
        now_ms = rt.clock.now_ms()
        out = EnvelopeBuilder(ks.partitions)
        for key, due_ms in rt.due.pop_due(now_ms):
            out.add(key, orjson.dumps({"customer_id": key.decode(), "tick": due_ms}))
        await send_envelopes(out)
        m.due_index_size.set(len(rt.due))
        m.customers_in_state.set(len(customers.data))

    kafka_probe: dict[str, Any] = {}

    @app.timer(KAFKA_PROBE_INTERVAL_S, name="kafka-probe")
    async def probe_kafka() -> None:
        """Readiness also means "the brokers answer": a metadata request on a client of our own."""
        client = kafka_probe.get("client")
        try:
            if client is None:
                client = AIOKafkaClient(bootstrap_servers=ks.bootstrap_servers, client_id=f"{settings.app_id}-probe",
                                        **ks.client_options())
                await asyncio.wait_for(client.bootstrap(), KAFKA_PROBE_INTERVAL_S)
                kafka_probe["client"] = client
            await asyncio.wait_for(client.fetch_all_metadata(), KAFKA_PROBE_INTERVAL_S)
            rt.health.kafka_ok = True
        except Exception as exc:  # any failure: not ready, say why in the log once
            if rt.health.kafka_ok:
                log.warning("kafka does not answer (%r): not ready", exc)
            rt.health.kafka_ok = False

    async def rebuild_due_index() -> None:
        """After recovery the table holds exactly the partitions we own: re-index them all."""
        rt.due.clear()
        n = 0
        now_ms = rt.clock.now_ms()
        for key, state in customers.data.items():
            if not isinstance(state, CustomerState):
                log.error("unreadable state for %r in the changelog (%s); skipped", key, type(state).__name__)
                continue
            n += 1
            if state.rule_version != rt.engine.version:
                # New rules: re-evaluate every customer right away (published as rule_change).
                state.due_ms = now_ms
            rt.due.schedule(key, state.due_ms)
        log.info("due index rebuilt: %d customers, %d due", n, len(rt.due))
        m.ready.set(1)
        rt.health.recovered = True

    customers.on_recover(rebuild_due_index)

    @app.task
    async def _quiet_client_logs() -> None:
        # faust and aiokafka log every produced record at DEBUG; building those records cost
        # 3-7 % of the worker's CPU (py-spy) even when nothing is printed.
        for name in ("aiokafka", "faust.topics", "faust.transport"):
            logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().getEffectiveLevel()))

    @app.on_partitions_revoked.connect  # type: ignore[misc]
    async def _rebalancing(*args: Any, **kwargs: Any) -> None:
        m.ready.set(0)  # until the next recovery completes
        rt.health.recovered = False

    app.tagstream_runtime = rt  # type: ignore[attr-defined]
    app.tagstream_tables = {"customers": customers}  # type: ignore[attr-defined]
    return app, rt
