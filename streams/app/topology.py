"""The Faust application: the ingest loop (or agent), the customers agent and the timers, wired to
the stages.

    events.clickstream ┐                          ┌─> Redis  {prefix}:tags:{id}, {prefix}:tag:{tag} (docs/contracts.md)
    events.pos         ├─ ingest ─> customer-events ─ customers ─┤
    events.orders      ┘   │   (envelopes per partition)   ▲     └─> tags.changes
                           └─> events.deadletter           │
                                        due-time timer ────┘ (ticks, in envelopes too)

* ingest (``ingest.py``) decodes, validates, normalizes and repartitions by customer id; it reads
  the sources with a consumer of its own (``source_consumer.py``), or as a Faust agent.
* ``customers`` (``customers.py``) owns the per-customer state (a Faust table backed by its
  changelog topic), evaluates the rules, publishes tag changes and reschedules due times.
* the due timer (``timers.py``) sends a tick per due customer through the customer topic.

This module only binds those stages to Faust: topics, the table, agents, timers, lifecycle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import faust

from streams.app import faust_commits, faust_compat, gc_policy, group_lease
from streams.app.codec import STATE_CODEC
from streams.app.customers import CustomerStage
from streams.app.envelope import EnvelopeSender, envelope_weight
from streams.app.exactly_once_wiring import wire_exactly_once
from streams.app.faust_consumer_options import install_consumer_options
from streams.app.faust_membership import AppMembership
from streams.app.faust_producer import kafka_producer
from streams.app.faust_take_events import take_events
from streams.app.identity_wiring import wire_identity
from streams.app.ingest import IngestStage
from streams.app.rules_watch import RulesWatch
from streams.app.source_consumer import SourceConsumer
from streams.app.table_store import TableStore
from streams.app.timers import DueTimer, FaustOffsets, PartitionWatch, probe_kafka
from streams.app.watchdog import PartitionWatchdog
from streams.engine.clock import Clock, ScaledClock, WallClock
from streams.engine.due import DueIndex
from streams.engine.features.state import CustomerState
from streams.engine.identity.repeats import LinkRepeats
from streams.engine.reevaluation import Reevaluation
from streams.engine.tag_engine import TagEngine
from streams.io.audience import AudienceSizes
from streams.io.deadletter import DLQ_MAX_RECORD_BYTES, DeadLetterWriter
from streams.io.health import Health
from streams.io.kafka_probe import KAFKA_PROBE_INTERVAL_S, KafkaProbe
from streams.io.metrics import Metrics
from streams.io.own_producer import OwnProducer
from streams.io.redis_client import async_client
from streams.io.redis_sink import RedisTagSink
from streams.io.tag_topic import TagTopicWriter
from streams.io.topics import changelog_topic_name, customer_topic_name, identity_links_topic_name
from streams.settings import Settings
from tag_rules.compiler import CompiledRuleSet

log = logging.getLogger(__name__)


def identity_inputs(settings: Settings) -> list[str]:
    """The identity stage's input (links), guarded and watched like every input: faust drops records
    around rebalances, and a link never re-read is a merge never made."""
    return [identity_links_topic_name(settings)] if settings.identity.enabled else []

CUSTOMER_BUFFER_ENVELOPES = 256
"""Customer-topic records Faust may hold ahead of the customers agent (each up to 512 KB)."""


@dataclass
class Runtime:
    """What the worker and the tests see of a built app."""

    settings: Settings
    rules: CompiledRuleSet
    engine: TagEngine
    metrics: Metrics
    clock: Clock
    due: DueIndex = field(default_factory=DueIndex)
    reevaluation: Reevaluation = field(default_factory=lambda: Reevaluation(500))
    health: Health = field(default_factory=Health)
    redis_sink: RedisTagSink | None = None
    kafka_probe: KafkaProbe | None = None
    audience: AudienceSizes | None = None


def build_faust_app(settings: Settings) -> faust.App:
    """The faust.App with tagstream's broker, store and producer settings."""
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
    return faust.App(
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
        producer_max_batch_size=ks.batch_max_bytes,
        stream_wait_empty=False,
        consumer_auto_offset_reset="earliest",
        # Batch produced records for a few ms instead of one produce request per record.
        producer_linger=ks.linger_ms / 1000,
        broker_session_timeout=ks.session_timeout_ms / 1000,
        broker_heartbeat_interval=min(3.0, ks.session_timeout_ms / 3000),
        consumer_max_fetch_size=ks.fetch_max_bytes,
    )


