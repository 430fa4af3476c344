"""Faust commits an offset only when every record before it was acknowledged (faust_commits.py)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

import pytest
from faust.transport.consumer import Consumer
from intervaltree import IntervalTree

from streams.app import faust_commits
from streams.app.faust_commits import StrictCommits, covered, head_hole


def test_covered_by_intervals() -> None:
    t = IntervalTree()
    t[3:5] = True
    t[5:8] = True
    assert covered(t, 3, 8)
    assert covered(t, 4, 6)
    assert not covered(t, 2, 8)  # 2 is outside
    assert not covered(t, 3, 9)
    assert covered(t, 5, 5)  # an empty range


@pytest.mark.parametrize(("acked", "committed", "start", "hole"), [
    ([], None, None, None),
    ([0, 1, 2], None, 0, None),              # from the partition's first offset
    ([5, 6], None, 0, (0, 5)),               # nothing committed: 0..4 never acknowledged
    ([10, 11], 10, 0, None),                 # from the committed offset
    ([11, 12], 10, 0, (10, 11)),             # faust's "> 1" let this run through: 10 was never acked
    ([12], 10, 0, (10, 12)),
    ([3, 4], None, 3, None),                 # retention removed 0..2: the first offset is 3
    ([3, 4], None, None, (-1, -1)),          # first offset not known yet: wait
])
def test_head_hole(acked: list[int], committed: int | None, start: int | None, hole: tuple[int, int] | None) -> None:
    assert head_hole(acked, committed, start, IntervalTree()) == hole


def test_a_known_gap_is_no_hole() -> None:
    gaps = IntervalTree()
    gaps[10:12] = True  # faust's real gap (transaction markers): 10 and 11 will never come
    assert head_hole([12, 13], 10, 0, gaps) is None
    assert head_hole([13], 10, 0, gaps) == (10, 13)


class _TP(tuple[str, int]):
    @property
    def topic(self) -> str:
        return self[0]

    @property
    def partition(self) -> int:
        return self[1]


class _Consumer:
    """The attributes of faust's Consumer that ``_new_offset`` reads."""

    def __init__(self) -> None:
        self._acked: dict[Any, list[int]] = defaultdict(list)
        self._acked_index: dict[Any, set[int]] = defaultdict(set)
        self._gap: dict[Any, IntervalTree] = defaultdict(IntervalTree)
        self._committed_offset: dict[Any, int | None] = defaultdict(lambda: None)

    def ack(self, tp: Any, *offsets: int) -> None:
        for o in offsets:
            self._acked[tp].append(o)
            self._acked_index[tp].add(o)


class _Signal:
    def __init__(self) -> None:
        self.receivers: list[Any] = []

    def connect(self, fn: Any) -> Any:
        self.receivers.append(fn)
        return fn


class _App:
    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.on_partitions_revoked = _Signal()
        self.on_partitions_assigned = _Signal()


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> tuple[_App, StrictCommits]:
    monkeypatch.setattr(Consumer, "_new_offset", Consumer._new_offset)  # undone after the test
    monkeypatch.setattr(Consumer, "perform_seek", Consumer.perform_seek)
    consumer = _Consumer()

    async def earliest_offsets(*tps: Any) -> dict[Any, int]:
        return dict.fromkeys(tps, 0)

    consumer.earliest_offsets = earliest_offsets  # type: ignore[attr-defined]
    app = _App(consumer)
    return app, faust_commits.install(app)


async def test_faust_commits_past_an_unacked_record_without_the_guard() -> None:
    """What the guard is for: faust's own check, on a partition never committed and one whose
    committed offset is one before the acknowledged run."""
    c, tp = cast(Any, _Consumer()), cast(Any, _TP(("in", 0)))
    c.ack(tp, 5, 6, 7)
    assert Consumer._new_offset(c, tp) == 8  # 0..4 were never acknowledged
    c, tp = cast(Any, _Consumer()), cast(Any, _TP(("in", 0)))
    c._committed_offset[tp] = 10
    c.ack(tp, 11, 12)
    assert Consumer._new_offset(c, tp) == 13  # 10 was never acknowledged


async def test_the_guard_commits_only_a_run_from_the_committed_offset(installed: tuple[_App, StrictCommits]) -> None:
    app, strict = installed
    tp: Any = _TP(("in", 0))
    c = app.consumer
    c._tagstream_strict = strict
    c.ack(tp, 0)
    assert Consumer._new_offset(c, tp) is None  # the partition's first offset is not known yet
    for receiver in app.on_partitions_assigned.receivers:
        await receiver(app, {tp})
    assert strict.reading is not None
    await strict.reading  # read beside the rebalance
    assert strict.start == {tp: 0}
    c._acked[tp].clear()
    c._acked_index[tp].clear()
    c.ack(tp, 5, 6, 7)
    assert Consumer._new_offset(c, tp) is None
    assert (strict.holes[tp].start, strict.holes[tp].first_acked) == (0, 5)
    c.ack(tp, 0, 1, 2, 3, 4)  # the re-read came
    assert Consumer._new_offset(c, tp) == 8
    assert tp not in strict.holes
    c._committed_offset[tp] = 8
    c.ack(tp, 9)
    assert Consumer._new_offset(c, tp) is None  # 8 is missing
    c.ack(tp, 8)
    assert Consumer._new_offset(c, tp) == 10
    for receiver in app.on_partitions_revoked.receivers:
        await receiver(app, {tp})
    assert strict.start == {} and strict.holes == {}


