"""Every faust-streaming internal tagstream touches, in one place, each guarded.

faust-streaming is pinned to the tested range (pyproject: ``>=0.15.3,<0.16``). The pieces here
use faust's private API, so each is checked against a fingerprint of the faust source it was
written for (``source_fingerprint``): a faust whose code differs makes the worker refuse to start
with a clear message (``check_faust``), rather than run on assumptions that no longer hold.

* ``take_events`` (``faust_take_events.py``, its own module, fingerprinted here) — faust's
  ``Stream.take_events`` acknowledging a batch only after the agent finished with it.
* ``current_event_as`` — makes a record faust's current event so a table write inside a
  ``take_events`` batch goes to that record's changelog partition (faust-streaming #497).
* ``install_batch_delivery`` — EXPERIMENTAL, off by default (``TAGSTREAM_KAFKA__BATCH_DELIVERY``):
  hands fetched records to the agents per batch instead of four asyncio tasks per record. It
  doubled a consume-only Faust app (benchmark column f: 13.9k -> 30.8k events/s) but the SIGKILL
  and two-worker fault tests failed in about half the runs with it; do not enable it where losing
  events matters (``faust_batch_delivery.py``). Nothing here touches a faust private at import
  time; each patch's target is looked up only when it is installed.
* ``install_read_committed`` — for the experimental exactly-once output: faust stays at-least-once
  but reads committed records (consumer isolation, recovery highwater, recovery end).
* ``HoleGuard`` / ``guard_holes`` — faust would acknowledge records it skipped after a seek without
  delivering them; the guard re-reads them.
* ``before_tables_stop`` — a graceful stop lets the customer batch in flight finish before faust
  closes the tables.

``faust_consumer_options.py`` (its own module) sets what faust does not expose on the worker's
aiokafka consumer: ``fetch_max_wait_ms`` (faust hard-codes 1,500 ms, which starved busy partitions
behind a long poll of idle ones) and the isolation level. ``faust_commits.py`` (its own module)
replaces faust's check of which offset may be committed and completes its seek to the committed
offsets after a rebalance. The targets of both are fingerprinted here with the others.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from importlib import metadata
from typing import Any

log = logging.getLogger(__name__)

TESTED_FAUST = ((0, 15, 3), (0, 16, 0))
"""faust-streaming versions this module was tested with: [low, high)."""

FINGERPRINTS = {
    "faust.streams.Stream.take_events": "607d48aead118ba8",
    "faust.transport.consumer.Consumer._drain_messages": "44a2500309e83c63",
    "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._highwaters": "a7f4f97d9f32aca2",
    "faust.transport.consumer.Consumer._add_gap": "4df2573ded7c1c2c",
    "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._create_worker_consumer": "c2701bfc3e6f6cad",
    "faust.tables.recovery.Recovery._slurp_changelogs": "7825c7e50f766d5a",
    "faust.transport.consumer.Consumer.getmany": "4b168d84882a70d6",
    "faust.app.base.App.on_stop": "bfe5a933defb2324",
    "faust.app.base.App._stop_consumer": "55854a5de12c3f52",
    "faust.transport.consumer.Consumer._new_offset": "1d2c7ea89a7ad4f1",
    "faust.transport.consumer.Consumer.perform_seek": "0e8c130ff4b0afd8",
    "faust.app.base.App._on_partitions_assigned": "de932b7927db85b3",
}
"""sha256 (first 16 hex digits) of the faust source each piece here was copied from or replaces."""


class FaustCompatError(RuntimeError):
    """The installed faust-streaming is not the one tagstream's Faust internals were written for."""


def source_fingerprint(func: Callable[..., Any]) -> str:
    """First 16 hex digits of the sha256 of ``func``'s source code."""
    return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()[:16]


def _parse_version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts)