def make_engine(settings: Settings, rules: CompiledRuleSet, births: Mapping[str, int] | None = None) -> TagEngine:
    """The engine of ``rules``; ``births``: when a deployment added each feature (a backfill's books)."""
    es = settings.engine
    return TagEngine(rules, allowed_lateness_ms=es.allowed_lateness_ms, dedup_horizon_ms=es.dedup_horizon_ms,
                     dedup_max_ids=es.dedup_max_ids, births=births, backfill_window_ms=es.backfill_window_ms)


def build_runtime(settings: Settings, rules: CompiledRuleSet, metrics: Metrics, clock: Clock | None,
                  births: Mapping[str, int] | None = None) -> Runtime:
    es = settings.engine
    origin_ms = es.clock_origin_ms if es.clock_origin_ms is not None else WallClock().now_ms()
    clock = clock or (ScaledClock(es.clock_speed, origin_ms) if es.clock_speed != 1 else WallClock())
    rt = Runtime(settings, rules, make_engine(settings, rules, births), metrics, clock,
                 reevaluation=Reevaluation(settings.engine.reevaluate_in_flight))
    rs, ks = settings.redis, settings.kafka
    redis_client = async_client(rs, timeout_ms=rs.timeout_ms)
    rt.redis_sink = RedisTagSink(async_client(rs, timeout_ms=rs.timeout_ms, per_read=False),
                                 prefix=settings.redis_key_prefix(), hash_tag=rs.cluster, metrics=metrics,
                                 backoff_max_ms=rs.retry_backoff_max_ms, timeout_ms=rs.timeout_ms,
                                 shared=redis_client, scripted=not rs.cluster)
    rt.audience = AudienceSizes(redis_client, prefix=settings.redis_key_prefix(), tags=rules.tags, metrics=metrics)
    rt.kafka_probe = KafkaProbe(ks.bootstrap_servers, f"{settings.app_id}-probe", ks.client_options())
    return rt


