"""The ingest and customer stages' batch logic, with fakes of the io contracts (no Kafka, no Redis)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.app.customer_contracts import Delivered, ExactlyOnce, LeaseExpired
from streams.app.customers import CustomerStage
from streams.app.envelope import EnvelopeSender, decode_envelope, partition_for
from streams.app.ingest import IngestStage
from streams.engine.clock import ManualClock
from streams.engine.due import DueIndex
from streams.engine.features.state import CustomerState
from streams.engine.reevaluation import Reevaluation
from streams.engine.tag_engine import TagEngine
from streams.io.deadletter import DeadLetterWriter
from streams.io.metrics import Metrics
from streams.io.redis_sink import Fence, RedisFenced, RedisTagSink
from streams.io.tag_topic import TagTopicWriter
from streams.io.transactions import Fenced, OutRecord, PartitionTransactions
from tag_rules import load_rules

NOW = 1_800_000_000_000
PARTITIONS = 4
RULES = """
version: v1
features:
  - {name: views_1h, agg: count, window: 1h, where: 'type == "product_view"'}
tags:
  - {name: browser, when: views_1h >= 2}
"""


class FakeProducer:
    """Records every send; the returned future is done unless ``fail`` says otherwise."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, int | None, Any]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any) -> asyncio.Future[None]:
        self.sent.append((topic, key, value, partition, headers))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def on(self, topic: str) -> list[tuple[str, bytes | None, bytes | None, int | None, Any]]:
        return [s for s in self.sent if s[0] == topic]


class FakePipeline:
    def __init__(self, client: FakeRedis) -> None:
        self.client = client
        self.commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any) -> None:
        self.commands.append(args)

    async def execute(self) -> list[Any]:
        self.client.log.append(("flush", self.client.producer_sent()))
        self.client.commands += self.commands
        return []


class FakeRedis:
    def __init__(self, producer: FakeProducer) -> None:
        self.commands: list[tuple[Any, ...]] = []
        self.log: list[tuple[str, int]] = []
        self.producer = producer

    def producer_sent(self) -> int:
        return len(self.producer.sent)

    def pipeline(self, transaction: bool = False) -> FakePipeline:
        return FakePipeline(self)

    async def aclose(self) -> None:
        return None


@dataclass
class Record:
    value: bytes | None
    topic: str = "events.clickstream"
    partition: int = 0
    offset: int = 0
    timestamp: float = NOW / 1000
    key: bytes | None = None
    generation_id: int = 1

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)


@dataclass
class Event:
    message: Record


@dataclass
class DictStore:
    data: dict[bytes, CustomerState] = field(default_factory=dict)
    writes: list[tuple[bytes, int]] = field(default_factory=list)
    local: list[bytes] = field(default_factory=list)
    flushes: int = 0

    def get(self, key: bytes) -> CustomerState | None:
        return self.data.get(key)

    def put(self, key: bytes, state: CustomerState, record: Delivered, encoded: bytes | None = None) -> None:
        self.data[key] = state
        self.writes.append((key, record.message.partition))

    def delete(self, key: bytes, record: Delivered) -> None:
        self.data.pop(key, None)

    def put_local(self, key: bytes, state: CustomerState, record: Delivered) -> None:
        self.data[key] = state
        self.local.append(key)

    def delete_local(self, key: bytes, record: Delivered) -> None:
        self.data.pop(key, None)
        self.local.append(key)

    def items(self) -> list[tuple[bytes, object]]:
        return list(self.data.items())

    def held_keys(self) -> list[bytes]:
        return list(self.data)

    async def flush(self) -> None:
        self.flushes += 1

    def drop_pending(self) -> int:
        return 0


@dataclass
class Group:
    gen: int = 1
    owned: set[int] = field(default_factory=lambda: set(range(PARTITIONS)))
    bump_on_publish: bool = False
    done: set[tuple[int, int]] = field(default_factory=set)
    """(partition, offset) of records a hole's re-read brings again, processed already."""
    expired: bool = False
    """The group may have dropped this worker (a pause longer than the session)."""
    token: int = 1_000
    """When this worker's membership began (``Membership.fence_token``)."""

    def generation(self) -> int:
        return self.gen

    def owns(self, record: Delivered) -> bool:
        return record.message.partition in self.owned

    def read_again(self, record: Delivered) -> bool:
        return (record.message.partition, record.message.offset) in self.done

    def lease_expired(self) -> bool:
        return self.expired

    def fence_token(self) -> int:
        return self.token


