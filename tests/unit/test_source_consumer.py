"""The source consumer's bookkeeping with a fake aiokafka consumer: a batch is committed at
exactly the offsets processed, only after the ingest stage returned; a refused commit leaves
the batch to the next owner; never-committed partitions start where the old Faust group left."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from streams.app.source_consumer import SourceConsumer
from streams.io.health import Health

A, B = TopicPartition("events.pos", 0), TopicPartition("events.pos", 1)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    timestamp: int = 1_800_000_000_000
    key: bytes | None = None
    value: bytes | None = b"{}"


class FakeStage:
    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int, int, float]]] = []
        self.gate: asyncio.Event | None = None

    async def process(self, records: list[Any]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.batches.append([(r.topic, r.partition, r.offset, r.timestamp) for r in records])


class FakeConsumer:
    def __init__(self, committed: dict[TopicPartition, int] | None = None) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.refuse = False
        self.seeks: list[tuple[TopicPartition, int]] = []
        self._committed = committed or {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.refuse:
            raise CommitFailedError("rebalanced")
        self.commits.append(dict(offsets))

    async def committed(self, tp: TopicPartition) -> int | None:
        return self._committed.get(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def source_consumer(stage: FakeStage) -> SourceConsumer:
    async def crash(exc: BaseException) -> None:
        raise AssertionError(exc)

    return SourceConsumer(bootstrap_servers="127.0.0.1:1", client_options={}, group_id="app-ingest",
                          legacy_group_id="app", topics=["events.pos"], stage=stage,  # type: ignore[arg-type]
                          batch_max=100, fetch_max_bytes=1 << 20, session_timeout_ms=10_000, health=Health(),
                          on_crash=crash)


async def test_a_batch_is_committed_at_the_offsets_processed_after_the_stage() -> None:
    stage, consumer = FakeStage(), FakeConsumer()
    sc = source_consumer(stage)
    batch = {A: [Rec("events.pos", 0, 5), Rec("events.pos", 0, 6)], B: [Rec("events.pos", 1, 9)]}
    await sc._process(consumer, batch)
    assert stage.batches == [[("events.pos", 0, 5, 1_800_000_000.0), ("events.pos", 0, 6, 1_800_000_000.0),
                              ("events.pos", 1, 9, 1_800_000_000.0)]]
    assert consumer.commits == [{A: 7, B: 10}]
    assert sc.committed_offset(A) == 7 and sc.committed_offset(B) == 10


async def test_a_revoke_waits_for_the_batch_in_flight_and_its_commit() -> None:
    stage, consumer = FakeStage(), FakeConsumer()
    stage.gate = asyncio.Event()
    sc = source_consumer(stage)
    running = asyncio.create_task(sc._process(consumer, {A: [Rec("events.pos", 0, 1)]}))
    await asyncio.sleep(0)
    revoke = asyncio.create_task(sc.on_revoked([A]))
    await asyncio.sleep(0.01)
    assert not revoke.done() and consumer.commits == []
    stage.gate.set()
    await asyncio.gather(running, revoke)
    assert consumer.commits == [{A: 2}]
    assert sc.committed_offset(A) is None  # no longer ours


async def test_a_refused_commit_leaves_the_batch_to_the_next_owner() -> None:
    stage, consumer = FakeStage(), FakeConsumer()
    consumer.refuse = True
    sc = source_consumer(stage)
    await sc._process(consumer, {A: [Rec("events.pos", 0, 3)]})
    assert len(stage.batches) == 1 and sc.committed_offset(A) is None


async def test_new_partitions_start_where_the_old_faust_group_left_them(monkeypatch: pytest.MonkeyPatch) -> None:
    sc = source_consumer(FakeStage())
    consumer = FakeConsumer(committed={B: 40})  # the new group already has B
    sc._consumer = consumer

    async def legacy(tp: TopicPartition) -> int | None:
        return {A: 17, B: 3}.get(tp)

    monkeypatch.setattr(sc, "_legacy_offset", legacy)
    await sc.on_assigned([A, B, TopicPartition("events.pos", 2)])
    assert consumer.seeks == [(A, 17)]  # B keeps its own offset; partition 2 was never read: earliest


async def test_records_fetched_while_the_assignment_moved_their_partition_are_read_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetch that began before on_assigned moved a partition returns records the batch must not
    process (they may be stale); the fetch already moved the position past them, so the partition is
    put back where the assignment moved it, and nothing is committed for it (found in CI: an upgrade
    lost the records of the first batch)."""
    stage = FakeStage()
    sc = source_consumer(stage)
    consumer = FakeConsumer()
    sc._consumer = consumer

    async def legacy(tp: TopicPartition) -> int | None:
        return {A: 17}.get(tp)

    monkeypatch.setattr(sc, "_legacy_offset", legacy)
    mark = sc._seeks  # the fetch starts
    await sc.on_assigned([A])  # the rebalance moves A while it runs
    await sc._process(consumer, {A: [Rec("events.pos", 0, 17), Rec("events.pos", 0, 18)],
                                 B: [Rec("events.pos", 1, 4)]}, mark)
    assert consumer.seeks == [(A, 17), (A, 17)]  # the assignment's seek, and the one after the dropped fetch
    assert stage.batches == [[("events.pos", 1, 4, 1_800_000_000.0)]] and consumer.commits == [{B: 5}]