def create_app(settings: Settings, rules: CompiledRuleSet, metrics: Metrics,
               clock: Clock | None = None, rules_offset: int = -1,
               births: Mapping[str, int] | None = None) -> tuple[faust.App, Runtime]:
    """Builds the Faust app for ``settings`` and ``rules`` (the rules topic's deployment at
    ``rules_offset``, or -1: the local rule file; ``births``: when deployments added its features)."""
    if settings.kafka.batch_delivery:
        faust_compat.install_batch_delivery()
    app = build_faust_app(settings)
    install_consumer_options(app, fetch_max_wait_ms=settings.kafka.fetch_max_wait_ms)
    rt = build_runtime(settings, rules, metrics, clock, births)
    metrics.set_build_info(rt.engine.version)
    metrics.precreate(tags=rules.tags)
    ks, es = settings.kafka, settings.engine
    customer_events = app.topic(customer_topic_name(settings), partitions=ks.partitions, internal=True,
                                key_serializer="raw", value_serializer="raw", maxsize=CUSTOMER_BUFFER_ENVELOPES)
    customers, changelog = _customers_table(app, settings)
    # its changelog records go out as one record batch per partition (faust's path: a task per record)
    store = TableStore(customers, batches=lambda: kafka_producer(app), encode=CustomerState.dumps)
    deadletter = DeadLetterWriter(app.producer, ks.deadletter_topic, metrics)
    envelopes = EnvelopeSender(app.producer, customer_events.get_topic_name(), batches=lambda: kafka_producer(app))
    assert rt.redis_sink is not None and rt.kafka_probe is not None
    # no commit past a record faust dropped unacknowledged; a customer partition never committed
    # is read from its start after a rebalance
    strict = faust_commits.install(app, frozenset({customer_events.get_topic_name()}))
    group_lease.install()  # the stages' writes wait for a confirmed membership
    membership = AppMembership(app, strict, ks.session_timeout_ms / 1000)
    identity = wire_identity(app, settings, metrics, rt.redis_sink.client, customer_events.get_topic_name(),
                             membership)
    # ingest's envelopes on a producer of their own (own_producer.py: aiokafka sends one request per
    # broker at a time, and the customer stage's outputs would queue with them); faust's until it runs
    ingest_producer = OwnProducer(bootstrap_servers=ks.bootstrap_servers, client_options=ks.client_options(),
                                  client_id=f"{settings.app_id}-ingest-producer", batch_max_bytes=ks.batch_max_bytes)
    ingest_envelopes = envelopes if not ks.ingest_consumer else EnvelopeSender(
        app.producer, customer_events.get_topic_name(), batches=lambda: ingest_producer.sender() or kafka_producer(app))
    ingest_stage = IngestStage(
        source_by_topic={topic: source for source, topic in settings.ingest_topics().items()}, partitions=ks.partitions,
        clock=rt.clock, future_tolerance_ms=es.future_tolerance_ms, envelopes=ingest_envelopes, deadletter=deadletter,
        metrics=metrics, links=identity.links if identity else None, repeats=_link_repeats(settings))
    exactly_once = wire_exactly_once(app, settings, changelog.get_topic_name(), customer_events.get_topic_name())
    customer_stage = CustomerStage(
        engine=rt.engine, clock=rt.clock, store=store, due=rt.due,
        membership=membership,
        redis=rt.redis_sink,
        tag_topic=TagTopicWriter(app.producer, ks.tag_changes_topic, batches=lambda: kafka_producer(app)),
        deadletter=DeadLetterWriter(app.producer, ks.deadletter_topic, metrics), metrics=metrics,
        reevaluation=rt.reevaluation, exactly_once=exactly_once, identity=identity.output if identity else None,
        tag_engine=es.tag_engine)
    due_timer = DueTimer(due=rt.due, reevaluation=rt.reevaluation, clock=rt.clock, partitions=ks.partitions,
                         envelopes=envelopes, health=rt.health, redis=rt.redis_sink, metrics=metrics)
    source_consumer = _wire_ingest(app, settings, rt, ingest_stage, ingest_producer)
    _wire_customers(app, settings, rt, customer_events, customer_stage, due_timer)
    _wire_watches(app, settings, rt, source_consumer, customer_events.get_topic_name(), strict)
    _wire_audience_sizes(app, settings, rt)
    wire_rules_watch(app, settings, rt, customer_stage, rules_offset, births or {})

    if ks.hole_guard:
        _guard_holes(settings, metrics, customer_events.get_topic_name(), source_consumer)

    async def recovered() -> None:
        customer_stage.rebuild_due_index()
        log.info("state recovered: %d objects frozen for the garbage collector", gc_policy.after_recovery())
        metrics.ready.set(1)
        rt.health.recovered = True

    customers.on_recover(recovered)
    _lifecycle(app, rt)
    faust_compat.before_tables_stop(app, customer_stage.quiesce)
    app.tagstream_runtime = rt  # type: ignore[attr-defined]
    app.tagstream_tables = {"customers": customers}  # type: ignore[attr-defined]
    return app, rt


def _customers_table(app: faust.App, settings: Settings) -> tuple[Any, faust.TopicT]:
    """The customers table and its changelog topic.

    Faust derives a table's codecs from Record types; our state has its own compact codec, so the
    table and its (compacted) changelog topic are given it explicitly. Recovery decodes with the
    topic's codec, writes with the table's: both must say "tagstate"."""
    ks = settings.kafka
    changelog = app.topic(changelog_topic_name(settings), partitions=ks.partitions, internal=True,
                          compacting=True, deleting=False, acks=False, key_serializer="raw",
                          value_serializer=STATE_CODEC, allow_empty=True, maxsize=131_072)
    customers = app.Table("customers", default=None, partitions=ks.partitions, key_type=bytes,
                          changelog_topic=changelog)
    customers.value_serializer = STATE_CODEC  # type: ignore[attr-defined]
    return customers, changelog