def click(cid: str | None, i: int, **kw: Any) -> bytes:
    ev = {"event_id": f"e{cid}-{i}", "ts": NOW - 1000 + i, "type": "product_view", "session_id": "s",
          "user_id": cid, "anonymous_id": None if cid else "anon-1", **kw}
    return orjson.dumps(ev)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics.create(CollectorRegistry())


def ingest_stage(producer: FakeProducer, metrics: Metrics) -> IngestStage:
    return IngestStage(source_by_topic={"events.clickstream": "clickstream"}, partitions=PARTITIONS,
                       clock=ManualClock(NOW), future_tolerance_ms=60_000,
                       envelopes=EnvelopeSender(producer, "cust"),
                       deadletter=DeadLetterWriter(producer, "dlq", metrics), metrics=metrics)


async def test_ingest_repartitions_by_customer_and_dead_letters_bad_records(metrics: Metrics) -> None:
    producer = FakeProducer()
    records = [Record(click(f"c{i % 5}", i), offset=i) for i in range(20)]
    records += [Record(b"{not json", offset=20), Record(click(None, 21), offset=21),
                Record(click("c9", 22, ts=NOW + 3_600_000), offset=22)]
    await ingest_stage(producer, metrics).process(records)
    envelopes = producer.on("cust")
    assert len(envelopes) == len({partition_for(f"c{i}".encode(), PARTITIONS) for i in range(5)})
    items = [(p, obj) for _, _, v, p, _ in envelopes for obj in decode_envelope(v)]
    assert len(items) == 20
    assert all(p == partition_for(obj["customer_id"].encode(), PARTITIONS) for p, obj in items)
    # each event carries its source position (a backfill tells by it what the live path counted)
    assert sorted(obj["so"] for _, obj in items) == list(range(20))
    assert {obj["sp"] for _, obj in items} == {"clickstream:0"}
    for cid in ("c0", "c3"):  # a customer's events keep their order
        ids = [obj["event_id"] for _, obj in items if obj["customer_id"] == cid]
        assert ids == sorted(ids, key=lambda e: int(e.split("-")[1]))
    dlq = producer.on("dlq")
    reasons = sorted(dict(h)["ts.reason"].decode() for *_, h in dlq)
    assert reasons == ["future_timestamp", "invalid_json"]
    assert {dict(h)["ts.source_offset"] for *_, h in dlq} == {b"20", b"22"}
    assert dlq[0][2] == b"{not json"  # the original bytes, unchanged
    assert metrics.events_anonymous.labels("clickstream")._value.get() == 1


