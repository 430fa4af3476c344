"""The ingest stage: raw source records -> validated canonical events, repartitioned by customer.

Stateless. Each batch of source records becomes one envelope per customer partition (see
``envelope.py``); bad records go to the dead-letter topic with the reason. ``process`` returns
only once the envelopes and dead-letter records are on the broker, so the batch may then be
acknowledged (at-least-once: a crash before that re-reads the batch).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson

from schemas.canonical import to_canonical
from schemas.decode import EventDecodeError, decode_event
from schemas.fast_decode import IdPairs, fast_canonical
from schemas.identity import IDENTITY_SOURCE, event_id_values
from schemas.ids import JUNK_VALUES
from streams.app.envelope import ENVELOPE_MAX_BYTES, EnvelopeBuilder, EnvelopeSender
from streams.app.identity_links import (
    LinkBatch,
    decode_identity_record,
    identity_record_link,
    link_value,
    sole_key,
    usable_id_keys,
)
from streams.engine import native_core
from streams.engine.clock import Clock
from streams.engine.identity.repeats import LinkRepeats
from streams.io.contract import SourceRecord
from streams.io.deadletter import DeadLetterWriter
from streams.io.metrics import Metrics, Tally

log = logging.getLogger(__name__)

INTERNAL_RECORD_MAX_BYTES = 900_000
"""A canonical event bigger than this cannot travel on the internal topic (Kafka's default
record limit is 1 MB): it is dead-lettered as ``too_large`` instead of being lost in a send."""


def stamp_position(canonical: dict[str, Any], source: str, partition: int, offset: int) -> None:
    """The record's source position (``sp`` = source:partition, ``so`` = offset) travels with the
    event: a backfill of new features tells by it which records the live path counted
    (streams/engine/backfill.py)."""
    canonical["sp"] = f"{source}:{partition}"
    canonical["so"] = offset


class Decoded(Protocol):
    """A validated source record, before its customer key is chosen: the Rust core's ``FastEvent``
    (``native/src/lib.rs``) or ``PyDecoded``, the same from the Python path."""

    @property
    def event_id(self) -> str: ...
    @property
    def ts_ms(self) -> int: ...
    @property
    def customer_id(self) -> str | None: ...
    @property
    def ids(self) -> IdPairs: ...
    def item(self, customer_id: str | None, sp: str, so: int) -> bytes: ...


class PyDecoded:
    """``Decoded`` from the Python path: the canonical dict and its typed ids."""

    __slots__ = ("canonical", "ids")

    def __init__(self, canonical: dict[str, Any], ids: IdPairs) -> None:
        self.canonical = canonical
        self.ids = ids

    @property
    def event_id(self) -> str:
        return str(self.canonical["event_id"])

    @property
    def ts_ms(self) -> int:
        return int(self.canonical["ts_ms"])

    @property
    def customer_id(self) -> str | None:
        customer_id: str | None = self.canonical["customer_id"]
        return customer_id

    def item(self, customer_id: str | None, sp: str, so: int) -> bytes:
        """The internal topic's item: the canonical event with this customer key and position
        (``stamp_position``)."""
        canonical = self.canonical
        canonical["customer_id"] = customer_id
        canonical["sp"] = sp
        canonical["so"] = so
        return orjson.dumps(canonical)


class IngestStage:
    """Validates, normalizes and repartitions one batch of source records at a time."""

    def __init__(self, *, source_by_topic: Mapping[str, str], partitions: int, clock: Clock,
                 future_tolerance_ms: int, envelopes: EnvelopeSender, deadletter: DeadLetterWriter,
                 metrics: Metrics, links: EnvelopeSender | None = None, repeats: LinkRepeats | None = None) -> None:
        """``links``: identity resolution is on (typed customer keys; links to the identity stage);
        ``repeats``: the links already sent, not sent again (None: every link is sent)."""
        self._source_by_topic = dict(source_by_topic)
        self._links = links
        self._repeats = repeats
        self._repeated = 0
        self._partitions = partitions
        self._clock = clock
        self._future_tolerance_ms = future_tolerance_ms
        self._envelopes = envelopes
        self._deadletter = deadletter
        self._metrics = metrics
        self._events_in = Tally(metrics.events_in)
        self._anonymous = Tally(metrics.events_anonymous)

    async def process(self, records: Sequence[SourceRecord]) -> None:
        """Handles a batch; returns once its envelopes and dead-letter records are written."""
        links = LinkBatch()
        if self._repeats is not None:
            self._repeats.discard()  # a failed batch's links: not acknowledged, sent again when it is read again
        out: EnvelopeBuilder | Any
        if _CORE is None:
            out = EnvelopeBuilder(self._partitions)
            for msg in records:
                self._one(msg, out, links)
        else:
            out = self._in_core(records, links)
        self._events_in.flush()
        self._anonymous.flush()
        if self._repeated:
            self._metrics.identity_links.labels("repeat").inc(self._repeated)
            self._repeated = 0
        acks = await self._envelopes.enqueue(out)  # one record per customer partition, not one per event
        if len(links):
            assert self._links is not None, "identity records read with identity resolution off"
            acks += await self._links.enqueue(links.builder)
        await asyncio.gather(*acks)  # envelopes and links in one round trip (two in a row idled ingest)
        if self._repeats is not None:
            self._repeats.acknowledged()
        await self._deadletter.flush()

    def _in_core(self, records: Sequence[SourceRecord], links: LinkBatch) -> Any:
        """The batch through the Rust core (``native/src/ingest.rs``): it takes the records it can
        finish alone (identity links too, with ``_repeat`` and ``links``) and stops at each other one,
        which ``_one`` handles (with the core's decoding of it, if any) before the core goes on after it."""
        assert _CORE is not None
        identity = self._links is not None
        out = _CORE.Ingest(self._partitions, ENVELOPE_MAX_BYTES, identity,
                           self._clock.now_ms() + self._future_tolerance_ms, INTERNAL_RECORD_MAX_BYTES,
                           self._source_by_topic, JUNK_VALUES, self._repeat if identity else None,
                           links.add if identity else None)
        batch = records if isinstance(records, list) else list(records)
        i, n = 0, len(batch)
        while True:
            i, decoded = out.run(batch, i)
            if i >= n:
                break
            self._one(batch[i], out, links, decoded)
            i += 1
        events_in, anonymous = out.counts()
        for source, count in events_in.items():
            self._events_in.add(source, count)
        for source, count in anonymous.items():
            self._anonymous.add(source, count)
        if out.junk_refused:  # junk ids left out of events that had a usable one too
            self._metrics.identity_refused.labels("junk_id").inc(out.junk_refused)
        return out

    def _one(self, msg: SourceRecord, out: EnvelopeBuilder | Any, links: LinkBatch,
             decoded: Decoded | None = None) -> None:
        """One record on the Python path: validated (unless ``decoded`` already), keyed, added to
        ``out``; a bad one dead-lettered with its reason."""
        source = self._source_by_topic.get(msg.topic, msg.topic)
        self._events_in.add(source)
        try:
            if source == IDENTITY_SOURCE:
                record = decode_identity_record(msg)
                if not self._repeat(record.keys, record.ts_ms):
                    links.add(identity_record_link(msg, record))
                return
            if decoded is None:
                decoded = self.decode(msg, source)
            customer_id = (decoded.customer_id if self._links is None
                           else self._identity_key(msg, source, decoded, links))
            if customer_id is None:
                self._anonymous.add(source)
                return
            item = decoded.item(customer_id, f"{source}:{msg.partition}", msg.offset)
            if len(item) > INTERNAL_RECORD_MAX_BYTES:
                raise EventDecodeError("too_large", f"canonical event of {len(item):,} bytes is over the "
                                       f"{INTERNAL_RECORD_MAX_BYTES:,}-byte internal record limit")
            out.add(customer_id.encode(), item)
        except EventDecodeError as exc:
            self._deadletter.add(msg, source, exc.reason, exc.message)
        except Exception as exc:  # never let one record stop the worker
            log.exception("ingest failed on %s[%s]@%s", msg.topic, msg.partition, msg.offset)
            self._deadletter.add(msg, source, "internal_error", f"{type(exc).__name__}: {exc}")

    def _repeat(self, ids: list[str], ts_ms: int) -> bool:
        """The link changes nothing one already sent did not (counted; streams/engine/identity/repeats.py)."""
        if self._repeats is None or not self._repeats.repeat(ids, ts_ms):
            return False
        self._repeated += 1
        return True

    def _identity_key(self, msg: SourceRecord, source: str, decoded: Decoded, links: LinkBatch) -> str | None:
        """Identity resolution: the event counts under its first usable typed id (returned; None:
        nobody to count it for); two or more make a link."""
        pairs = decoded.ids
        key = sole_key(pairs)
        if key is not None:
            return key
        ids, junk = usable_id_keys(pairs)
        if not ids:
            if not junk:  # a walk-in ticket: nobody to count it for, as without identity resolution
                return None
            raise EventDecodeError("junk_id", f"every id of the event is a placeholder that identifies nobody: {junk}")
        for _ in junk:  # left out of the event's link, which still joins the rest
            self._metrics.identity_refused.labels("junk_id").inc()
        ts_ms = decoded.ts_ms
        if len(ids) > 1 and not self._repeat(ids, ts_ms):
            links.add(link_value(f"{source}:{decoded.event_id}", ids, ts_ms, source, msg))
        return ids[0]

    def decode(self, msg: SourceRecord, source: str) -> Decoded:
        """Raw record -> the validated event; raises EventDecodeError with the DLQ reason.

        A plain record takes the Rust core's fast path (``native/``, when built), else the Python
        one (``schemas.fast_decode``); any other goes through the models, which accept it or say why
        not."""
        if not msg.value:
            raise EventDecodeError("invalid_json", "empty record value")
        src_ts_ms = int(msg.timestamp * 1000)
        decoded: Decoded | None = None
        if _CORE is not None:
            decoded = _CORE.fast_event(source, msg.value, src_ts_ms)
        if decoded is None:
            fast = fast_canonical(source, msg.value, src_ts_ms)
            if fast is not None:
                decoded = PyDecoded(*fast)
            else:
                event = decode_event(source, msg.value)
                decoded = PyDecoded(to_canonical(source, event, src_ts_ms), event_id_values(event))
        now_ms = self._clock.now_ms()
        ts_ms = decoded.ts_ms
        if ts_ms > now_ms + self._future_tolerance_ms:
            raise EventDecodeError(
                "future_timestamp",
                f"ts {ts_ms} is {(ts_ms - now_ms) / 1000:.0f}s in the future "
                f"(tolerance {self._future_tolerance_ms / 1000:.0f}s)")
        return decoded


_CORE = native_core.CORE
"""The Rust core (``streams/engine/native_core.py``), or None: the Python path."""
