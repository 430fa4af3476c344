"""Watching a worker drain a backlog: the drain rule (``watch_drain``), what a drain cost
(``Drain``) and the changelog's end offsets it polls (``EndOffsets``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.tools.prom import done_count, progress_url, total

from .log import log
from .metrics import Samples, try_scrape
from .processes import Proc, ProcGroup


@dataclass
class Drain:
    """How a worker drained a backlog of ``events`` source events."""

    events: int
    startup_s: float = 0.0
    """Process start -> first event read."""
    t_first: float = 0.0
    seen_at_first: float = 0.0
    t_ingest_done: float = 0.0
    """First poll at which ingest had read every event (diagnostic only: not the end)."""
    t_done: float = 0.0
    """First poll at which the second stage was done with every event (see ``watch_drain``)."""
    t_last: float = 0.0
    cpu_first: float = 0.0
    cpu_last: float = 0.0
    vm_hwm_bytes: int = 0
    changelog_records: int = 0
    ok: bool = False
    partial: bool = False
    """The budget ran out before the backlog was drained: the figures cover ``events`` read so far."""
    trace: list[tuple[float, float, float, int]] = field(default_factory=list)
    """(t, events read, events done, changelog end offset) per poll."""

    @property
    def seconds(self) -> float:
        return max(1e-9, self.t_last - self.t_first)

    @property
    def events_per_s(self) -> float:
        return (self.events - self.seen_at_first) / self.seconds

    @property
    def cpu_s_per_million(self) -> float:
        return (self.cpu_last - self.cpu_first) / max(1, self.events - self.seen_at_first) * 1e6

    @property
    def cpu_utilisation(self) -> float:
        return (self.cpu_last - self.cpu_first) / self.seconds


class EndOffsets:
    """Sum of the end offsets of a topic (all partitions), polled cheaply."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []

    async def total(self) -> int | None:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
            await self._consumer.start()
        if not self._tps:
            await self._consumer._client.force_metadata_update()
            parts = self._consumer.partitions_for_topic(self.topic)
            if not parts:
                return None
            self._tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        offsets = await self._consumer.end_offsets(self._tps)
        return sum(offsets.values())

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


def baseline_done(samples: Samples) -> float:
    """Events the baseline app (column b) is done with: it has one agent, which counts an event
    when it starts on it; the changelog-quiet half of the drain rule covers the last one."""
    return total(samples, "baseline_events_in_total")



async def watch_drain(proc: Proc | ProcGroup, *, metrics_url: str | list[str], counter: str, changelog: str,
                      bootstrap: str, events: int, done: Callable[[Samples], float] = done_count,
                      base_seen: float = 0.0, base_done: float = 0.0, timeout_s: float = 1800, poll_s: float = 0.5,
                      stable_s: float = 2.5, budget_s: float | None = None, label: str = "",
                      progress_only: bool = False) -> Drain:
    """Polls the worker until it is done with ``events`` more source events; returns when and at
    what cost.

    The drain rule: drained when (1) ``done(scrape) - base_done >= events`` — by default
    :func:`streams.tools.prom.done_count`, i.e. ``tagstream_events_processed_total`` (folded into
    customer state by the second stage) + ``_anonymous_total`` + ``_invalid_total`` (set aside by
    ingest), so every produced event, valid or not, counts once when the worker is through with it —
    and (2) the state changelog has not grown for ``stable_s`` after that (a batch's states are saved
    after its events are counted). The drain ends (``t_last``) at the later of the first poll that saw
    (1) and the changelog's last growth; the rate and CPU figures run from ``t_first`` to there.
    Ingest having read every event (``counter``) is NOT the end: the customer stage can lag far
    behind it (a run once ended with 16 of ~9,900 customers in state and reported ingest's rate).

    ``t_first`` is the first poll that saw events read; the events already read by then are
    left out of the rate (``seen_at_first``), so poll granularity does not inflate it.
    With ``budget_s``, a drain still running that long after ``t_first`` is cut short: the result
    then covers the events done so far (``partial``).

    ``progress_only`` (a tagstream worker): each poll asks for ``PROGRESS_METRICS`` only. A full
    scrape every 0.5 s cost the worker 14 % of its CPU with 1,000 tags (rendering ~5,000 per-tag
    series, under the GIL), which the benchmark then booked as the cost of the tags.
    """
    if progress_only:
        metrics_url = progress_url(metrics_url) if isinstance(metrics_url, str) else [
            progress_url(u) for u in metrics_url]
    watch = _DrainWatch(Drain(events), proc, EndOffsets(bootstrap, changelog), label)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited ({proc.proc.returncode if proc.proc else '?'}):\n"
                                   f"{proc.tail()}")
            # In a thread: a load generator may share this event loop (``latency_phase``), and a
            # scrape blocking it would hold back records it has already timestamped.
            s = await asyncio.to_thread(try_scrape, metrics_url)
            now, cpu = time.time(), proc.cpu_seconds()
            if s is None:
                await asyncio.sleep(poll_s)
                continue
            seen, finished = total(s, counter) - base_seen, done(s) - base_done
            end = await watch.observe(now, cpu, seen, finished)
            watch.log_progress(now, cpu, seen, finished, end)
            if budget_s is not None and watch.over_budget(now, budget_s):
                return watch.cut_short(now, cpu, finished, budget_s)
            if watch.settled(now, stable_s):
                return watch.drained()
            await asyncio.sleep(poll_s)
        raise TimeoutError(f"{label}: not drained after {timeout_s}s")
    finally:
        await watch.offsets.close()