async def test_ingest_dead_letters_an_event_too_big_for_the_internal_topic(metrics: Metrics,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.app import ingest

    monkeypatch.setattr(ingest, "INTERNAL_RECORD_MAX_BYTES", 200)
    producer = FakeProducer()
    await ingest_stage(producer, metrics).process([Record(click("c1", 0, url="https://x/" + "a" * 300))])
    assert producer.on("cust") == []
    assert [dict(h)["ts.reason"] for *_, h in producer.on("dlq")] == [b"too_large"]


def customer_stage(tmp_path: Path, producer: FakeProducer, metrics: Metrics, store: DictStore,
                   group: Group, identity: Any = None) -> tuple[CustomerStage, FakeRedis]:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    redis = FakeRedis(producer)
    stage = CustomerStage(engine=TagEngine(load_rules(path)), clock=ManualClock(NOW), store=store, membership=group,
                          due=DueIndex(), redis=RedisTagSink(redis, prefix="p"),  # type: ignore[arg-type]
                          tag_topic=TagTopicWriter(producer, "tags"),
                          deadletter=DeadLetterWriter(producer, "dlq", metrics), metrics=metrics,
                          reevaluation=Reevaluation(2), identity=identity)
    return stage, redis


def envelope(cid: str, n: int, start: int = 0, **kw: Any) -> Event:
    from streams.app.envelope import EnvelopeBuilder

    b = EnvelopeBuilder(PARTITIONS)
    for i in range(start, start + n):
        b.add(cid.encode(), orjson.dumps({
            "event_id": f"{cid}-{i}", "source": "clickstream", "type": "product_view", "customer_id": cid,
            "ts_ms": NOW - 1000 + i, "src_ts_ms": NOW - 1000 + i, "amount": None, "currency": None, "skus": [],
            "categories": [], "channel": None, "store_id": None, "session_id": None, "order_id": None,
            "payment_method": None, "quantity": None, "query": None, "url": None}))
    (p, value), = b.records()
    return Event(Record(value, topic="cust", partition=p, **kw))


async def test_customer_batch_publishes_then_saves(tmp_path: Path, metrics: Metrics) -> None:
    producer, store = FakeProducer(), DictStore()
    stage, redis = customer_stage(tmp_path, producer, metrics, store, Group())
    await stage.process([envelope("c1", 1), envelope("c2", 3)])
    tags = [orjson.loads(v or b"") for _, _, v, _, _ in producer.on("tags")]
    assert [(t["customer_id"], t["tag"], t["op"]) for t in tags] == [("c2", "browser", "add")]
    assert ("SADD", "p:tag:browser", "c2") in redis.commands
    assert set(store.data) == {b"c1", b"c2"}
    assert store.data[b"c2"].tags.keys() == {"browser"}
    # a second batch for c1 tags it too; c2's state is read back, not rebuilt
    await stage.process([envelope("c1", 1, start=5)])
    assert store.data[b"c1"].tags.keys() == {"browser"}


@pytest.mark.parametrize("tag_anonymous", [False, True])
async def test_anonymous_visitors_keep_features_and_get_tags_only_when_published(
        tmp_path: Path, metrics: Metrics, tag_anonymous: bool) -> None:
    """Identity resolution on: with TAG_ANONYMOUS off an anonymous-only customer's tags are not
    evaluated at all (nothing to publish, no due time); its features count all the same."""
    from streams.app.customer_identity import IdentityOutput
    from streams.app.envelope import EnvelopeSender

    producer, store = FakeProducer(), DictStore()
    output = IdentityOutput(EnvelopeSender(producer, "cust"), PARTITIONS, tag_anonymous=tag_anonymous)
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group(), identity=output)
    await stage.process([envelope("anonymous:d1", 3), envelope("user:u1", 3)])
    tagged = {orjson.loads(v or b"")["customer_id"] for _, _, v, _, _ in producer.on("tags")}
    assert tagged == ({"anonymous:d1", "user:u1"} if tag_anonymous else {"user:u1"})
    anon, user = store.data[b"anonymous:d1"], store.data[b"user:u1"]
    assert stage.engine.feature_values(anon, NOW) == stage.engine.feature_values(user, NOW)
    assert anon.tags.keys() == ({"browser"} if tag_anonymous else set())
    assert user.tags.keys() == {"browser"}


@pytest.mark.parametrize("tag_anonymous", [False, True])
async def test_an_anonymous_customers_changes_from_a_merge_or_its_expiry_are_published_only_with_tag_anonymous(
        tmp_path: Path, metrics: Metrics, tag_anonymous: bool) -> None:
    """An anonymous customer holding a tag (made while TAG_ANONYMOUS was on): its removal, by a merge
    into an account or by its time to live, is published only if TAG_ANONYMOUS is on now; the
    account's own changes from the merge always are."""
    from streams.app.customer_identity import IdentityOutput
    from streams.app.envelope import EnvelopeBuilder, EnvelopeSender

    producer, store = FakeProducer(), DictStore()
    output = IdentityOutput(EnvelopeSender(producer, "cust"), PARTITIONS, tag_anonymous=True, anonymous_ttl_ms=60_000)
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group(), identity=output)
    await stage.process([envelope("anonymous:d1", 3), envelope("anonymous:d2", 3)])
    assert store.data[b"anonymous:d1"].tags.keys() == store.data[b"anonymous:d2"].tags.keys() == {"browser"}
    output.tag_anonymous = tag_anonymous
    producer.sent.clear()

    def item(obj: dict[str, Any]) -> Event:
        b = EnvelopeBuilder(PARTITIONS)
        b.add(obj["customer_id"].encode(), orjson.dumps(obj))
        (p, value), = b.records()
        return Event(Record(value, topic="cust", partition=p))

    snapshot = orjson.loads(store.data[b"anonymous:d1"].dumps())
    await stage.process([item({"customer_id": "user:u1",
                               "merge": {"from": "anonymous:d1", "merge_id": "m-1", "state": snapshot}})])
    assert isinstance(stage.clock, ManualClock)
    stage.clock.advance(61_000)
    expires = store.data[b"anonymous:d2"].expires_ms
    await stage.process([item({"customer_id": "anonymous:d2", "tick": expires})])
    published = [(c["customer_id"], c["op"], c["cause"]) for c in
                 (orjson.loads(v or b"") for _, _, v, _, _ in producer.on("tags"))]
    anonymous = [("anonymous:d1", "remove", "merge"), ("anonymous:d2", "remove", "expiry")]
    assert published == [("user:u1", "add", "merge"), *(anonymous if tag_anonymous else [])]
    assert b"anonymous:d2" not in store.data  # expired all the same


