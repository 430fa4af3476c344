"""The customer stage's batches overlapping (fakes of the io contracts): the next batch runs while
the last one's changelog writes are out, a failed write fails it before it saves, and quiesce waits
for the batch in flight (or gives up on a stuck one)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from streams.io.metrics import Metrics

from .stages_support import (
    DictStore,
    FakeProducer,
    Group,
    customer_stage,
    envelope,
    metrics_fixture,  # noqa: F401  (the fixture `metrics`)
)


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
