"""``faust_take_events.take_events``: batches by size or time, acknowledged after the caller is done, and
no polling while nothing comes (faust's own wakes up every ``within_s``: a tenth of a core idle at 1 ms)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from streams.app.faust_take_events import take_events


@dataclass
class _Message:
    offset: int
    generation_id: int = 1


@dataclass
class _Event:
    message: _Message


@dataclass
class _App:
    consumer_generation_id: int = 1


class _Channel:
    def __aiter__(self) -> _Channel:
        return self


@dataclass
class _Stream:
    """The part of faust's Stream that ``take_events`` uses: processors are called per record, as
    faust's passive iteration does; ``timed_waits`` counts the waits with a timeout."""

    app: _App = field(default_factory=_App)
    channel: _Channel = field(default_factory=_Channel)
    enable_acks: bool = True
    current_event: _Event | None = None
    should_stop: bool = False
    acked: list[int] = field(default_factory=list)
    timed_waits: int = 0
    _processors: list[Any] = field(default_factory=list)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def add_processor(self, fn: Any) -> None:
        self._processors.append(fn)

    def _enable_passive(self, channel_it: Any) -> None:
        pass

    async def feed(self, offset: int) -> None:
        self.current_event = _Event(_Message(offset))
        for fn in self._processors:
            await fn(offset)

    async def wait_for_stopped(self, event: asyncio.Event, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (faust's signature)
        self.timed_waits += timeout is not None
        waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self.stopped.wait())]
        _, pending = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for f in pending:
            f.cancel()
        return self.should_stop

    async def wait(self, event: asyncio.Event) -> None:
        await event.wait()

    async def ack(self, event: _Event) -> None:
        self.acked.append(event.message.offset)

    def stop(self) -> None:
        self.should_stop = True
        self.stopped.set()


async def _collect(stream: _Stream, max_: int, within_s: float, out: list[list[int]]) -> None:
    async for batch in take_events(stream, max_, within_s):
        out.append([e.message.offset for e in batch])


async def test_an_idle_stream_is_not_polled_and_a_batch_closes_within_s_after_its_first_event() -> None:
    stream = _Stream()
    batches: list[list[int]] = []
    task = asyncio.create_task(_collect(stream, 100, 0.001, batches))
    await asyncio.sleep(0.1)  # idle: faust's loop would have woken ~100 times
    assert stream.timed_waits == 0
    await stream.feed(1)
    await stream.feed(2)
    await asyncio.sleep(0.05)
    assert batches == [[1, 2]]
    assert stream.timed_waits >= 1
    waits_after_batch = stream.timed_waits
    await asyncio.sleep(0.05)  # idle again
    assert stream.timed_waits == waits_after_batch
    stream.stop()
    await asyncio.wait_for(task, 1)
    assert stream.acked == [1, 2]  # the caller asked for the next batch (or the stream stopped after it)


async def test_a_full_buffer_is_a_batch_at_once_and_acks_wait_for_the_caller() -> None:
    stream = _Stream()
    got: list[list[int]] = []
    release = asyncio.Event()

    async def consume() -> None:
        async for batch in take_events(stream, 3, 60.0):
            got.append([e.message.offset for e in batch])
            await release.wait()

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    async def feed_three() -> None:
        for i in range(3):
            await stream.feed(i)  # the third waits until the batch is taken, as faust's does

    feeding = asyncio.create_task(feed_three())
    await asyncio.sleep(0.05)
    assert got == [[0, 1, 2]]  # full: not the 60 s
    assert stream.acked == []  # the caller still holds it
    release.set()
    await feeding
    await stream.feed(3)
    await asyncio.sleep(0.01)
    assert stream.acked == [0, 1, 2]
    stream.stop()
    await asyncio.wait_for(task, 1)


async def test_a_stopped_idle_stream_ends_the_batches() -> None:
    stream = _Stream()
    batches: list[list[int]] = []
    task = asyncio.create_task(_collect(stream, 10, 0.001, batches))
    await asyncio.sleep(0.01)
    stream.stop()
    await asyncio.wait_for(task, 1)
    assert batches == [] and stream.acked == []


