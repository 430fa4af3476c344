"""EXPERIMENTAL, off by default (``TAGSTREAM_KAFKA__BATCH_DELIVERY=true`` turns it on): hand
records to the agents per fetched batch, not through four new asyncio tasks per record.

Status: it doubles what a consume-only Faust app reaches (benchmark column f: 13.9k -> 30.8k
events/s, 72 -> 33 CPU-us per event), but with it the SIGKILL and two-worker fault tests
(tests/integration/test_faults.py) failed in about half of the runs here — the restarted
worker stopped ingesting or ended with tags missing — while without it they passed every
time. A guard against batches delivered across a seek (below) did not cure it: with it on, the
fault tests still failed 1 run in 3. Until that is understood it stays off; do not enable it
where losing events matters.

faust's ``Consumer._drain_messages`` delivers every fetched record with
``await self.wait_first(callback(message), self.suspend_flow.wait())``, which wraps the
delivery, the suspend event and the service's stopped/crashed events in four new tasks, waits
on them with ``asyncio.wait`` and cancels the losers — per record. py-spy on a Faust app that
only consumes and decodes (``benchmarks/faust_floor.py``) put ``wait_first`` and the task
creation under it at about a third of the process's CPU.

The replacement below fetches a batch exactly as faust does (the fetch is never cancelled:
cancelling it could lose records the client already fetched — a first version of this patch
did that and the SIGKILL/rebalance integration tests caught it), then races the delivery of
the *whole batch* against the same events once. Records go to the same callback, in the same
order, with the same read-offset, gap and commit bookkeeping. When the flow is suspended (a
rebalance), the rest of the batch is skipped unacknowledged, exactly as faust skips it, so the
committed offset stays behind it and faust's seek after recovery reads it again. Commits
happen between records, outside the race, as they did.

``install()`` is idempotent and checks that the method it replaces is the one it was written
against (faust-streaming's, by qualified name), so an upgrade that changes it keeps faust's own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faust.transport import consumer as faust_consumer

log = logging.getLogger(__name__)

_DONE = "done"
_SEEKED = object()
"""Marks a partition whose read offset a seek changed under a batch: its remaining records are dropped."""
_COMMIT = "commit"


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - runs in faust's thread
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = faust_consumer.CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    sleep = asyncio.sleep
    yield_every = 100

    async def deliver(batch: list[Any], pos: list[int], expected: dict[Any, Any]) -> str:
        """Hands ``batch[pos[0]:]`` to the callback, advancing ``pos``; stops early when a
        commit is due (faust commits between records).

        ``expected`` holds each partition's read offset as this loop last left it. If it changed
        meanwhile, faust seeked (recovery, rebalance) while the batch waited: the rest of that
        partition's records predate the seek and are dropped untouched, so they can neither be
        delivered out of place nor move the read offset past records the seek will fetch again.
        """
        since_yield = 0
        while pos[0] < len(batch):
            if commit_every is not None and self._n_acked >= commit_every:
                return _COMMIT
            tp, message = batch[pos[0]]
            since_yield += 1
            if since_yield > yield_every:
                await sleep(0)
                since_yield = 0
            offset = message.offset
            r_offset = get_read_offset(tp)
            if r_offset != expected.get(tp, r_offset):
                expected[tp] = _SEEKED
                pos[0] += 1
                continue
            if r_offset is None or offset >= r_offset:
                gap = offset - (r_offset or 0)
                if gap > 1 and r_offset and acks_enabled_for(message.topic):
                    await self._add_gap(tp, r_offset + 1, offset)
                await callback(message)
                if get_read_offset(tp) == r_offset:  # else a seek came while the callback waited
                    set_read_offset(tp, offset)
                    expected[tp] = offset
                else:
                    expected[tp] = _SEEKED
            else:
                self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
            pos[0] += 1
        return _DONE

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = getmany(timeout=1.0)
            # Sleeping because sometimes getmany is called in a loop never releasing to the loop.
            await self.sleep(0)
            if not self.should_stop:
                # The fetch itself is never raced (cancelling it could drop fetched records).
                batch = [item async for item in ait]
                expected = {tp: get_read_offset(tp) for tp, _ in batch}
                pos = [0]
                while pos[0] < len(batch):
                    res = await self.wait_first(deliver(batch, pos, expected), self.suspend_flow.wait())
                    if res.stopped or _DONE in res.results:
                        break
                    if _COMMIT in res.results:
                        self._n_acked = 0
                        await self.commit()
                        continue
                    # Flow suspended (a rebalance): like faust, skip the rest of the batch without
                    # acking it, so commits stay behind it and the seek after recovery re-reads it.
                    for tp, message in batch[pos[0]:]:
                        r_offset = get_read_offset(tp)
                        if r_offset == expected.get(tp) and (r_offset is None or message.offset >= r_offset):
                            set_read_offset(tp, message.offset)
                            expected[tp] = message.offset
                    break
            unset_flag(flag_consumer_fetching)
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
        unset_flag(flag_consumer_fetching)


_ORIGINAL = faust_consumer.Consumer._drain_messages


def install() -> bool:
    """Replaces faust's per-record delivery with the per-batch one; True if it is in place."""
    current = faust_consumer.Consumer._drain_messages
    if current is _drain_messages:
        return True
    if current is not _ORIGINAL or _ORIGINAL.__qualname__ != "Consumer._drain_messages":
        log.warning("faust's Consumer._drain_messages is not the one this patch was written for; "
                    "keeping faust's own (slower per record)")
        return False
    faust_consumer.Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
    return True
