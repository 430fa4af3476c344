"""A customer stage whose worker may have lost its partitions (a pause longer than its session):
an expired membership lease, or Redis' fence (a later owner's token), refuses the batch in flight,
which then writes nothing and is not acknowledged (fakes of the io contracts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams.app.customer_contracts import LeaseExpired
from streams.app.customers import CustomerStage
from streams.io.metrics import Metrics
from streams.io.redis_sink import Fence, RedisFenced

from .stages_support import (
    DictStore,
    Event,
    FakeProducer,
    FakeTransactions,
    Group,
    Record,
    customer_stage,
    envelope,
    exactly_once_stage,
    metrics_fixture,  # noqa: F401  (the fixture `metrics`)
)


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