async def test_light_events_fill_a_batch_by_their_weight_up_to_a_cap() -> None:
    """The customer stage's small envelopes (identity's absorb orders, merge items) count as a share of
    ``max_``: two full envelopes and many light ones make one batch, not several."""
    from streams.app.faust_take_events import LIGHT_EVENTS_FACTOR

    stream = _Stream()
    got: list[list[int]] = []

    async def consume() -> None:
        async for batch in take_events(stream, 3, 60.0, lambda e: 1.0 if e.message.offset % 10 == 0 else 0.1):
            got.append([e.message.offset for e in batch])

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    for offset in (0, 1, 2, 3, 4, 10, 5, 6):  # weights 1 + 0.4 + 1 + 0.2 = 2.6: not full
        await stream.feed(offset)
    await asyncio.sleep(0.02)
    assert got == []
    feeding = asyncio.create_task(stream.feed(20))  # 3.6: full, at once (not the 60 s)
    await asyncio.sleep(0.02)
    assert got == [[0, 1, 2, 3, 4, 10, 5, 6, 20]]
    await feeding
    light = [o for o in range(31, 99) if o % 10][:3 * LIGHT_EVENTS_FACTOR - 1]  # one short of the cap
    for offset in light:
        await stream.feed(offset)
    await asyncio.sleep(0.02)
    assert len(got) == 1  # 1.1 of 3
    feeding = asyncio.create_task(stream.feed(99))  # the cap: 3 * LIGHT_EVENTS_FACTOR events
    await asyncio.sleep(0.02)
    assert got[1] == [*light, 99]
    await feeding
    stream.stop()
    await asyncio.wait_for(task, 1)


def test_an_envelope_weighs_its_share_of_a_full_one() -> None:
    from streams.app.envelope import FULL_ENVELOPE_BYTES, envelope_weight

    def weight(value: bytes | None) -> float:
        return envelope_weight(_Event(_MessageWithValue(0, value=value)))

    assert weight(b"x" * FULL_ENVELOPE_BYTES) == 1.0 == weight(b"x" * 100_000)
    assert weight(b"x" * (FULL_ENVELOPE_BYTES // 4)) == 0.25
    assert weight(None) == 1.0 == weight(b"")  # not an envelope: counted whole (the stage dead-letters it)


@dataclass
class _MessageWithValue(_Message):
    value: bytes | None = None


async def test_a_batch_waits_for_what_it_settles_on_before_it_is_acknowledged_the_next_one_does_not() -> None:
    """The customer stage sends a batch's changelog records and takes the next batch at once: the
    batch is acknowledged when they are, and not at all if they fail."""
    stream = _Stream()
    got: list[list[int]] = []
    saving: list[asyncio.Future[None]] = []

    def settled() -> asyncio.Future[None]:
        return saving[-1]

    async def consume() -> None:
        async for batch in take_events(stream, 2, 60.0, settled=settled):
            got.append([e.message.offset for e in batch])
            saving.append(asyncio.get_running_loop().create_future())

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    feeding = []
    for i in range(4):
        feeding.append(asyncio.create_task(stream.feed(i)))
        await asyncio.sleep(0.01)
    assert got == [[0, 1], [2, 3]]  # the second batch was taken while the first one's writes were out
    assert stream.acked == []
    saving[0].set_result(None)
    await asyncio.sleep(0)
    assert stream.acked == [0, 1]
    for i in (4, 5):
        feeding.append(asyncio.create_task(stream.feed(i)))
        await asyncio.sleep(0.01)
    saving[1].set_exception(RuntimeError("changelog write failed"))
    await asyncio.sleep(0)
    assert stream.acked == [0, 1]  # [2, 3] never: read again after the restart
    saving[2].set_result(None)
    stream.stop()
    await asyncio.wait_for(task, 1)
    assert stream.acked == [0, 1, 4, 5]
    await asyncio.gather(*feeding)
