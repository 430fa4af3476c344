"""The partition progress watchdog: lag with a committed offset that does not move is a stall."""

from __future__ import annotations

import pytest
from intervaltree import IntervalTree

from streams.app.watchdog import Offsets, PartitionWatchdog

TP, OTHER = ("events.pos", 0), ("events.pos", 1)


def test_a_partition_that_keeps_committing_is_never_stalled() -> None:
    w = PartitionWatchdog(stall_after_s=10)
    for i in range(100):
        v = w.check({TP: Offsets(committed=i, highwater=1000)}, now_s=i)
        assert v.stalled == [] and v.lag[TP] == 1000 - i


def test_no_lag_is_no_stall_however_long_the_offset_stands() -> None:
    w = PartitionWatchdog(stall_after_s=10)
    for t in range(0, 100, 5):
        assert w.check({TP: Offsets(committed=50, highwater=50)}, now_s=t).stalled == []


def test_lag_with_a_standing_offset_is_a_stall_after_the_period_and_recovers_once_a_period() -> None:
    w = PartitionWatchdog(stall_after_s=10)
    stuck = {TP: Offsets(committed=50, highwater=80), OTHER: Offsets(committed=None, highwater=0)}
    assert w.check(stuck, now_s=0).stalled == []
    assert w.check(stuck, now_s=9.9).stalled == []
    v = w.check(stuck, now_s=10)
    assert (v.stalled, v.recover, v.lag[TP]) == ([TP], [TP], 30)
    v = w.check(stuck, now_s=15)
    assert (v.stalled, v.recover) == ([TP], [])  # the seek gets a period to work
    assert w.check(stuck, now_s=20).recover == [TP]
    v = w.check({TP: Offsets(committed=51, highwater=80)}, now_s=21)  # it moved
    assert v.stalled == [] and v.recover == []


def test_a_partition_never_committed_with_records_waiting_stalls_too() -> None:
    w = PartitionWatchdog(stall_after_s=5)
    waiting = {TP: Offsets(committed=None, highwater=7)}
    w.check(waiting, now_s=0)
    assert w.check(waiting, now_s=5).stalled == [TP]


def test_revoked_partitions_are_forgotten_and_reset_starts_over() -> None:
    w = PartitionWatchdog(stall_after_s=5)
    stuck = {TP: Offsets(committed=1, highwater=9)}
    w.check(stuck, now_s=0)
    w.check({}, now_s=1)  # revoked
    assert w.check(stuck, now_s=5).stalled == []  # assigned again: a new period
    w.reset()
    assert w.check(stuck, now_s=9).stalled == []


def test_the_period_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PartitionWatchdog(stall_after_s=0)


class FakeTP(tuple[str, int]):
    @property
    def topic(self) -> str:
        return self[0]

    @property
    def partition(self) -> int:
        return self[1]


class FakeConsumer:
    """What PartitionWatch reads of faust's consumer; a partition that never moves."""

    @property
    def consumer(self) -> FakeConsumer:  # FaustOffsets reads ``app.consumer``: the fake is both
        return self

    def __init__(self) -> None:
        self.tps = [FakeTP(("in", 0)), FakeTP(("in", 1)), FakeTP(("some-changelog", 0))]
        self._committed_offset = {self.tps[0]: 10, self.tps[1]: 5, self.tps[2]: 0}
        self.seeks: list[tuple[FakeTP, int]] = []
        self.resumed: set[FakeTP] = set()
        self._acked: dict[FakeTP, list[int]] = {tp: [] for tp in self.tps}
        """faust's acknowledged offsets per partition (read when a hole is sought back)."""

    def assignment(self) -> set[FakeTP]:
        return set(self.tps)

    async def highwaters(self, *tps: FakeTP) -> dict[FakeTP, int]:
        return {tp: 20 if tp.partition == 0 else 5 for tp in tps}

    async def seek(self, tp: FakeTP, offset: int) -> None:
        self.seeks.append((tp, offset))

    def resume_partitions(self, tps: set[FakeTP]) -> None:
        self.resumed.update(tps)


async def test_partition_watch_reports_and_seeks_a_stalled_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import CollectorRegistry

    from streams.app import timers
    from streams.app.timers import FaustOffsets, PartitionWatch
    from streams.io.health import Health
    from streams.io.metrics import Metrics

    now = [1000.0]
    monkeypatch.setattr(timers.time, "monotonic", lambda: now[0])
    consumer, health, metrics = FakeConsumer(), Health(recovered=True), Metrics.create(CollectorRegistry())
    watch = PartitionWatch(name="faust", source=FaustOffsets(consumer), topics=["in"], watchdog=PartitionWatchdog(30),
                           health=health, metrics=metrics)
    await watch.check()
    assert health.ready()[0] and consumer.seeks == []
    now[0] += 30
    await watch.check()
    assert consumer.seeks == [(consumer.tps[0], 10)]  # in[0]: 10 records waiting; in[1] is caught up
    ok, detail = health.ready()
    assert not ok and detail["stalled_partitions"] == ["in[0]"]
    assert metrics.partition_stalled.labels("in", "0")._value.get() == 1
    assert metrics.partition_lag.labels("in", "0")._value.get() == 10
    consumer._committed_offset[consumer.tps[0]] = 20  # it moved and caught up
    now[0] += 5
    await watch.check()
    assert health.ready()[0] and metrics.partition_stalled.labels("in", "0")._value.get() == 0


