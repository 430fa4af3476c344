"""The identity stage with fakes (streams/app/identity_stage.py): links -> absorb orders (sent before
the table is written), aliases, refusals dead-lettered with the source position, recovery by version,
a replayed batch deciding the same merge ids, erasure."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.app.envelope import EnvelopeSender, decode_envelope
from streams.app.identity_stage import ERASED_PREFIX, IdentityStage
from streams.engine.identity.graph import GraphLimits
from streams.io.deadletter import DeadLetterWriter
from streams.io.metrics import Metrics
from streams.io.redis_sink import Fence, RedisFenced
from tests.unit.stages_support import NOW, Event, FakeProducer, Record

CUSTOMERS = "app-customer-events"


@dataclass
class Table:
    data: dict[bytes, bytes] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    producer: FakeProducer | None = None

    def put(self, key: bytes, value: bytes, record: Any) -> None:
        self.data[key] = value
        self.log.append(f"put {key.decode()} after {len(self.producer.sent) if self.producer else 0} sends")

    def delete(self, key: bytes, record: Any) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterable[tuple[bytes, object]]:
        return list(self.data.items())

    async def flush(self) -> None:
        return None


@dataclass
class Aliases:
    data: dict[str, str] = field(default_factory=dict)
    fences: list[Fence | None] = field(default_factory=list)
    later_owner: int = 0
    """A later owner's fence token in "Redis": a write with an earlier one raises, as ``AliasWriter``'s."""

    async def write(self, aliases: Mapping[str, str | None], fence: Fence | None = None) -> None:
        self.fences.append(fence)
        if fence is not None and fence.token < self.later_owner:
            raise RedisFenced(f"links partition 0 was written by a later owner ({self.later_owner} > {fence.token})")
        for k, v in aliases.items():
            if v is None:
                self.data.pop(k, None)
            else:
                self.data[k] = v


@dataclass
class Lease:
    expired: bool = False
    token: int = 1_000
    generation_id: int = 1

    def generation(self) -> int:
        return self.generation_id

    def lease_expired(self) -> bool:
        return self.expired

    def fence_token(self) -> int:
        return self.token


def stage(table: Table | None = None, limits: GraphLimits | None = None,
          lease: Lease | None = None) -> tuple[IdentityStage, FakeProducer, Table, Aliases]:
    producer = FakeProducer()
    table = table or Table()
    table.producer = producer
    aliases = Aliases()
    metrics = Metrics.create(CollectorRegistry())
    s = IdentityStage(limits=limits or GraphLimits(), store=table, partitions=4,
                      orders=EnvelopeSender(producer, CUSTOMERS), aliases=aliases,
                      deadletter=DeadLetterWriter(producer, "dlq", metrics), metrics=metrics, clock=lambda: NOW,
                      lease=lease)
    return s, producer, table, aliases


def links(*items: dict[str, Any], offset: int = 0) -> list[Event]:
    return [Event(Record(orjson.dumps(list(items)), topic="app-identity-links", offset=offset))]


def link(link_id: str, *ids: str, ts: int = NOW, src: tuple[str, int, int] = ("events.clickstream", 1, 7)) -> dict[
        str, Any]:
    return {"link_id": link_id, "ids": list(ids), "ts_ms": ts, "source": "clickstream", "src": list(src)}


def orders(producer: FakeProducer) -> list[dict[str, Any]]:
    return [item for _, _, value, _, _ in producer.on(CUSTOMERS) for item in decode_envelope(value)]


def test_a_link_sends_absorb_orders_before_the_table_is_written_and_sets_aliases() -> None:
    s, producer, table, aliases = stage()
    asyncio.run(s.process(links(link("l1", "user:u-1", "anonymous:a-1"), link("l2", "member:m-1", "user:u-1",
                                                                               ts=NOW + 1))))
    got = orders(producer)
    assert [(o["customer_id"], o["absorb"]["into"]) for o in got] == [("anonymous:a-1", "user:u-1"),
                                                                       ("user:u-1", "member:m-1")]
    assert all(line.endswith(f"after {len(producer.sent)} sends") for line in table.log)
    assert aliases.data == {"anonymous:a-1": "member:m-1", "user:u-1": "member:m-1"}
    assert set(table.data) == {b"member:m-1"}  # user:u-1's record was written then deleted
    # the same link again changes nothing and sends nothing
    before = len(producer.sent)
    asyncio.run(s.process(links(link("l3", "anonymous:a-1", "member:m-1"), offset=1)))
    assert len(producer.sent) == before


def test_a_link_over_a_cap_is_dead_lettered_with_the_source_position_and_changes_nothing() -> None:
    s, producer, _, _ = stage(limits=GraphLimits(per_type={"user": 2}))
    kiosk = "anonymous:kiosk-1"
    asyncio.run(s.process(links(link("k1", kiosk, "user:u-1"), link("k2", kiosk, "user:u-2"),
                                link("k3", kiosk, "user:u-3", src=("events.clickstream", 0, 42)))))
    dead = producer.on("dlq")
    assert len(dead) == 1
    headers = dict(dead[0][4])
    assert headers["ts.reason"] == b"too_many_user" and headers["ts.source_offset"] == b"42"
    assert orjson.loads(dead[0][2] or b"{}")["link_id"] == "k3"
    assert s.graph.resolve("user:u-3") == "user:u-3"


def test_recovery_and_a_replayed_batch_decide_the_same_merge_ids() -> None:
    batch = links(link("l1", "user:u-1", "anonymous:a-1"), link("l2", "member:m-1", "email_sha256:" + "e" * 64))
    s, producer, table, _ = stage()
    asyncio.run(s.process(batch))
    first = orders(producer)
    # a crash after the orders, before the table: the next owner starts from the old table
    s2, producer2, _, _ = stage(Table())
    s2.recover()
    asyncio.run(s2.process(batch))
    assert orders(producer2) == first
    # after the table: the graph is restored and the replay changes nothing
    s3, producer3, _, _ = stage(Table(dict(table.data)))
    s3.recover()
    assert s3.graph.resolve("anonymous:a-1") == "user:u-1"
    asyncio.run(s3.process(batch))
    assert orders(producer3) == []


def test_forget_erases_every_id_of_the_cluster_and_refuses_links_naming_them() -> None:
    s, producer, table, aliases = stage()
    asyncio.run(s.process(links(link("l1", "user:u-1", "anonymous:a-1"), link("l2", "member:m-1", "user:u-1"))))
    asyncio.run(s.process(links({"link_id": "forget:1", "forget": "anonymous:a-1", "ids": ["anonymous:a-1"],
                                 "ts_ms": NOW}, offset=1)))
    erase = [o for o in orders(producer) if "erase" in o]
    assert sorted(o["customer_id"] for o in erase) == ["anonymous:a-1", "member:m-1", "user:u-1"]
    assert aliases.data == {} and b"member:m-1" not in table.data
    assert {k for k in table.data if k.startswith(ERASED_PREFIX)} == {ERASED_PREFIX + k.encode() for k in
                                                                      ("anonymous:a-1", "member:m-1", "user:u-1")}
    asyncio.run(s.process(links(link("l9", "user:u-9", "anonymous:a-1"), offset=2)))
    assert dict(producer.on("dlq")[-1][4])["ts.reason"] == b"erased"
    s2, _, _, _ = stage(Table(dict(table.data)))
    s2.recover()
    assert set(s2.erased) == {"anonymous:a-1", "member:m-1", "user:u-1"}


@pytest.mark.parametrize("why", ["lease expired", "fenced by a later owner"])
def test_a_paused_worker_s_batch_writes_nothing_is_not_acknowledged_and_is_decided_again(why: str) -> None:
    """A worker paused past its session (docs/operations.md, *A paused worker*): its batch writes no
    alias, sends no order and leaves the table as it was; ``settled`` fails (the batch is not
    acknowledged) and the graph is the table's again, so that the batch read again decides the same."""
    first = links(link("l1", "user:u-1", "anonymous:a-1"))
    batch = links(link("l2", "member:m-1", "user:u-1"), offset=1)
    lease = Lease()
    s, producer, table, aliases = stage(lease=lease)
    asyncio.run(s.process(first))
    assert s.settled() is None and aliases.fences == [Fence(1_000, frozenset({0}))]
    sent, stored, aliased = len(producer.sent), dict(table.data), dict(aliases.data)
    if why == "lease expired":
        lease.expired = True
    else:
        aliases.later_owner = 2_000

    async def refused() -> BaseException | None:
        await s.process(batch)
        settled = s.settled()
        assert settled is not None and settled.done()
        return settled.exception()

    exc = asyncio.run(refused())
    assert type(exc).__name__ == ("LeaseExpired" if why == "lease expired" else "RedisFenced")
    assert len(producer.sent) == sent and table.data == stored and aliases.data == aliased
    assert s.graph.resolve("user:u-1") == "user:u-1" and s.graph.resolve("member:m-1") == "member:m-1"
    assert s.metrics.identity_batches_refused._value.get() == 1
    # the worker comes back (or the partition's next owner, from the same table): the same merge
    lease.expired, aliases.later_owner = False, 0
    asyncio.run(s.process(batch))
    assert s.settled() is None
    assert [(o["customer_id"], o["absorb"]["into"]) for o in orders(producer)[-1:]] == [("user:u-1", "member:m-1")]
    assert aliases.data == {"anonymous:a-1": "member:m-1", "user:u-1": "member:m-1"}