def check_faust(version: str | None = None, targets: dict[str, Callable[..., Any]] | None = None) -> None:
    """Raises FaustCompatError unless the installed faust (or ``version`` / ``targets``, for tests)
    is in the tested range and the faust code behind every piece here is the one we read."""
    version = version or metadata.version("faust-streaming")
    low, high = TESTED_FAUST
    if not low <= _parse_version(version) < high:
        raise FaustCompatError(f"faust-streaming {version} is not in the tested range "
                               f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}")
    for name, func in (targets or _targets()).items():
        got = source_fingerprint(func)
        if got != FINGERPRINTS[name]:
            raise FaustCompatError(f"{name} of faust-streaming {version} differs from the tested one "
                                   f"(fingerprint {got}, tested {FINGERPRINTS[name]}): streams/app/faust_compat.py "
                                   "must be re-checked against it")


def _targets() -> dict[str, Callable[..., Any]]:
    from faust.app.base import App
    from faust.streams import Stream
    from faust.tables.recovery import Recovery
    from faust.transport.consumer import Consumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    return {"faust.streams.Stream.take_events": Stream.take_events,
            "faust.transport.consumer.Consumer._drain_messages": Consumer._drain_messages,
            "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._highwaters":
                _original(AIOKafkaConsumerThread._highwaters),
            "faust.transport.consumer.Consumer._add_gap": _original(Consumer._add_gap),
            "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._create_worker_consumer":
                _original(AIOKafkaConsumerThread._create_worker_consumer),
            "faust.tables.recovery.Recovery._slurp_changelogs": Recovery._slurp_changelogs.fun,
            "faust.transport.consumer.Consumer.getmany": _original(Consumer.getmany),
            "faust.app.base.App.on_stop": App.on_stop,
            "faust.app.base.App._stop_consumer": App._stop_consumer,
            "faust.transport.consumer.Consumer._new_offset": _original(Consumer._new_offset),
            "faust.transport.consumer.Consumer.perform_seek": _original(Consumer.perform_seek),
            "faust.app.base.App._on_partitions_assigned": App._on_partitions_assigned}


def _original(func: Callable[..., Any]) -> Callable[..., Any]:
    """The faust function a patch of ours replaced (fingerprints are of faust's code)."""
    return getattr(func, "_tagstream_original", func)


def committed_offset(consumer: Any, tp: Any) -> int | None:
    """The offset faust last committed for ``tp`` (its consumer keeps no public accessor)."""
    offset: int | None = consumer._committed_offset.get(tp)
    return offset


async def drain_producer_buffer(app: Any) -> None:
    """Waits until faust's producer buffer has handed every queued record (table changelog
    writes go through it) to the Kafka client.

    faust's ``ProducerBuffer.flush()`` returns after 100 ms without progress even when records
    are still queued, and the consumer's commit trusts it: offsets were committed while changelog
    records still sat in the buffer, so a SIGKILL then lost state whose input counted as done
    (seen by the feature-level SIGKILL test: a restart found an empty changelog). Called before a
    batch is acknowledged; the commit that follows flushes the Kafka client itself.
    """
    buffer = app.producer.buffer
    while buffer.size:
        await buffer.flush()


class current_event_as:
    """Makes ``event`` faust's current event, so table writes go to its partition's changelog.

    Workaround for faust-streaming #497 (tables can't be written from ``take()`` batches). The
    table write then is exactly what it is inside ``async for event in stream``: same store,
    same changelog partition, so recovery stays correct. A class, not a ``@contextmanager``
    generator, and faust's variable looked up once: every customer state saved goes through it
    (py-spy: 0.5 s of a 200,000-event drain with identity on, docs/identity.md).
    """

    __slots__ = ("_event", "_token")

    def __init__(self, event: Any) -> None:
        self._event = event
        self._token: Any = None

    def __enter__(self) -> None:
        self._token = _current_event_var().set(weakref.ref(self._event))

    def __exit__(self, *exc: object) -> None:
        _current_event_var().reset(self._token)


_CURRENT_EVENT: Any = None
"""faust's ``streams._current_event`` context variable, looked up at the first use."""