async def test_partition_watch_drops_the_lag_of_a_revoked_partition() -> None:
    from prometheus_client import CollectorRegistry

    from streams.app.timers import FaustOffsets, PartitionWatch
    from streams.io.health import Health
    from streams.io.metrics import Metrics

    consumer, registry = FakeConsumer(), CollectorRegistry()
    metrics = Metrics.create(registry)
    watch = PartitionWatch(name="faust", source=FaustOffsets(consumer), topics=["in"], watchdog=PartitionWatchdog(30),
                           health=Health(recovered=True), metrics=metrics)
    await watch.check()
    lag = {s.labels["partition"]: s.value for m in registry.collect() if m.name == "tagstream_partition_lag"
           for s in m.samples}
    assert lag == {"0": 10, "1": 0}
    consumer.tps.remove(FakeTP(("in", 1)))  # revoked: another worker owns it now
    await watch.check()
    lag = {s.labels["partition"]: s.value for m in registry.collect() if m.name == "tagstream_partition_lag"
           for s in m.samples}
    assert lag == {"0": 10}


async def test_a_stalled_partition_never_committed_is_sought_to_its_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A partition the group never committed (a worker that never got to it) was left stalled for
    good: the seek was skipped for a committed offset of None (seen in a two-worker fault run)."""
    from prometheus_client import CollectorRegistry

    from streams.app import timers
    from streams.app.timers import FaustOffsets, PartitionWatch
    from streams.io.health import Health
    from streams.io.metrics import Metrics

    now = [1000.0]
    monkeypatch.setattr(timers.time, "monotonic", lambda: now[0])
    consumer = FakeConsumer()
    del consumer._committed_offset[consumer.tps[0]]  # in[0]: 20 records, never committed
    watch = PartitionWatch(name="faust", source=FaustOffsets(consumer), topics=["in"], watchdog=PartitionWatchdog(30),
                           health=Health(recovered=True), metrics=Metrics.create(CollectorRegistry()))
    await watch.check()
    now[0] += 30
    await watch.check()
    assert consumer.seeks == [(consumer.tps[0], 0)]
    assert consumer.resumed == {consumer.tps[0]}  # and faust delivers its records again


def test_a_hole_is_recovered_after_its_own_shorter_period() -> None:
    wd = PartitionWatchdog(stall_after_s=30, hole_after_s=5)
    tp = ("in", 0)
    assert wd.check({tp: Offsets(10, 50, hole_since_s=100.0)}, 103.0).recover == []
    v = wd.check({tp: Offsets(10, 50, hole_since_s=100.0)}, 105.0)
    assert v.stalled == [tp] and v.recover == [tp]
    assert wd.check({tp: Offsets(10, 50, hole_since_s=100.0)}, 107.0).recover == []  # once a period
    assert wd.check({tp: Offsets(10, 50, hole_since_s=100.0)}, 110.0).recover == [tp]
    assert wd.check({tp: Offsets(20, 50)}, 111.0).stalled == []  # the re-read filled it: it commits again


async def test_partition_watch_seeks_a_partition_with_a_hole_back_to_the_hole(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import CollectorRegistry

    from streams.app import timers
    from streams.app.faust_commits import Hole, StrictCommits
    from streams.app.timers import FaustOffsets, PartitionWatch
    from streams.io.health import Health
    from streams.io.metrics import Metrics

    now = [1000.0]
    monkeypatch.setattr(timers.time, "monotonic", lambda: now[0])
    consumer, strict, metrics = FakeConsumer(), StrictCommits(), Metrics.create(CollectorRegistry())
    strict.start = dict.fromkeys(consumer.tps, 0)
    strict.holes[consumer.tps[0]] = Hole(10, 14, 1000.0)  # 10..13 dropped, 14.. acknowledged
    consumer._acked[consumer.tps[0]] = [14, 15]
    watch = PartitionWatch(name="faust", source=FaustOffsets(consumer, strict), topics=["in"],
                           watchdog=PartitionWatchdog(30), health=Health(recovered=True), metrics=metrics)
    await watch.check()
    assert consumer.seeks == []
    now[0] += 5
    await watch.check()
    assert consumer.seeks == [(consumer.tps[0], 10)]
    assert [o for o in range(10, 17) if strict.read_again(consumer.tps[0], o)] == [14, 15]  # passed by
    assert metrics.offset_holes.labels("in", "unacked")._value.get() == 1


async def test_partition_watch_accepts_a_hole_that_keeps_coming_back_as_a_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import CollectorRegistry

    from streams.app import timers
    from streams.app.faust_commits import StrictCommits
    from streams.app.timers import FaustOffsets, PartitionWatch
    from streams.io.health import Health
    from streams.io.metrics import Metrics

    now = [1000.0]
    monkeypatch.setattr(timers.time, "monotonic", lambda: now[0])
    consumer, strict, metrics = FakeConsumer(), StrictCommits(), Metrics.create(CollectorRegistry())
    tp = consumer.tps[0]
    consumer._acked, consumer._acked_index = {tp: [11, 12]}, {tp: {11, 12}}  # type: ignore[attr-defined]
    consumer._gap = {tp: IntervalTree()}  # type: ignore[attr-defined]
    assert not strict.judge(consumer, tp)  # committed 10: 10 is missing
    watch = PartitionWatch(name="faust", source=FaustOffsets(consumer, strict), topics=["in"],
                           watchdog=PartitionWatchdog(30), health=Health(recovered=True), metrics=metrics)
    for _ in range(3):
        now[0] += 5
        await watch.check()
        strict.judge(consumer, tp)
    assert consumer.seeks == [(tp, 10), (tp, 10)]
    assert metrics.offset_holes.labels("in", "gap")._value.get() == 1
    assert strict.judge(consumer, tp)