async def test_replayed_events_feed_the_new_features_once(tmp_path: Path, metrics: Metrics) -> None:
    """Items marked ``bf`` (tagstream backfill) go to the engine's backfill path: applied once, then
    skipped; the tags they complete are published as rule changes."""
    from streams.app.envelope import EnvelopeBuilder
    from streams.engine.backfill import state_keys

    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())
    rules = stage.engine.rules
    stage.engine = TagEngine(rules, births=dict.fromkeys(state_keys(rules), NOW - 60_000))
    keys = sorted(state_keys(rules))

    def replayed() -> Event:
        b = EnvelopeBuilder(PARTITIONS)
        for i in range(3):
            b.add(b"c1", orjson.dumps({
                "event_id": f"c1-{i}", "source": "clickstream", "type": "product_view", "customer_id": "c1",
                "ts_ms": NOW - 600_000 + i, "src_ts_ms": NOW, "amount": None, "currency": None, "skus": [],
                "categories": [], "channel": None, "store_id": None, "session_id": None, "order_id": None,
                "payment_method": None, "quantity": None, "query": None, "url": None,
                "sp": "clickstream:0", "so": i, "bf": {"keys": keys, "from": 0}}))
        (p, value), = b.records()
        return Event(Record(value, topic="cust", partition=p))

    await stage.process([replayed()])
    await stage.process([replayed()])  # the same run again (or a redelivery)
    state = store.data[b"c1"]
    assert stage.engine.feature_values(state, NOW) == {"views_1h": 3}
    assert state.seen_log == b""  # replayed events are not "seen": the live path still counts what it gets
    assert metrics.backfill_events.labels("applied")._value.get() == 3
    assert metrics.backfill_events.labels("skipped")._value.get() == 3
    assert metrics.events_processed.labels("clickstream")._value.get() == 0
    tags = [orjson.loads(v or b"") for _, _, v, _, _ in producer.on("tags")]
    assert [(t["tag"], t["op"], t["cause"]) for t in tags] == [("browser", "add", "rule_change")]


async def test_stale_generation_records_are_skipped(tmp_path: Path, metrics: Metrics) -> None:
    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group(gen=2))
    await stage.process([envelope("c1", 3, generation_id=1)])
    assert store.data == {} and producer.sent == []


async def test_records_a_holes_reread_brings_again_are_not_processed_twice(tmp_path: Path, metrics: Metrics) -> None:
    """A record acknowledged before the watchdog sought its partition back to a hole comes again
    with the hole's records: its events are in the state already and are not processed again."""
    producer, store = FakeProducer(), DictStore()
    later = envelope("c1", 3, offset=7)
    group = Group()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, group)
    await stage.process([later])  # processed and acknowledged while record 6 was dropped: a hole
    group.done.add((later.message.partition, 7))  # the watchdog seeks back to 6: 6, then 7 again
    await stage.process([envelope("c1", 3, offset=6, start=3), envelope("c1", 3, offset=7)])
    assert stage.engine.feature_values(store.data[b"c1"], NOW)["views_1h"] == 6
    assert metrics.records_read_again._value.get() == 1
    assert metrics.events_processed.labels("clickstream")._value.get() == 6
    assert metrics.events_duplicate.labels("clickstream")._value.get() == 0
    group.done.clear()  # without it, the record is processed again and its events count once, by event id
    await stage.process([envelope("c1", 3, offset=7)])
    assert stage.engine.feature_values(store.data[b"c1"], NOW)["views_1h"] == 6
    assert metrics.events_duplicate.labels("clickstream")._value.get() == 3


async def test_partitions_lost_during_publish_are_not_saved(tmp_path: Path, metrics: Metrics) -> None:
    producer, store = FakeProducer(), DictStore()
    group = Group()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, group)
    moved = envelope("c2", 3)
    kept = envelope("c1", 3) if envelope("c1", 3).message.partition != moved.message.partition else envelope("c3", 3)
    real_flush = stage.tag_topic.flush

    async def rebalance_while_publishing() -> None:
        await real_flush()
        group.gen += 1
        group.owned.discard(moved.message.partition)

    stage.tag_topic.flush = rebalance_while_publishing  # type: ignore[method-assign]
    await stage.process([kept, moved])
    assert set(store.data) == {kept_key(kept)}


def kept_key(ev: Event) -> bytes:
    return str(decode_envelope(ev.message.value)[0]["customer_id"]).encode()


