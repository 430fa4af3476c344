"""Ingest's side of identity resolution: typed customer keys and the links events carry.

With ``identity.enabled`` an event counts under its first usable id in priority order
(member, user, contact hashes, anonymous: ``schemas.identity.event_ids``) as a typed key
(``user:u-1``); an event naming two or more usable ids, and every ``events.identity`` record, is
also a *link*, sent to the identity stage's topic (``<app>-identity-links``, one partition):

    {"link_id": "clickstream:e-9", "ids": ["user:u-1", "anonymous:a-1"], "ts_ms": …, "source": "clickstream",
     "src": ["events.clickstream", 3, 1234]}

``src`` is the source record's position, so a refused link is dead-lettered with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from schemas.decode import EventDecodeError, decode_identity
from schemas.events import ClickstreamEvent, OrderEvent, PosEvent
from schemas.fast_decode import IdPairs
from schemas.identity import IdentityRecord, event_id_values
from schemas.ids import IdType, id_key, is_junk
from streams.app.envelope import EnvelopeBuilder
from streams.io.contract import SourceRecord

_KEYS: dict[tuple[IdType, str], tuple[str, bool]] = {}
"""(type, value as sent) -> (id key, junk): ids repeat from event to event (a customer's, a
visitor's session), so ingest builds and checks each once. Cleared when full."""
_KEYS_MAX = 200_000


def usable_ids(event: ClickstreamEvent | PosEvent | OrderEvent) -> tuple[list[str], list[str]]:
    """The event's id keys that identify someone, in priority order, and the junk ones."""
    return usable_id_keys(event_id_values(event))


def usable_id_keys(pairs: Iterable[tuple[IdType, str]]) -> tuple[list[str], list[str]]:
    """``usable_ids`` of an event's (type, value) pairs (``schemas.identity.event_id_values``)."""
    good: list[str] = []
    junk: list[str] = []
    for pair in pairs:
        known = _KEYS.get(pair)
        if known is None:
            id_type, value = pair
            key = id_key(id_type, value)
            known = (key, is_junk(key[len(id_type) + 1:]))  # the value as the key has it
            if len(_KEYS) >= _KEYS_MAX:
                _KEYS.clear()
            _KEYS[pair] = known
        (junk if known[1] else good).append(known[0])
    return good, junk


def sole_key(pairs: IdPairs) -> str | None:
    """The id key of an event with one id, already seen and usable (most events: a customer's or a
    visitor's next one); None otherwise (``usable_id_keys`` then says what it is)."""
    if len(pairs) != 1:
        return None
    known = _KEYS.get(pairs[0])
    return known[0] if known is not None and not known[1] else None


def link_value(link_id: str, ids: list[str], ts_ms: int, source: str, msg: SourceRecord) -> bytes:
    return orjson.dumps({"link_id": link_id, "ids": ids, "ts_ms": ts_ms, "source": source,
                         "src": [msg.topic, msg.partition, msg.offset]})


def decode_identity_record(msg: SourceRecord) -> IdentityRecord:
    """An ``events.identity`` record; raises EventDecodeError with the DLQ reason."""
    if not msg.value:
        raise EventDecodeError("invalid_json", "empty record value")
    return decode_identity(msg.value)


def identity_record_link(msg: SourceRecord, record: IdentityRecord) -> bytes:
    """An ``events.identity`` record (``decode_identity_record``) as a link."""
    return link_value(f"identity:{record.event_id}", record.keys, record.ts_ms, record.source, msg)


class LinkBatch:
    """One ingest batch's links, in order, for the one-partition links topic."""

    def __init__(self) -> None:
        self.builder = EnvelopeBuilder(1)

    def add(self, value: bytes) -> None:
        self.builder.add(b"", value)

    def __len__(self) -> int:
        return self.builder.items


def decode_links(value: bytes | None) -> list[dict[str, Any]]:
    """The links of one links-topic record; ValueError for anything else."""
    if not value:
        raise ValueError("empty record on the identity links topic")
    obj = orjson.loads(value)
    items = obj if isinstance(obj, list) else [obj]
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("ids"), list) or "link_id" not in item:
            raise ValueError("identity links topic record is not a link or a list of links")
    return items
