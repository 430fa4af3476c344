"""faust's ``Stream.take_events``, copied, acknowledging a batch only after the agent finished with it.

faust's own acks the whole in-flight batch in a ``finally``, also when the generator is closed under
a running batch (graceful stop, an agent restarted on revoke): the consumer then commits offsets
whose records never reached the state (faust-streaming #527/#604). Abandoned batches are left
unacked here and re-read. Records of an old consumer generation are not acked either: faust seeks
back and re-delivers them. A batch may also wait for what its processing left on its way (the
customer stage's changelog writes: ``settled``) while the next batch is taken. The faust source it
was copied from is fingerprinted in ``faust_compat.FINGERPRINTS``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import Any

log = logging.getLogger(__name__)

LIGHT_EVENTS_FACTOR = 4
"""A batch of light events (``take_events``'s ``weight``) holds at most this many times ``max_``."""


async def take_events(stream: Any, max_: int, within_s: float,
                      weight: Callable[[Any], float] | None = None,
                      settled: Callable[[], asyncio.Future[Any] | None] | None = None
                      ) -> AsyncIterator[Sequence[Any]]:
    """Batches of up to ``max_`` events (or what came within ``within_s``), like faust's
    ``Stream.take_events``, acknowledged only once the caller asks for the next batch.

    ``weight``: how much of ``max_`` an event fills (default 1; the customer stage counts small
    envelopes as a fraction, ``envelope.envelope_weight``); a batch holds at most
    ``LIGHT_EVENTS_FACTOR * max_`` events whatever their weight.

    ``settled``: called when the caller finished a batch, what the batch's acknowledgement must
    still wait for (the customer stage: its changelog writes); the batch is then acknowledged
    when that succeeds (not at all when it fails), while the next batch is already taken.

    Copied from faust-streaming 0.15.3 (fingerprint in FINGERPRINTS) with three changes: no ack
    when the generator is closed or an exception is thrown in while the caller holds the batch,
    no ack for records of an older consumer generation (faust re-delivers those), and no polling
    while the buffer is empty: faust wakes up every ``within_s`` to look at an empty buffer (at 1 ms,
    a tenth of a core for an idle worker); here the ``within_s`` starts with the first event.
    """
    buf = _TakeBuffer(stream, max_, weight)
    stream_enable_acks: bool = stream.enable_acks
    channel_it = stream.channel.__aiter__()
    stream.enable_acks = False  # acks are ours: only for batches the caller finished
    stream.add_processor(buf.add)
    stream._enable_passive(channel_it)
    try:
        while not stream.should_stop:
            if not buf.values:
                await stream.wait_for_stopped(buf.started)
                continue
            await stream.wait_for_stopped(buf.full, timeout=within_s)
            if not buf.values:
                continue
            buf.consuming = asyncio.get_running_loop().create_future()
            finished = False
            try:
                yield list(buf.events)
                finished = True
            finally:
                batch = buf.taken()
                if finished:
                    _ack_when_settled(stream, batch, settled)
    finally:
        stream.enable_acks = stream_enable_acks
        stream._processors.remove(buf.add)


class _TakeBuffer:
    """The batch being filled: the stream's processor (``add``) appends, ``take_events`` takes."""

    def __init__(self, stream: Any, max_: int, weight: Callable[[Any], float] | None) -> None:
        self.stream = stream
        self.max = max_
        self.most = max_ * LIGHT_EVENTS_FACTOR
        self.weight = weight
        self.values: list[Any] = []
        self.events: list[Any] = []
        self.filled = 0.0
        self.full = asyncio.Event()
        self.started = asyncio.Event()
        self.consumed = asyncio.Event()
        self.consuming: asyncio.Future[None] | None = None
        """Set while the caller holds a batch: ``add`` waits for it before the next one starts."""

    async def add(self, value: Any) -> Any:
        stream = self.stream
        try:
            if self.consuming is not None:
                try:
                    await self.consuming
                finally:
                    self.consuming = None
            self.values.append(value)
            self.started.set()
            event = stream.current_event
            if event is None:
                raise RuntimeError("take buffer found current_event is None")
            self.events.append(event)
            self.filled += 1.0 if self.weight is None else self.weight(event)
            if self.filled >= self.max or len(self.values) >= self.most:
                self.full.set()
                self.consumed.clear()
                await stream.wait(self.consumed)
        except asyncio.CancelledError:  # pragma: no cover
            raise
        except Exception as exc:
            log.exception("error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    def taken(self) -> list[Any]:
        """The caller is done with the batch (or abandoned it): its events, and the buffer emptied."""
        from mode.utils.futures import notify

        batch = list(self.events)
        self.values.clear()
        self.events.clear()
        self.filled = 0.0
        notify(self.consuming)
        self.full.clear()
        self.started.clear()
        self.consumed.set()
        return batch


def _ack_when_settled(stream: Any, batch: list[Any],
                      settled: Callable[[], asyncio.Future[Any] | None] | None) -> None:
    """Acknowledges a finished batch now, or when what it still waits for (``settled()``) is done:
    before whatever awaits that after this."""
    pending = settled() if settled is not None else None
    if pending is None or pending.done():
        _ack_settled(stream, batch, pending)
    else:
        pending.add_done_callback(partial(_ack_settled, stream, batch))


def _ack_settled(stream: Any, batch: list[Any], settled: asyncio.Future[Any] | None) -> None:
    """Acknowledges the events of a finished batch once what it waited for succeeded, except those
    of an older consumer generation (faust re-delivers them). A done callback: faust's
    ``Stream.ack`` has no await in it, so it is run to its end here, synchronously."""
    if settled is not None and (settled.cancelled() or settled.exception() is not None):
        return  # not acknowledged: read again after the restart the failure leads to
    generation = stream.app.consumer_generation_id
    for event in batch:
        if event.message.generation_id == generation:
            _run_sync(stream.ack(event))


def _run_sync(coro: Any) -> Any:
    """The result of a coroutine that never suspends (faust's ``Stream.ack``)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("faust's Stream.ack suspended: acknowledging from a callback needs a task now")