class EngineWith:
    """The stage's engine with ``process_event`` replaced (a compiled engine's methods cannot be)."""

    def __init__(self, inner: Any, process_event: Any) -> None:
        self._inner = inner
        self.process_event = process_event

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_a_failing_customer_goes_to_the_dead_letter_topic_alone(tmp_path: Path, metrics: Metrics,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())
    real = stage.engine.process_event

    def boom(state: CustomerState, event: Any, now_ms: int) -> Any:
        if event["customer_id"] == "bad":
            raise OverflowError("int too big to convert")
        return real(state, event, now_ms)

    monkeypatch.setattr(stage, "engine", EngineWith(stage.engine, boom))
    await stage.process([envelope("bad", 2), envelope("c2", 3)])
    dlq = producer.on("dlq")
    assert [(k, dict(h)["ts.reason"]) for _, k, _, _, h in dlq] == [(b"bad", b"internal_error")] * 2
    assert set(store.data) == {b"c2"}


async def test_a_state_that_cannot_be_saved_is_dead_lettered_not_raised(tmp_path: Path, metrics: Metrics,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())
    real = stage.engine.process_event

    def poison(state: CustomerState, event: Any, now_ms: int) -> Any:
        out = real(state, event, now_ms)
        if event["customer_id"] == "bad":
            state.due_ms = 2 ** 70  # orjson cannot encode it
        return out

    monkeypatch.setattr(stage, "engine", EngineWith(stage.engine, poison))
    await stage.process([envelope("bad", 1), envelope("c2", 1)])
    assert [dict(h)["ts.reason"] for *_, h in producer.on("dlq")] == [b"internal_error"]
    assert set(store.data) == {b"c2"}


async def test_redis_and_tag_topic_are_written_before_the_state(tmp_path: Path, metrics: Metrics) -> None:
    producer, store = FakeProducer(), DictStore()
    stage, redis = customer_stage(tmp_path, producer, metrics, store, Group())
    order: list[str] = []
    real_put = store.put

    def put(key: bytes, state: CustomerState, record: Delivered, encoded: bytes | None = None) -> None:
        order.append(f"save after {len(producer.on('tags'))} tag records, {len(redis.log)} redis flushes")
        assert encoded == state.dumps()  # made once by the stage, handed to the store
        real_put(key, state, record, encoded)

    store.put = put  # type: ignore[method-assign]
    await stage.process([envelope("c2", 3)])
    assert order == ["save after 1 tag records, 1 redis flushes"]
    saving = stage.settled()
    assert saving is not None
    await saving
    assert store.flushes == 1  # the writes are pushed out before the batch can be acknowledged
    assert redis.log == [("flush", 0)]  # Redis first, then the tag topic


def test_rebuild_due_index_reschedules_every_state(tmp_path: Path, metrics: Metrics) -> None:
    """Every state keeps its due time; one made under other rules is also queued for
    re-evaluation (in slices, not all due now)."""
    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())
    old = CustomerState(rule_version="v0")
    old.due_ms = NOW + 5
    store.data.update({b"a": old, b"b": CustomerState(rule_version=stage.engine.version)})
    store.data[b"b"].due_ms = NOW + 10
    assert stage.rebuild_due_index() == 2
    assert sorted(stage.due.pop_due(NOW + 10)) == [(b"a", NOW + 5), (b"b", NOW + 10)]
    assert stage.reevaluation.pending == 1 and stage.reevaluation.take(NOW) == [b"a"]


class FakeTransactions:
    """Commits per partition, in order; partitions in ``fenced`` raise Fenced (nothing written)."""

    def __init__(self, redis: FakeRedis) -> None:
        self.commits: list[tuple[int, list[OutRecord]]] = []
        self.fenced: set[int] = set()
        self.redis = redis
        self.redis_flushes_before: list[int] = []

    async def commit(self, partition: int, records: list[OutRecord]) -> None:
        self.redis_flushes_before.append(len(self.redis.log))
        if partition in self.fenced:
            raise Fenced(f"partition {partition} moved")
        self.commits.append((partition, list(records)))


def exactly_once_stage(tmp_path: Path, metrics: Metrics, store: DictStore) -> tuple[CustomerStage, FakeTransactions,
                                                                                      FakeProducer]:
    producer = FakeProducer()
    stage, redis = customer_stage(tmp_path, producer, metrics, store, Group())
    tx = FakeTransactions(redis)
    stage.exactly_once = ExactlyOnce(tx, "tags", "changelog")  # type: ignore[arg-type]
    return stage, tx, producer