def test_records_of_an_old_consumer_generation_are_left_to_be_delivered_again() -> None:
    """Fetched before a rebalance that completed since: not decided here (nor written with the new
    membership's fence token), not acknowledged; faust delivers them again."""
    lease = Lease(generation_id=2)
    s, producer, table, aliases = stage(lease=lease)
    asyncio.run(s.process(links(link("l1", "user:u-1", "anonymous:a-1"))))  # generation 1
    assert orders(producer) == [] and table.data == {} and aliases.fences == []
    assert s.graph.resolve("anonymous:a-1") == "anonymous:a-1"
    lease.generation_id = 1
    asyncio.run(s.process(links(link("l1", "user:u-1", "anonymous:a-1"))))
    assert [o["customer_id"] for o in orders(producer)] == ["anonymous:a-1"]


def test_an_absorbed_id_that_becomes_canonical_again_loses_its_alias() -> None:
    """An older link makes an absorbed id the oldest member (canonical order: type, then first seen):
    it becomes the survivor, and its alias goes (an id with no alias key is its own customer)."""
    s, _, _, aliases = stage()
    asyncio.run(s.process(links(link("l1", "member:m-1", "member:m-2"))))
    assert aliases.data == {"member:m-2": "member:m-1"}
    asyncio.run(s.process(links(link("l2", "member:m-2", "anonymous:z-1", ts=NOW - 1000), offset=1)))
    assert s.graph.resolve("member:m-1") == "member:m-2"
    assert aliases.data == {"member:m-1": "member:m-2", "anonymous:z-1": "member:m-2"}


@pytest.mark.parametrize("merges_too", [True, False])
def test_a_refused_batch_dead_letters_its_refused_links_once_when_read_again(merges_too: bool) -> None:
    """A paused worker's batch writes no dead-letter record either: the batch read again refuses the
    same link and dead-letters it then, so it is in the topic once (also a batch of refusals only)."""
    lease = Lease()
    s, producer, _, _ = stage(limits=GraphLimits(per_type={"user": 1}), lease=lease)
    asyncio.run(s.process(links(link("k1", "anonymous:kiosk-1", "user:u-1"))))
    batch = links(*([link("m1", "member:m-1", "user:u-9")] if merges_too else []),
                  link("k2", "anonymous:kiosk-1", "user:u-2"), offset=1)
    lease.expired = True
    asyncio.run(s.process(batch))
    settled = s.settled()
    assert settled is not None and type(settled.exception()).__name__ == "LeaseExpired"
    assert producer.on("dlq") == []
    lease.expired = False
    asyncio.run(s.process(batch))
    assert s.settled() is None
    assert [orjson.loads(value or b"{}")["link_id"] for _, _, value, _, _ in producer.on("dlq")] == ["k2"]
