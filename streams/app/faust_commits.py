"""Faust commits an offset only when every record before it was acknowledged.

faust's ``Consumer._new_offset`` picks the offset to commit from the acknowledged offsets of a
partition: the end of their first run of consecutive numbers. It checks that this run starts at
the committed offset in a way that lets records through: not at all while the partition has no
committed offset (``if committed_offset:`` — None, and 0, skip the check), and off by one
otherwise (``min(acked) - committed > 1``: a run starting one past the committed offset is
accepted although the record *at* the committed offset was never acknowledged).

A record is left unacknowledged when faust drops it on its way to the agent — during a
rebalance ``_drain_messages`` cancels the delivery of the record in hand and still moves its
read offset past it, and agent queues are cleared — and the worker relies on re-reading it from
the committed offset. The fault tests caught both checks letting such a drop through: a
two-worker run committed ``orders[1]`` at 185 although records 95..167 were never delivered (the
partition had no committed offset yet), and another committed ``customer-events[0]`` past a
record that never reached any state (events of three customers lost).

``install`` replaces the check: a partition's acknowledged run must start exactly at its
committed offset, or at the partition's first offset when nothing is committed yet (read right
after the assignment), unless faust knows the offsets in between to be a real gap
(compaction, transaction markers: its ``_gap`` tree). Otherwise nothing is committed and the
partition is reported as having a *hole* (``holes``); the partition watchdog
(``watchdog.py``) then seeks it back to the hole's start, so the dropped records come again
(records re-read twice count once, by event id). A hole that is still the same after two
re-reads has nothing in it (a transaction marker right at the committed offset, which faust
does not record as a gap) and becomes a gap.

The seek brings back everything from the hole on, also the records acknowledged after it — by
then, after the 5 s a hole waits, the rest of a partition drained at full speed (two workers
starting on a backlog: 50,000-80,000 of 600,000 events processed twice). ``read_again`` names
those: acknowledged means processed and saved (the customer stage acknowledges a batch only once
its changelog records are), so the stage passes them by instead of processing them again.

Most holes came from a seek that never happened: after a rebalance faust seeks every partition to
its committed offset, and aiokafka skips a partition whose committed offset is not above 0 — one
never committed keeps fetching past what the rebalance dropped. ``install`` sends those to their
first offset after faust's seek (``seek_uncommitted``): two workers starting on a backlog left a
hole in 7 of 13 runs before, 1 of 6 after.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

REREADS = 2
"""Re-reads of one hole before it counts as a gap (nothing at those offsets)."""


@dataclass(frozen=True)
class Hole:
    """Records ``start``..``first_acked - 1`` of a partition are unacknowledged while later ones are."""

    start: int
    first_acked: int
    since_s: float
    """``time.monotonic()`` when this hole was first seen."""


def covered(gaps: Iterable[Any], start: int, end: int) -> bool:
    """True if the intervals ``gaps`` (``.begin``/``.end``, end exclusive) cover [start, end)."""
    pos = start
    for iv in sorted(gaps, key=lambda iv: iv.begin):
        if iv.end <= pos:
            continue
        if iv.begin > pos:
            return False
        pos = iv.end
        if pos >= end:
            return True
    return pos >= end


def head_hole(acked: list[int], committed: int | None, start: int | None,
              gaps: Iterable[Any]) -> tuple[int, int] | None:
    """(first unacknowledged, first acknowledged) when the acknowledged offsets do not start
    where the partition's progress stands: at ``committed`` (the next offset to read), or at
    ``start`` (the partition's first offset) when nothing is committed. ``(-1, -1)`` when the
    start is not known yet (nothing may be committed then either). None: no hole."""
    if not acked:
        return None
    base = committed if committed is not None else start
    if base is None:
        return (-1, -1)
    first = min(acked)
    if first <= base or covered(gaps, base, first):
        return None
    return (base, first)


class StrictCommits:
    """Per worker consumer: the partitions' first offsets and the holes seen at commit time."""

    def __init__(self) -> None:
        self.start: dict[Any, int] = {}
        self.holes: dict[Any, Hole] = {}
        self._rereads: dict[Any, tuple[tuple[int, int], int]] = {}
        self._done: dict[Any, frozenset[int]] = {}
        """Per partition sought back to a hole, the offsets acknowledged past it at the seek."""
        self.reading: asyncio.Future[None] | None = None
        """The read of the first offsets started at the last assignment."""

    def judge(self, consumer: Any, tp: Any) -> bool:
        """True if faust may compute the offset to commit for ``tp``."""
        hole = head_hole(consumer._acked[tp], consumer._committed_offset[tp], self.start.get(tp),
                         consumer._gap[tp])
        if hole is None:
            self.holes.pop(tp, None)
            return True
        if hole == (-1, -1):
            return False
        known = self.holes.get(tp)
        if known is None or (known.start, known.first_acked) != hole:
            if known is None:
                log.warning("%s[%d]: records %d..%d are unacknowledged but later ones are (dropped on their way "
                            "to the agent): not committing past them", tp.topic, tp.partition, hole[0], hole[1] - 1)
            self.holes[tp] = Hole(hole[0], hole[1], known.since_s if known else time.monotonic())
        return False

    def next_step(self, consumer: Any, tp: Any) -> int | None:
        """How to fill the hole of ``tp``: the offset to read it again from, or None when the very
        same hole already came back after ``REREADS`` re-reads — nothing is there to be read
        (transaction markers of a transactional producer upstream, compaction; faust keeps no
        gap for a marker right at the committed offset) — and it is recorded as a gap in faust's
        bookkeeping, so commits go on."""
        hole = self.holes.get(tp)
        if hole is None:
            return None
        key = (hole.start, hole.first_acked)
        last_key, count = self._rereads.get(tp, (key, 0))
        count = count + 1 if last_key == key else 1
        if count <= REREADS:
            self._rereads[tp] = (key, count)
            self._done[tp] = frozenset(o for o in consumer._acked[tp] if o >= hole.first_acked)
            return hole.start
        log.warning("%s[%d]: records %d..%d did not come after %d re-reads: nothing there (transaction markers "
                    "or compaction upstream); accepted as a gap", tp.topic, tp.partition, hole.start,
                    hole.first_acked - 1, REREADS)
        consumer._gap[tp].addi(hole.start, hole.first_acked)
        consumer._gap[tp].merge_overlaps()
        self._rereads.pop(tp, None)
        self.holes.pop(tp, None)
        self._done.pop(tp, None)
        return None

    def read_again(self, tp: Any, offset: int) -> bool:
        """True for a record of ``tp`` that a hole's re-read brings again although it was
        acknowledged before the seek (processed, its states saved): not to be processed twice."""
        done = self._done.get(tp)
        return done is not None and offset in done

    async def seek_uncommitted(self, consumer: Any, topics: frozenset[str]) -> None:
        """After faust's seek of every assigned partition to its committed offset: the partitions of
        ``topics`` with no committed offset go to their first offset (the group's reset policy).

        faust relies on that seek to bring back what a rebalance dropped on its way to the agent,
        but aiokafka's ``seek_to_committed`` leaves a partition alone unless its committed offset
        is above 0, so one never committed kept its fetch position past the dropped records: a
        hole, filled only by the watchdog's re-read 5 s later (every start of a group on a
        backlog)."""
        tps = [tp for tp in consumer.assignment()
               if tp.topic in topics and consumer._committed_offset.get(tp) is None]
        if not tps:
            return
        await self.learn_starts(consumer, tps)
        for tp in tps:
            start = self.start.get(tp)
            if start is not None:  # else the watchdog's re-read still fills a hole
                log.info("%s[%d]: nothing committed yet: reading from its first offset %d",
                         tp.topic, tp.partition, start)
                await consumer.seek(tp, start)

    def forget(self, tps: Iterable[Any]) -> None:
        for tp in tps:
            self.start.pop(tp, None)
            self.holes.pop(tp, None)
            self._rereads.pop(tp, None)
            self._done.pop(tp, None)

    async def learn_starts(self, consumer: Any, tps: Iterable[Any]) -> None:
        """Reads the first offset of the partitions in ``tps`` not known yet."""
        missing = [tp for tp in tps if tp not in self.start]
        if not missing:
            return
        try:
            starts = await consumer.earliest_offsets(*missing)
        except Exception as exc:  # the watchdog asks again on its next check
            log.warning("could not read the first offsets of %d partitions (%s: %s); their first commit waits",
                        len(missing), type(exc).__name__, exc)
            return
        for tp, offset in starts.items():
            if offset is not None:
                self.start[tp] = int(offset)


def install(app: Any, topics: frozenset[str] = frozenset()) -> StrictCommits:
    """Puts the strict check in front of faust's ``Consumer._new_offset`` for ``app``'s consumer,
    keeps the partitions' first offsets up to date on rebalances, and after faust's seek to the
    committed offsets sends the partitions of ``topics`` never committed to their first offset
    (``StrictCommits.seek_uncommitted``)."""
    from faust.transport.consumer import Consumer

    strict = StrictCommits()
    real = getattr(Consumer._new_offset, "_tagstream_original", Consumer._new_offset)

    def _new_offset(self: Any, tp: Any) -> int | None:
        guard: StrictCommits | None = getattr(self, "_tagstream_strict", None)
        if guard is not None and not guard.judge(self, tp):
            return None
        result: int | None = real(self, tp)
        return result

    _new_offset._tagstream_original = real  # type: ignore[attr-defined]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]

    real_seek = getattr(Consumer.perform_seek, "_tagstream_original", Consumer.perform_seek)

    async def perform_seek(self: Any) -> None:
        await real_seek(self)
        guard: StrictCommits | None = getattr(self, "_tagstream_strict", None)
        if guard is not None and topics:
            await guard.seek_uncommitted(self, topics)

    perform_seek._tagstream_original = real_seek  # type: ignore[attr-defined]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]

    @app.on_partitions_revoked.connect
    async def _revoked(*args: Any, **kwargs: Any) -> None:  # (sender, revoked)
        strict.forget(args[1])

    @app.on_partitions_assigned.connect
    async def _assigned(*args: Any, **kwargs: Any) -> None:  # (sender, assigned)
        app.consumer._tagstream_strict = strict
        # read the first offsets beside the rebalance, not in it (a request here delays it, and a
        # stop cancelled it with a traceback); until they are known, a partition never committed
        # commits nothing. The partition watch (``timers.FaustOffsets``) asks again for any missed.
        strict.reading = asyncio.ensure_future(strict.learn_starts(app.consumer, args[1]))

    return strict