async def test_exactly_once_writes_changes_and_states_in_one_transaction_per_partition(
        tmp_path: Path, metrics: Metrics) -> None:
    store = DictStore()
    stage, tx, producer = exactly_once_stage(tmp_path, metrics, store)
    evs = [envelope(f"c{i}", 3) for i in range(6)]
    await stage.process(evs)
    assert producer.sent == []  # nothing outside the transactions
    assert store.writes == [] and sorted(store.local) == sorted(f"c{i}".encode() for i in range(6))
    assert sorted(p for p, _ in tx.commits) == sorted({e.message.partition for e in evs})  # one per partition
    for partition, records in tx.commits:
        states = [r for r in records if r.topic == "changelog"]
        changes = [r for r in records if r.topic == "tags"]
        assert states and all(r.partition == partition for r in states)
        assert {r.key for r in changes} == {r.key for r in states}  # every customer here was tagged
        for r in states:
            assert r.value == store.data[r.key].dumps()
    assert all(n == 1 for n in tx.redis_flushes_before)  # Redis (idempotent) before the commits


async def test_exactly_once_fenced_partition_is_not_saved(tmp_path: Path, metrics: Metrics) -> None:
    store = DictStore()
    stage, tx, _ = exactly_once_stage(tmp_path, metrics, store)
    a = envelope("c1", 3)
    b = next(e for e in (envelope(f"c{i}", 3) for i in range(2, 40)) if e.message.partition != a.message.partition)
    tx.fenced.add(b.message.partition)
    await stage.process([a, b])
    assert set(store.data) == {kept_key(a)}  # the fenced partition's new owner replays b
    assert [p for p, _ in tx.commits] == [a.message.partition]
    refused = stage.settled()  # the batch is not acknowledged: its records are read again
    assert refused is not None and refused.done() and isinstance(refused.exception(), Fenced)
    tx.fenced.clear()
    await stage.process([envelope("c1", 3, start=3)])
    assert stage.settled() is None  # the next batch is acknowledged as usual


def either_stage(tmp_path: Path, metrics: Metrics, store: DictStore, exactly_once: bool) -> tuple[
        CustomerStage, FakeTransactions | None, FakeProducer]:
    """A stage with either guarantee (its transactions with exactly_once)."""
    if exactly_once:
        return exactly_once_stage(tmp_path, metrics, store)
    producer = FakeProducer()
    return customer_stage(tmp_path, producer, metrics, store, Group())[0], None, producer


@pytest.mark.parametrize("exactly_once", [False, True])
async def test_a_batch_whose_membership_lease_expired_writes_nothing_and_is_not_acknowledged(
        tmp_path: Path, metrics: Metrics, exactly_once: bool) -> None:
    """A worker resumed after a pause longer than its session may have lost its partitions: the
    batch in flight publishes nothing, saves nothing and stays unacknowledged (group_lease.py)."""
    store = DictStore()
    stage, tx, producer = either_stage(tmp_path, metrics, store, exactly_once)
    group = stage.membership
    assert isinstance(group, Group)
    group.expired = True
    await stage.process([envelope("c1", 3), envelope("c2", 2)])
    refused = stage.settled()
    assert refused is not None and refused.done() and isinstance(refused.exception(), LeaseExpired)
    assert store.data == {} and store.writes == [] and producer.sent == []
    assert tx is None or tx.commits == []
    assert metrics.batches_refused._value.get() == 1
    group.expired = False  # confirmed again (a heartbeat, or the join after the pause)
    await stage.process([envelope("c1", 3), envelope("c2", 2)])
    assert set(store.data) == {b"c1", b"c2"}
    assert stage.settled() is not refused


async def test_a_refused_batch_s_dead_letter_records_are_written_once_when_it_is_read_again(
        tmp_path: Path, metrics: Metrics) -> None:
    """A batch refused for an expired lease writes none of its dead-letter records either, and leaves
    none queued for the next batch: read again, it rejects the same record once."""
    store, producer = DictStore(), FakeProducer()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())
    group = stage.membership
    assert isinstance(group, Group)
    batch = [envelope("c1", 2), Event(Record(b"{not an envelope", topic="cust", partition=1, offset=5))]
    group.expired = True
    await stage.process(batch)
    assert producer.on("dlq") == []
    group.expired = False
    await stage.process([envelope("c2", 1)])
    assert producer.on("dlq") == []
    await stage.process(batch)
    assert [dict(headers)["ts.source_offset"] for *_, headers in producer.on("dlq")] == [b"5"]