def _current_event_var() -> Any:
    global _CURRENT_EVENT
    if _CURRENT_EVENT is None:
        from faust import streams as faust_streams

        _CURRENT_EVENT = faust_streams._current_event
    return _CURRENT_EVENT


def install_batch_delivery() -> bool:
    """EXPERIMENTAL per-batch delivery (``streams/app/faust_batch_delivery.py``); True if in place."""
    from streams.app.faust_batch_delivery import install

    return install()


class HoleGuard:
    """Re-reads records faust would skip and acknowledge unseen.

    Faust's ``_drain_messages`` treats a record whose offset is more than one past the last
    delivered offset of its partition as the end of a *gap* (compaction, transaction markers) and
    acknowledges every offset in between — without delivering them. After a seek (the end of a
    table recovery seeks stream partitions to their committed offsets while the fetcher is
    running), a record fetched from the old position arrives right behind the new read offset and
    the records in between are acknowledged and lost: seen in the fault tests on the customer topic
    ("offsets 6..19 acknowledged without delivery") and on source topics.

    For the topics guarded here a hole is first treated as a skip: the partition is sought back to
    the last delivered offset and the rest of the fetch for it is dropped, so the records come
    again (one may come twice: counted once by event id). Only if the very same hole comes back
    after that re-read is it a real gap (a transaction marker of a transactional producer upstream)
    and left to faust. ``on_hole(tp, first, last, retried)`` is told about each."""

    def __init__(self, topics: set[str], on_hole: Callable[[Any, int, int, bool], None]) -> None:
        self.topics = set(topics)
        self.on_hole = on_hole
        self._retried: dict[Any, tuple[int, int]] = {}
        self._awaiting: dict[Any, int] = {}
        """Partitions sought back to an offset whose record has not come again yet."""

    def check(self, tp: Any, read_offset: int | None, offset: int) -> bool:
        """True: deliver the record; False: a hole before it, re-read from ``read_offset``."""
        if tp.topic not in self.topics:
            return True
        if tp in self._awaiting:
            # sought back: the re-read starts at the read offset (ours, or faust's own seek's);
            # a record past it was fetched before the seek, so it is no evidence of a gap
            if read_offset is None or offset <= read_offset:
                del self._awaiting[tp]
                return True
            return False
        if read_offset is None or offset - read_offset <= 1:
            return True
        hole = (read_offset, offset)
        if self._retried.get(tp) == hole:  # the same hole after a real re-read: a real gap
            del self._retried[tp]
            self.on_hole(tp, read_offset + 1, offset - 1, True)
            return True
        self._retried[tp] = hole
        self._awaiting[tp] = read_offset
        self.on_hole(tp, read_offset + 1, offset - 1, False)
        return False


_HOLE_GUARDS: list[HoleGuard] = []
_real_getmany: Any = None
_real_seek: Any = None