async def test_a_hole_keeps_the_time_it_was_first_seen(installed: tuple[_App, StrictCommits],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    app, strict = installed
    tp: Any = _TP(("in", 0))
    now = [100.0]
    monkeypatch.setattr(faust_commits.time, "monotonic", lambda: now[0])
    strict.start[tp] = 0
    app.consumer._tagstream_strict = strict
    app.consumer.ack(tp, 5)
    assert Consumer._new_offset(app.consumer, tp) is None
    now[0] = 130.0
    assert Consumer._new_offset(app.consumer, tp) is None
    assert strict.holes[tp].since_s == 100.0


async def test_first_offsets_that_cannot_be_read_are_asked_again() -> None:
    strict, tp = StrictCommits(), _TP(("in", 0))
    calls = []

    class Flaky:
        async def earliest_offsets(self, *tps: Any) -> dict[Any, int]:
            calls.append(tps)
            if len(calls) == 1:
                raise OSError("broker away")
            return dict.fromkeys(tps, 7)

    await strict.learn_starts(Flaky(), [tp])
    assert strict.start == {}
    await strict.learn_starts(Flaky(), [tp])
    assert strict.start == {tp: 7}
    await strict.learn_starts(Flaky(), [tp])
    assert len(calls) == 2  # known: not asked again


def test_a_hole_that_comes_back_after_two_rereads_becomes_a_gap() -> None:
    """A transaction marker right at the committed offset is never delivered and faust keeps no
    gap for it: the same hole after two re-reads is accepted, and commits go on."""
    strict, c, tp = StrictCommits(), cast(Any, _Consumer()), _TP(("in", 0))
    c._tagstream_strict = strict
    c._committed_offset[tp] = 10
    c.ack(tp, 11, 12)
    assert not strict.judge(c, tp)
    assert strict.next_step(c, tp) == 10
    assert not strict.judge(c, tp)
    assert strict.next_step(c, tp) == 10
    assert not strict.judge(c, tp)
    assert strict.next_step(c, tp) is None  # the third time: a gap
    assert strict.judge(c, tp)
    assert tp not in strict.holes


def test_a_hole_that_changes_is_read_again() -> None:
    strict, c, tp = StrictCommits(), cast(Any, _Consumer()), _TP(("in", 0))
    c._committed_offset[tp] = 10
    c.ack(tp, 14)
    strict.judge(c, tp)
    assert strict.next_step(c, tp) == 10
    assert strict.next_step(c, tp) == 10
    c.ack(tp, 12, 13)  # records came again: the hole is smaller now, a new one
    strict.judge(c, tp)
    assert strict.next_step(c, tp) == 10


def test_a_reread_names_the_records_acknowledged_past_the_hole() -> None:
    """What the seek back to a hole brings again although it was acknowledged (processed and
    saved) is passed by, not processed twice; a rebalance or an accepted gap forgets it."""
    strict, c, tp = StrictCommits(), cast(Any, _Consumer()), _TP(("in", 0))
    c._committed_offset[tp] = 10
    c.ack(tp, 13, 14, 16)
    strict.judge(c, tp)
    assert not strict.read_again(tp, 13)  # nothing sought back yet
    assert strict.next_step(c, tp) == 10
    assert [o for o in range(10, 18) if strict.read_again(tp, o)] == [13, 14, 16]
    assert not strict.read_again(_TP(("in", 1)), 13)
    strict.forget([tp])
    assert not strict.read_again(tp, 13)
    strict.judge(c, tp)
    assert strict.next_step(c, tp) == 10
    assert strict.next_step(c, tp) == 10
    assert strict.read_again(tp, 14)
    assert strict.next_step(c, tp) is None  # the same hole a third time: a gap
    assert not strict.read_again(tp, 14)


async def test_after_faust_seeks_to_committed_offsets_a_partition_never_committed_goes_to_its_start(
        installed: tuple[_App, StrictCommits]) -> None:
    """faust's seek after a rebalance (aiokafka's ``seek_to_committed``) leaves a partition with no
    committed offset where its fetch was, past the records the rebalance dropped: it is sent to
    its first offset. Committed partitions and other topics (changelogs) are left to faust."""
    app, _ = installed
    strict = faust_commits.install(app, frozenset({"cust"}))
    c: Any = app.consumer
    c._tagstream_strict = strict
    never, committed, changelog = _TP(("cust", 0)), _TP(("cust", 1)), _TP(("cust-changelog", 0))
    c._committed_offset[committed] = 40
    c._read_offset = {}
    seeks: list[tuple[Any, int]] = []

    async def seek_to_committed() -> dict[Any, int | None]:
        return {never: None, committed: 40, changelog: None}

    async def seek(tp: Any, offset: int) -> None:
        seeks.append((tp, offset))

    c.assignment = lambda: {never, committed, changelog}
    c.seek_to_committed = seek_to_committed
    c.seek = seek
    await Consumer.perform_seek(c)
    assert seeks == [(never, 0)]
    assert c._read_offset[committed] == 40  # faust's own part ran first