def _wire_customers(app: faust.App, settings: Settings, rt: Runtime, customer_events: faust.TopicT,
                    customer_stage: CustomerStage, due_timer: DueTimer) -> None:
    """The customers agent (batches of envelopes to the stage), the due timer and the Kafka probe."""
    es = settings.engine
    within_s = es.batch_within_ms / 1000

    @app.agent(customer_events, name="customers")
    async def process_customers(stream: faust.StreamT[Any]) -> None:
        async for events in take_events(stream, es.envelopes_max, within_s, envelope_weight,
                                        settled=customer_stage.settled):
            if customer_stage.stopping:
                break  # leaving the loop closes take_events: this batch is not acknowledged
            await customer_stage.process(events)

    @app.timer(es.timer_interval_ms / 1000, name="due-timer")
    async def due_tick() -> None:
        await due_timer.fire(customer_stage.customers)

    @app.timer(KAFKA_PROBE_INTERVAL_S, name="kafka-probe")
    async def kafka_probe() -> None:
        assert rt.kafka_probe is not None
        await probe_kafka(rt.kafka_probe, rt.health)


def _guard_holes(settings: Settings, metrics: Metrics, customer_topic: str,
                 source_consumer: SourceConsumer | None) -> None:
    """Faust's inputs re-read where it skipped records (faust_compat.HoleGuard), logged and counted."""

    def hole(tp: Any, first: int, last: int, real_gap: bool) -> None:
        if real_gap:
            log.warning("offsets %d..%d of %s[%d] are missing after a re-read: a real gap (transaction markers "
                        "or compaction upstream); faust acknowledges it", first, last, tp.topic, tp.partition)
        else:
            log.warning("faust skipped offsets %d..%d of %s[%d] (it would acknowledge them unseen): re-reading",
                        first, last, tp.topic, tp.partition)
        metrics.offset_holes.labels(tp.topic, "gap" if real_gap else "reread").inc()

    guarded = {customer_topic, *([] if source_consumer else settings.ingest_topics().values()),
               *identity_inputs(settings)}
    faust_compat.guard_holes(faust_compat.HoleGuard(guarded, hole))


def _link_repeats(settings: Settings) -> LinkRepeats | None:
    """Ingest's memory of the links it sent (streams/engine/identity/repeats.py), with identity resolution on."""
    ident = settings.identity
    # never longer than a forgotten id's tombstone: a repeat after it ends would link the ids anew
    window_ms = min(ident.link_repeat_window_ms, ident.erasure_period_ms)
    if not ident.enabled or window_ms == 0:
        return None
    return LinkRepeats(window_ms, ident.link_repeat_max, lambda: int(time.time() * 1000))


def _wire_ingest(app: faust.App, settings: Settings, rt: Runtime, stage: IngestStage,
                 producer: OwnProducer) -> SourceConsumer | None:
    """Ingest on its own aiokafka consumer and producer (the default), or as a Faust agent (per record)."""
    ks, es = settings.kafka, settings.engine
    if ks.ingest_consumer:
        consumer = SourceConsumer(
            bootstrap_servers=ks.bootstrap_servers, client_options=ks.client_options(),
            group_id=f"{settings.app_id}-ingest", legacy_group_id=settings.app_id,
            topics=settings.ingest_topics().values(),
            stage=stage, batch_max=ks.ingest_batch_max, gather_ms=ks.ingest_gather_ms,
            fetch_max_bytes=ks.fetch_max_bytes, fetch_max_wait_ms=ks.fetch_max_wait_ms,
            session_timeout_ms=ks.session_timeout_ms, health=rt.health, on_crash=app.crash, producer=producer)

        @app.task
        async def ingest() -> None:
            await consumer.run()

        return consumer
    sources = app.topic(*settings.ingest_topics().values(), key_serializer="raw", value_serializer="raw",
                        maxsize=ks.source_buffer)

    @app.agent(sources, name="ingest")
    async def ingest_agent(stream: faust.StreamT[Any]) -> None:
        async for events in take_events(stream, es.batch_max, es.batch_within_ms / 1000):
            await stage.process([ev.message for ev in events])

    return None