@pytest.mark.parametrize("exactly_once", [False, True])
async def test_a_batch_redis_fences_off_writes_nothing_more_and_is_not_acknowledged(
        tmp_path: Path, metrics: Metrics, exactly_once: bool) -> None:
    """A worker resumed after a pause, past its lease check: Redis refuses its writes once a later
    owner (a later fence token) wrote one of the batch's partitions (redis_sink.Fence; the script is
    tested against redis-server in tests/integration/test_redis_sink.py). Then no tag record, no
    transaction and no state follow, and the batch stays unacknowledged."""
    store = DictStore()
    stage, tx, producer = either_stage(tmp_path, metrics, store, exactly_once)
    fences: list[Fence] = []
    later: dict[int, int] = {}

    async def write(changes: Any, fence: Fence | None = None) -> None:  # Redis's side of APPLY
        assert fence is not None
        fences.append(fence)
        for p in sorted(fence.partitions):
            if later.get(p, 0) > fence.token:
                raise RedisFenced(f"customer partition {p} was written by a later owner")
        for p in fence.partitions:
            later[p] = fence.token

    stage.redis._write = write  # type: ignore[method-assign]
    a, b = envelope("c1", 3), envelope("c2", 2)
    group = stage.membership
    assert isinstance(group, Group)
    later[b.message.partition] = group.token + 1  # the partition's next owner joined later and wrote
    await stage.process([a, b])
    assert fences == [Fence(group.token, frozenset({a.message.partition, b.message.partition}))]
    refused = stage.settled()
    assert refused is not None and refused.done() and isinstance(refused.exception(), RedisFenced)
    assert store.data == {} and store.writes == [] and producer.sent == []
    assert tx is None or tx.commits == []
    assert metrics.batches_refused._value.get() == 1
    group.token += 2  # this worker rejoined later still, and owns the partitions again
    await stage.process([a, b])
    assert set(store.data) == {b"c1", b"c2"} and stage.settled() is not refused


async def test_a_lease_that_expires_before_the_changelog_flush_sends_nothing(tmp_path: Path, metrics: Metrics) -> None:
    """Paused between saving a batch and sending its changelog records: they are dropped, that
    batch is not acknowledged, and the next one, which finds it so, saves nothing either."""
    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())
    group = stage.membership
    assert isinstance(group, Group)
    await stage.process([envelope("c1", 3)])
    group.expired = True  # before the flush task ran
    first = stage.settled()
    assert first is not None
    with pytest.raises(LeaseExpired, match="changelog records not sent"):
        await first
    assert store.flushes == 0
    group.expired = False
    await stage.process([envelope("c2", 3)])
    refused = stage.settled()
    assert refused is not None and isinstance(refused.exception(), LeaseExpired)
    assert b"c2" not in store.data
    await stage.process([envelope("c3", 3)])
    assert b"c3" in store.data and stage.settled() is not refused


async def test_exactly_once_state_with_nothing_left_is_a_tombstone(tmp_path: Path, metrics: Metrics) -> None:
    store = DictStore()
    stage, tx, _ = exactly_once_stage(tmp_path, metrics, store)
    state = CustomerState(rule_version=stage.engine.version)
    from streams.app.customer_contracts import Updated

    ev = envelope("gone", 1)
    await stage.commit_transactions([], [Updated(b"gone", state, ev)], {b"gone": ev}, 1)
    (_, records), = tx.commits
    assert records == [OutRecord("changelog", b"gone", None, ev.message.partition)]


def test_partition_transactions_ids_are_per_partition() -> None:
    t = PartitionTransactions(bootstrap_servers="x:1", transactional_prefix="app-tagstream-customers",
                              client_options={})
    assert [t.transactional_id(p) for p in (0, 3)] == ["app-tagstream-customers-0", "app-tagstream-customers-3"]


async def test_a_revoked_partition_refuses_commits_before_any_producer_starts() -> None:
    """The batch in flight at a revoke must not start a producer for the partition again (that
    fences its new owner): refused until the partition is assigned back. Against the broker:
    tests/integration/test_transactions.py."""
    t = PartitionTransactions(bootstrap_servers="127.0.0.1:1", transactional_prefix="app-tagstream-customers",
                              client_options={})
    await t.release([0, 1])
    with pytest.raises(Fenced, match="partition 1 was revoked"):
        await t.commit(1, [OutRecord("tags", b"c1", b"{}")])
    assert t._producers == {}  # nothing was started (no broker at that address either)
    await t.commit(1, [])  # nothing to write: nothing refused


