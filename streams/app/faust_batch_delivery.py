"""EXPERIMENTAL (``TAGSTREAM_KAFKA__BATCH_DELIVERY``, off by default): faust's per-record delivery
replaced by a per-batch one (``faust_compat.install_batch_delivery``).

It doubled a consume-only Faust app (benchmark column f: 13.9k -> 30.8k events/s) but the SIGKILL
and two-worker fault tests failed in about half the runs with it; do not enable it where losing
events matters. Guarded like every faust internal: the method it replaces must have the source
fingerprint in ``faust_compat.FINGERPRINTS``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streams.app.faust_compat import FINGERPRINTS, log, source_fingerprint

_DONE = "done"
_SEEKED = object()
"""Marks a partition whose read offset a seek changed under a batch: its remaining records are dropped."""
_COMMIT = "commit"
_YIELD_EVERY = 100


async def _deliver(self: Any, batch: list[Any], pos: list[int], expected: dict[Any, Any]) -> str:  # pragma: no cover
    """Hands ``batch[pos[0]:]`` to the consumer's callback, advancing ``pos``; stops early when a
    commit is due (faust commits between records).

    ``expected`` holds each partition's read offset as the drain loop last left it. If it changed
    meanwhile, faust seeked (recovery, rebalance) while the batch waited: the rest of that
    partition's records predate the seek and are dropped untouched, so they can neither be
    delivered out of place nor move the read offset past records the seek will fetch again.
    """
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    commit_every = self._commit_every
    since_yield = 0
    while pos[0] < len(batch):
        if commit_every is not None and self._n_acked >= commit_every:
            return _COMMIT
        tp, message = batch[pos[0]]
        since_yield += 1
        if since_yield > _YIELD_EVERY:
            await asyncio.sleep(0)
            since_yield = 0
        offset = message.offset
        r_offset = get_read_offset(tp)
        if r_offset != expected.get(tp, r_offset):
            expected[tp] = _SEEKED
            pos[0] += 1
            continue
        if r_offset is None or offset >= r_offset:
            gap = offset - (r_offset or 0)
            if gap > 1 and r_offset and self.app.topics.acks_enabled_for(message.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            await self.callback(message)
            if get_read_offset(tp) == r_offset:  # else a seek came while the callback waited
                set_read_offset(tp, offset)
                expected[tp] = offset
            else:
                expected[tp] = _SEEKED
        else:
            self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
        pos[0] += 1
    return _DONE


async def _deliver_batch(self: Any, batch: list[Any]) -> None:  # pragma: no cover
    """Delivers one fetched batch, committing when due; on a flow suspension (a rebalance),
    skips the rest like faust does: unacked, so commits stay behind it and the seek after
    recovery re-reads it."""
    get_read_offset = self._read_offset.__getitem__
    expected = {tp: get_read_offset(tp) for tp, _ in batch}
    pos = [0]
    while pos[0] < len(batch):
        res = await self.wait_first(_deliver(self, batch, pos, expected), self.suspend_flow.wait())
        if res.stopped or _DONE in res.results:
            return
        if _COMMIT in res.results:
            self._n_acked = 0
            await self.commit()
            continue
        for tp, message in batch[pos[0]:]:
            r_offset = get_read_offset(tp)
            if r_offset == expected.get(tp) and (r_offset is None or message.offset >= r_offset):
                self._read_offset[tp] = message.offset
                expected[tp] = message.offset
        return


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - runs in faust's thread
    from faust.transport import consumer as faust_consumer

    flag_consumer_fetching = faust_consumer.CONSUMER_FETCHING
    try:
        while not (self._stopped.is_set() or fetcher._stopped.is_set()):
            self.diag.set_flag(flag_consumer_fetching)
            ait = self.getmany(timeout=1.0)
            # Sleeping because sometimes getmany is called in a loop never releasing to the loop.
            await self.sleep(0)
            if not self.should_stop:
                # The fetch itself is never raced (cancelling it could drop fetched records).
                await _deliver_batch(self, [item async for item in ait])
            self.diag.unset_flag(flag_consumer_fetching)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        self.diag.unset_flag(flag_consumer_fetching)


def install() -> bool:
    """EXPERIMENTAL. Replaces faust's per-record delivery with the per-batch one; True if it is in
    place. Refuses (False, with a warning) when faust's method is not the one it was written for."""
    from faust.transport import consumer as faust_consumer

    current = faust_consumer.Consumer._drain_messages
    if current is _drain_messages:
        return True
    name = "faust.transport.consumer.Consumer._drain_messages"
    if source_fingerprint(current) != FINGERPRINTS[name]:
        log.warning("faust's Consumer._drain_messages is not the one the batch-delivery patch was "
                    "written for; keeping faust's own (slower per record)")
        return False
    faust_consumer.Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
    return True