def _wire_watches(app: faust.App, settings: Settings, rt: Runtime, source_consumer: SourceConsumer | None,
                  customer_topic: str, strict: faust_commits.StrictCommits) -> None:
    """The partition watchdog over every input partition: Faust's and the source consumer's."""
    ks = settings.kafka
    watches = [PartitionWatch(
        name="faust", source=FaustOffsets(app, strict), metrics=rt.metrics, health=rt.health,
        topics=[customer_topic, *(() if source_consumer else settings.ingest_topics().values()),
                *identity_inputs(settings)],
        watchdog=PartitionWatchdog(ks.stall_after_ms / 1000))]
    if source_consumer is not None:
        watches.append(PartitionWatch(name="ingest", source=source_consumer, topics=settings.ingest_topics().values(),
                                      watchdog=PartitionWatchdog(ks.stall_after_ms / 1000), health=rt.health,
                                      metrics=rt.metrics))

    @app.timer(min(5.0, ks.stall_after_ms / 3000), name="partition-watch")
    async def partition_watch() -> None:
        for watch in watches:
            await watch.check()


def _wire_audience_sizes(app: faust.App, settings: Settings, rt: Runtime) -> None:
    """tagstream_audience_size{tag}: read at start, then every ``metrics.audience_interval_ms``."""
    interval_s = settings.metrics.audience_interval_ms / 1000
    audience = rt.audience
    if not interval_s or audience is None:
        return

    @app.task
    async def audience_sizes() -> None:  # a task, not a timer: the first read is at start, not a period later
        while not app.should_stop:
            await audience.refresh()
            await app.sleep(interval_s)


def _lifecycle(app: faust.App, rt: Runtime) -> None:
    """Quiet client logs at start, not-ready while rebalancing, close our clients at stop."""

    @app.task
    async def _quiet_client_logs() -> None:
        # faust and aiokafka log every produced record at DEBUG; building those records cost
        # 3-7 % of the worker's CPU (py-spy) even when nothing is printed.
        for name in ("aiokafka", "faust.topics", "faust.transport"):
            logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().getEffectiveLevel()))

    @app.on_partitions_revoked.connect
    async def _rebalancing(*args: Any, **kwargs: Any) -> None:
        rt.metrics.ready.set(0)  # until the next recovery completes
        rt.health.recovered = False

    @app.on_before_shutdown.connect
    async def _close_clients(*args: Any, **kwargs: Any) -> None:
        for client in (rt.redis_sink, rt.kafka_probe):
            if client is not None:
                try:
                    await client.close()
                except Exception as exc:  # closing must not hide the reason we stop
                    log.warning("closing %s failed: %r", type(client).__name__, exc)


def wire_rules_watch(app: faust.App, settings: Settings, rt: Runtime, stage: CustomerStage, offset: int,
                     births: Mapping[str, int]) -> None:
    """Hot deploy: follow the rules topic, switch engines between batches (rules_watch.py)."""
    assert rt.redis_sink is not None

    async def apply(rules: CompiledRuleSet, births: Mapping[str, int]) -> int:
        engine = make_engine(settings, rules, births)
        n = await stage.swap_engine(engine)
        rt.engine, rt.rules = engine, rules
        rt.metrics.set_build_info(engine.version)
        rt.metrics.precreate(tags=rules.tags)
        if rt.audience is not None:
            rt.audience.set_tags(rules.tags)
        return n

    watch = RulesWatch(settings, current=rt.rules, offset=offset, apply=apply, redis=rt.redis_sink.client,
                       prefix=settings.redis_key_prefix(),
                       on_rejected=lambda why: rt.metrics.rules_rejected.labels(why).inc(), births=births)

    @app.timer(1.0, name="rules-watch")
    async def rules_watch() -> None:
        await watch.check()

    @app.on_before_shutdown.connect
    async def _close_watch(*args: Any, **kwargs: Any) -> None:
        await watch.close()