def guard_holes(guard: HoleGuard) -> None:
    """Installs ``guard`` on faust's consumer (its ``getmany`` is wrapped once for all guards)."""
    from faust.transport.consumer import Consumer

    global _real_getmany
    _HOLE_GUARDS.append(guard)
    real = Consumer.getmany
    if getattr(real, "_tagstream_original", None) is not None:
        return
    _real_getmany = real

    async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109 (faust's signature)
        rewound: set[Any] = set()
        async for tp, message in _real_getmany(self, timeout):
            if tp in rewound:
                continue  # the rest of this fetch for a partition sought back: it comes again
            r_offset = self._read_offset.get(tp)
            if all(g.check(tp, r_offset, message.offset) for g in _HOLE_GUARDS):
                yield tp, message
                continue
            rewound.add(tp)
            await _real_seek(self, tp, r_offset)  # faust's seek: aiokafka position and read offset

    getmany._tagstream_original = real  # type: ignore[attr-defined]
    Consumer.getmany = getmany  # type: ignore[method-assign]
    global _real_seek
    _real_seek = Consumer.seek


def install_read_committed(app: Any) -> None:
    """For our exactly-once output (the customer stage writes the changelog in Kafka transactions,
    ``streams/io/transactions.py``) while Faust itself stays at-least-once. Faust's own
    ``processing_guarantee="exactly_once"`` is not used: its transaction manager keys producers by
    the *destination* partition (right only for co-partitioned pipelines), and with it the fault
    test lost source records (offset commits skipped past records never delivered). Three pieces:

    * the worker's consumer reads ``read_committed`` (recovery and standbys skip aborted state
      writes of a killed worker);
    * recovery reads up to the broker's last stable offset (``install_read_committed_highwaters``);
    * recovery ends when the consumer's position passed that offset, although the last offset of
      a partition is a transaction marker that is never delivered: faust's own check for this
      runs only when ``app.in_transaction``, so its recovery service sees the app through a view
      that says so (the only use of ``in_transaction`` in faust's recovery).
    """
    from streams.app.faust_consumer_options import install_consumer_options

    install_read_committed_highwaters()
    install_consumer_options(app, read_committed=True)
    recovery = app.tables.recovery
    if not isinstance(recovery.app, _InTransactionView):
        recovery.app = _InTransactionView(recovery.app)


class _InTransactionView:
    """The app as faust's recovery sees it with our exactly-once output: ``in_transaction``."""

    in_transaction = True

    def __init__(self, app: Any) -> None:
        self.__dict__["_app"] = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._app, name, value)


def install_read_committed_highwaters() -> bool:
    """For ``processing_guarantee=exactly_once``: table recovery reads the changelog up to the
    broker's last stable offset (``end_offsets`` under ``read_committed``). Faust asks the
    consumer's ``last_stable_offset(tp)`` instead, which is only known after a fetch of that
    partition: at recovery start it is None, so faust took the highwater as -1 — it skipped
    recovery (empty state after a restart) or, with a RocksDB store that had an offset, raised
    ``ConsistencyError`` and crashed the worker. True if it is in place."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    real = AIOKafkaConsumerThread._highwaters
    if getattr(real, "_tagstream_original", None) is not None:
        return True

    async def _highwaters(self: Any, partitions: list[Any]) -> Mapping[Any, int]:
        ends: Mapping[Any, int] = await self._ensure_consumer().end_offsets(partitions)
        return ends

    _highwaters._tagstream_original = real  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]
    return True


def before_tables_stop(app: Any, hook: Callable[[], Awaitable[None]]) -> None:
    """Runs ``hook`` when ``app`` starts stopping, before faust closes its tables.

    Faust's ``App.on_stop`` stops the fetcher and then the tables (``_stop_consumer``) while the
    agents still run (``stream_wait_empty`` is off: it would wait for records that will never be
    processed), and only then signals ``on_before_shutdown``: a customer batch in flight wrote to
    a table being closed. The hook (the customer stage's ``quiesce``) lets that batch finish and
    stops the next one first."""
    real = app._stop_consumer

    async def _stop_consumer() -> None:
        await hook()
        await real()

    app._stop_consumer = _stop_consumer


def before_table_recovery(app: Any, hook: Callable[[set[Any]], Awaitable[None]]) -> None:
    """Runs ``hook(assigned)`` on every assignment before faust starts recovering the tables.

    Faust's ``App._on_partitions_assigned`` pauses the assigned partitions, then calls
    ``tables.on_rebalance`` (which starts the recovery: it reads the changelogs up to their end
    offsets) and only then sends the ``on_partitions_assigned`` signal, whose receivers run while
    the recovery reads. Exactly-once fences the partitions' previous owners in the hook: a
    transaction a paused previous owner committed after the recovery had read the changelog's end
    would never be seen by the new owner, which would publish the same changes again."""
    tables = app.tables
    real = tables.on_rebalance

    async def on_rebalance(assigned: set[Any], revoked: set[Any], newly_assigned: set[Any],
                           generation_id: int = 0) -> None:
        await hook(assigned)
        await real(assigned, revoked, newly_assigned, generation_id)

    tables.on_rebalance = on_rebalance