class _DrainWatch:
    """What ``watch_drain`` knows between polls: the ``Drain`` being filled in, the changelog's last
    end offset and when it last grew, and the poll that first saw every event done."""

    def __init__(self, d: Drain, proc: Proc | ProcGroup, offsets: EndOffsets, label: str) -> None:
        self.d, self.proc, self.offsets, self.label = d, proc, offsets, label
        self.t_start = time.time()
        self.last_print = 0.0
        self.last_end: int | None = None
        self.last_growth: tuple[float, float] | None = None
        """(time, cpu) of the poll that last saw the changelog grow."""
        self.at_done: tuple[float, float] | None = None
        """(time, cpu) of the first poll that saw every event done: (1) of the drain rule."""

    async def observe(self, now: float, cpu: float, seen: float, finished: float) -> int | None:
        """Books one poll (events read ``seen``, done ``finished``); returns the changelog's end
        offset, polled once events are being read (``None`` before, or while it has no partitions)."""
        d = self.d
        if d.t_first == 0.0 and seen > 0:
            d.t_first, d.cpu_first, d.seen_at_first = now, cpu, seen
            d.startup_s = now - self.t_start
        end = await self.offsets.total() if d.t_first else None
        if end is not None and end != self.last_end:
            self.last_end, self.last_growth = end, (now, cpu)
        d.trace.append((round(now - self.t_start, 3), seen, finished, end or 0))
        if seen >= d.events and not d.t_ingest_done:
            d.t_ingest_done = now
        if finished >= d.events and self.at_done is None:
            d.t_done, self.at_done = now, (now, cpu)
        return end

    def log_progress(self, now: float, cpu: float, seen: float, finished: float, end: int | None) -> None:
        """A progress line every 2 s at most."""
        d = self.d
        if now - self.last_print >= 2.0:
            rate = (finished - d.seen_at_first) / max(1e-9, now - d.t_first) if d.t_first else 0.0
            log(f"{self.label}: {seen:,.0f}/{d.events:,} events read, {finished:,.0f} done ({rate:,.0f}/s), "
                f"state changelog +{(end or 0):,} records, cpu {cpu:.1f}s")
            self.last_print = now

    def over_budget(self, now: float, budget_s: float) -> bool:
        """Still not done ``budget_s`` after ``t_first``."""
        return bool(self.d.t_first) and self.at_done is None and now - self.d.t_first > budget_s

    def cut_short(self, now: float, cpu: float, finished: float, budget_s: float) -> Drain:
        """The drain cut short at this poll: it covers the events done so far (``partial``)."""
        d, events = self.d, self.d.events
        d.events, d.t_last, d.cpu_last = int(finished), now, cpu
        d.changelog_records = self.last_end or 0
        d.vm_hwm_bytes = self.proc.vm_hwm_bytes()
        d.partial = True
        log(f"{self.label}: budget of {budget_s:.0f}s used up after {finished:,.0f}/{events:,} events done; "
            f"stopping it")
        return d

    def settled(self, now: float, stable_s: float) -> bool:
        """(1) seen and the changelog quiet for ``stable_s`` since the later of (1) and its last growth."""
        return self.at_done is not None and now - self._end()[0] >= stable_s

    def drained(self) -> Drain:
        """The drain, ending at the later of (1) and the changelog's last growth (``ok``)."""
        d = self.d
        d.t_last, d.cpu_last = self._end()
        d.changelog_records = self.last_end or 0
        d.vm_hwm_bytes = self.proc.vm_hwm_bytes()
        d.ok = True
        return d

    def _end(self) -> tuple[float, float]:
        assert self.at_done is not None
        return max(self.at_done, self.last_growth or self.at_done)  # the later of (1) and the last growth