class ScriptedConsumer(FakeConsumer):
    """getmany hands out the scripted batches, noting when each was asked for; then the loop is cancelled."""

    def __init__(self, script: list[dict[TopicPartition, list[Rec]]]) -> None:
        super().__init__()
        self.script = script
        self.asked: list[float] = []
        self.reads: list[tuple[int, int]] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Rec]]:
        self.asked.append(asyncio.get_running_loop().time())
        self.reads.append((timeout_ms, max_records))
        if not self.script:
            raise asyncio.CancelledError
        return self.script.pop(0)

    async def stop(self) -> None:
        pass


async def run_scripted(sc: SourceConsumer, consumer: ScriptedConsumer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs ``sc`` on ``consumer`` until its script ends (the loop is cancelled)."""
    async def start() -> ScriptedConsumer:
        sc._consumer = consumer
        return consumer

    monkeypatch.setattr(sc, "_start", start)
    with pytest.raises(asyncio.CancelledError):
        await sc.run()


def gathering_consumer(stage: FakeStage, gather_ms: int, batch_max: int = 1000, producer: Any = None) -> SourceConsumer:
    async def crash(exc: BaseException) -> None:
        raise AssertionError(exc)

    return SourceConsumer(bootstrap_servers="127.0.0.1:1", client_options={}, group_id="app-ingest",
                          legacy_group_id="app", topics=["events.pos"], stage=stage,  # type: ignore[arg-type]
                          batch_max=batch_max, fetch_max_bytes=1 << 20, gather_ms=gather_ms, session_timeout_ms=10_000,
                          health=Health(), on_crash=crash, producer=producer)


async def test_a_full_batch_is_a_backlog_and_the_next_read_comes_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of ``batch_max`` records means more are waiting: no gather wait after it (a drain was
    held at 1,000 records per 30 ms once ingest took ~10 ms per 1,000), while a large but not full
    one still gathers."""
    from streams.app.source_consumer import GATHER_FROM

    stage = FakeStage()
    sc = gathering_consumer(stage, gather_ms=200, batch_max=GATHER_FROM + 1)
    full = {A: [Rec("events.pos", 0, i) for i in range(GATHER_FROM + 1)]}
    large = {A: [Rec("events.pos", 0, GATHER_FROM + 1 + i) for i in range(GATHER_FROM)]}
    consumer = ScriptedConsumer([full, full, large, {}, {}])

    await run_scripted(sc, consumer, monkeypatch)
    gaps = [b - a for a, b in zip(consumer.asked, consumer.asked[1:], strict=False)]
    assert gaps[0] < 0.1 and gaps[1] < 0.1  # after full batches: at once
    assert gaps[2] >= 0.19  # after a large one: it gathers


class FakeProducer:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def start(self) -> None:
        self.log.append("producer started")

    async def stop(self) -> None:
        self.log.append("producer stopped")


async def test_ingests_producer_starts_before_its_consumer_and_stops_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Envelopes can be sent as soon as records are read, and what was sent is flushed after the
    consumer left the group (the batch in flight is not committed: its next owner reads it again)."""
    import streams.app.source_consumer as source_consumer_module

    log: list[str] = []

    class LoggedConsumer(ScriptedConsumer):
        async def start(self) -> None:
            log.append("consumer started")

        def subscribe(self, topics: Any, listener: Any) -> None:
            pass

        async def stop(self) -> None:
            log.append("consumer stopped")

    monkeypatch.setattr(source_consumer_module, "AIOKafkaConsumer", lambda **kw: LoggedConsumer([]))
    sc = gathering_consumer(FakeStage(), gather_ms=0, producer=FakeProducer(log))
    with pytest.raises(asyncio.CancelledError):
        await sc.run()
    assert log == ["producer started", "consumer started", "consumer stopped", "producer stopped"]


async def test_a_full_batch_makes_the_next_one_gather_and_a_small_one_does_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At a steady high rate reading as fast as possible took ~50 records per cycle (a fetch, envelopes
    and a commit each); a batch of at least GATHER_FROM records makes the next read wait up to gather_ms."""
    from streams.app.source_consumer import GATHER_FROM

    stage = FakeStage()
    sc = gathering_consumer(stage, gather_ms=200)
    big = {A: [Rec("events.pos", 0, i) for i in range(GATHER_FROM)]}
    small = {A: [Rec("events.pos", 0, GATHER_FROM + i) for i in range(GATHER_FROM - 1)]}
    consumer = ScriptedConsumer([small, big, {}, small])  # after the wait: nothing held, then `small` arrives

    await run_scripted(sc, consumer, monkeypatch)
    gaps = [b - a for a, b in zip(consumer.asked, consumer.asked[1:], strict=False)]
    assert gaps[0] < 0.1  # after a small batch: at once
    assert gaps[1] >= 0.19  # after a full one: 200 ms after it started
    assert gaps[2] < 0.1 and gaps[3] < 0.1
    assert [len(b) for b in stage.batches] == [GATHER_FROM - 1, GATHER_FROM, GATHER_FROM - 1]
    assert len(consumer.commits) == 3  # every batch committed, gathered or not


async def test_after_a_gather_wait_a_second_read_takes_what_arrived_during_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """aiokafka's fetcher does not fetch a partition while it holds records of it: after a gather
    wait what it holds was fetched just after the last read. The first read frees it, a second one
    (FRESH_WAIT_MS at most) brings what arrived meanwhile, into the same batch, in offset order."""
    from streams.app.source_consumer import FRESH_WAIT_MS, GATHER_FROM

    stage = FakeStage()
    sc = gathering_consumer(stage, gather_ms=50)
    big = {A: [Rec("events.pos", 0, i) for i in range(GATHER_FROM)]}
    held = {A: [Rec("events.pos", 0, GATHER_FROM)], B: [Rec("events.pos", 1, 0)]}
    fresh = {A: [Rec("events.pos", 0, GATHER_FROM + 1 + i) for i in range(3)]}
    after = {B: [Rec("events.pos", 1, 1)]}
    consumer = ScriptedConsumer([big, held, fresh, after])

    await run_scripted(sc, consumer, monkeypatch)
    assert consumer.reads[2] == (FRESH_WAIT_MS, 1000 - 2)  # the second read, for what is left of the batch
    assert consumer.reads[3][0] != FRESH_WAIT_MS  # a small batch: no wait, one read
    assert [b[-1][2] for b in stage.batches] == [GATHER_FROM - 1, 0, 1]
    assert [(p, o) for _, p, o, _ in stage.batches[1]] == [
        (0, GATHER_FROM), (0, GATHER_FROM + 1), (0, GATHER_FROM + 2), (0, GATHER_FROM + 3), (1, 0)]
    assert consumer.commits[1] == {A: GATHER_FROM + 4, B: 1}