async def test_customers_in_state_is_counted_without_walking_the_store(tmp_path: Path, metrics: Metrics) -> None:
    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())
    await stage.process([envelope("c1", 1), envelope("c2", 1)])
    await stage.process([envelope("c1", 1, start=3), envelope("c3", 1)])
    assert stage.customers == len(store.data) == 3
    from streams.app.customer_contracts import Updated

    gone = envelope("c2", 1)
    stage.save(Updated(b"c2", CustomerState(), gone, existed=True))  # nothing left: deleted
    assert stage.customers == len(store.data) == 2
    stage.customers = 99
    assert stage.rebuild_due_index() == 2 and stage.customers == 2  # recounted after a recovery


def gate_flush(store: DictStore) -> asyncio.Event:
    """Makes the store's changelog flush wait for the returned event."""
    release = asyncio.Event()
    real_flush = store.flush

    async def slow_flush() -> None:
        await release.wait()
        await real_flush()

    store.flush = slow_flush  # type: ignore[method-assign]
    return release


async def test_quiesce_waits_for_the_batch_in_flight(tmp_path: Path, metrics: Metrics) -> None:
    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())
    release = gate_flush(store)
    batch = asyncio.create_task(stage.process([envelope("c2", 3)]))
    await asyncio.sleep(0.01)
    stop = asyncio.create_task(stage.quiesce())
    await asyncio.sleep(0.01)
    assert not stop.done() and not stage.stopping  # the table must not close under the batch
    release.set()
    await asyncio.gather(batch, stop)
    assert stage.stopping and store.flushes == 1 and b"c2" in store.data


async def test_the_next_batch_is_evaluated_and_published_while_the_last_one_s_states_are_out(
        tmp_path: Path, metrics: Metrics) -> None:
    """A batch's changelog acknowledgement is not waited for before the next batch: that one reads
    the states from the store, publishes its changes and saves its own states only after it."""
    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())
    release = gate_flush(store)
    await stage.process([envelope("c1", 1)])  # returns with its changelog writes out
    first = stage.settled()
    assert first is not None and not first.done() and store.writes == [(b"c1", envelope("c1", 1).message.partition)]
    second = asyncio.create_task(stage.process([envelope("c1", 1, start=5)]))
    await asyncio.sleep(0.01)
    tags = [orjson.loads(v or b"") for _, _, v, _, _ in producer.on("tags")]
    assert [(t["customer_id"], t["tag"]) for t in tags] == [("c1", "browser")]  # from c1's saved state + 1
    assert len(store.writes) == 1 and not second.done()  # its states wait for the first batch's
    release.set()
    await second
    assert first.done() and len(store.writes) == 2
    saving = stage.settled()
    assert saving is not None
    await saving
    assert store.flushes == 2


async def test_a_failed_changelog_write_fails_the_next_batch_before_it_saves(tmp_path: Path,
                                                                             metrics: Metrics) -> None:
    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())

    async def failing_flush() -> None:
        raise RuntimeError("changelog write failed")

    store.flush = failing_flush  # type: ignore[method-assign]
    await stage.process([envelope("c1", 1)])
    first = stage.settled()
    assert first is not None
    with pytest.raises(RuntimeError, match="changelog write failed"):
        await stage.process([envelope("c2", 3)])
    assert [k for k, _ in store.writes] == [b"c1"]  # c2's state was not saved after the failure


async def test_quiesce_gives_up_on_a_stuck_batch(tmp_path: Path, metrics: Metrics) -> None:
    stage, _ = customer_stage(tmp_path, FakeProducer(), metrics, DictStore(), Group())
    await stage._batch.acquire()  # a batch that never ends
    await stage.quiesce(timeout_s=0.01)
    assert stage.stopping


def test_a_batch_s_changes_are_tallied_per_labels_timestamp_and_instant() -> None:
    """``published.tally``: what the customer stage adds to the tag-change counters and latency histograms."""
    from streams.app.published import Published, tally

    def change(tag: str, op: str, cause: str, at_ms: int) -> Any:
        return {"customer_id": "c", "tag": tag, "op": op, "cause": cause, "at_ms": at_ms}

    published = [Published(change("a", "add", "event", 5), 100), Published(change("b", "add", "event", 5), 100),
                 Published(change("a", "remove", "expiry", 7), None), Published(change("a", "add", "event", 9), 101),
                 Published(change("b", "remove", "expiry", 7), None), Published(change("a", "add", "event", 9), 101)]
    counts, from_events, from_clock = tally(published)
    assert counts == {("a", "add", "event"): 3, ("b", "add", "event"): 1, ("a", "remove", "expiry"): 1,
                      ("b", "remove", "expiry"): 1}
    assert from_events == {100: 2, 101: 2}
    assert from_clock == {7: 2}
    assert tally([]) == ({}, {}, {})
    assert tally(published[:2])[2] == {}
