"""Fakes of the io contracts the ingest and customer stages use (no Kafka, no Redis), the
``metrics`` fixture, and the builders of a customer stage and of its input records: shared by
tests/unit/test_stages_*.py and the other stage tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.app.customer_contracts import Delivered, ExactlyOnce
from streams.app.customers import CustomerStage
from streams.app.envelope import decode_envelope
from streams.engine.clock import ManualClock
from streams.engine.due import DueIndex
from streams.engine.features.state import CustomerState
from streams.engine.native_engine import python_state
from streams.engine.reevaluation import Reevaluation
from streams.engine.tag_engine import TagEngine
from streams.io.deadletter import DeadLetterWriter
from streams.io.metrics import Metrics
from streams.io.redis_sink import RedisTagSink
from streams.io.tag_topic import TagTopicWriter
from streams.io.transactions import Fenced, OutRecord
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


class States(dict[bytes, Any]):
    """The store's states as the stage keeps them (``get``, ``items``: the core's native ones among
    them); a test reading ``data[key]`` gets the Python engine's ``CustomerState`` of it."""

    def __getitem__(self, key: bytes) -> CustomerState:
        state = python_state(super().__getitem__(key))
        assert state is not None
        return state


@dataclass
class DictStore:
    data: dict[bytes, CustomerState] = field(default_factory=lambda: States())
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


@pytest.fixture(name="metrics")
def metrics_fixture() -> Metrics:
    return Metrics.create(CollectorRegistry())


def customer_stage(tmp_path: Path, producer: FakeProducer, metrics: Metrics, store: DictStore,
                   group: Group, identity: Any = None, tag_engine: str = "auto") -> tuple[CustomerStage, FakeRedis]:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    redis = FakeRedis(producer)
    stage = CustomerStage(engine=TagEngine(load_rules(path)), clock=ManualClock(NOW), store=store, membership=group,
                          due=DueIndex(), redis=RedisTagSink(redis, prefix="p"),  # type: ignore[arg-type]
                          tag_topic=TagTopicWriter(producer, "tags"),
                          deadletter=DeadLetterWriter(producer, "dlq", metrics), metrics=metrics,
                          reevaluation=Reevaluation(2), identity=identity, tag_engine=tag_engine)
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


def kept_key(ev: Event) -> bytes:
    return str(decode_envelope(ev.message.value)[0]["customer_id"]).encode()


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


@pytest.fixture(params=["core", "python"], name="ingest_path")
def ingest_path_fixture(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs an ingest test through the Rust core (``native/``, which must be built) and through the
    Python path (``TAGSTREAM_CORE=off``): both must pass it."""
    from streams.app import ingest
    from streams.engine import native_core

    if request.param == "core":
        assert native_core.CORE is not None, native_core.CORE_REASON
    else:
        monkeypatch.setattr(ingest, "_CORE", None)
    return str(request.param)
