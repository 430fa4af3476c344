"""tagstream data contracts: pure pydantic v2 models, no I/O and no imports of other tagstream packages.

- events: the three source topics' input models (validated from bytes); the source names,
  event type enums and size limits, each defined once
- ids: the typed ids (member, user, email/phone hashes, anonymous), junk values, id keys
- identity: the ``events.identity`` link record, and the ids each source event carries
- decode: bytes -> event (or identity record), or EventDecodeError(reason, message)
- canonical: event -> the flat canonical dict the engine and rules see
- tags: tag-change topic value, Redis tag value, dead-letter headers
- rules: typed shape of a rule file, parse_duration_ms
- api: response bodies of the HTTP API (streams/io/http_api.py)
- export: JSON Schemas of the public shapes (``python -m schemas.export [DIR]``)
"""

from typing import TYPE_CHECKING

from .canonical import CANONICAL_FIELD_TYPES, CANONICAL_FIELDS, to_canonical
from .decode import EVENT_REASONS, IDENTITY_REASONS, REASONS, EventDecodeError, decode_event, decode_identity
from .events import (
    CLICK_TYPES,
    MAX_ID_CHARS,
    MAX_ITEMS,
    MAX_LABEL_CHARS,
    MAX_MONEY,
    MAX_QTY,
    MAX_QUERY_CHARS,
    MAX_TS_CHARS,
    MAX_TS_MS,
    MAX_URL_CHARS,
    MIN_TS_MS,
    MODEL_BY_SOURCE,
    ORDER_CHANNELS,
    ORDER_STATUSES,
    POS_TYPES,
    SOURCES,
    ClickstreamEvent,
    ClickType,
    LineItem,
    OrderChannel,
    OrderEvent,
    OrderStatus,
    PosEvent,
    PosType,
    Source,
    SourceEvent,
)
from .identity import IDENTITY_SOURCE, MAX_LINK_IDS, IdentityRecord, TypedId, event_ids
from .ids import CONTACT_TYPES, ID_TYPES, IdType, id_key, is_junk, parse_id_key
from .rules import FeatureSpec, RuleFile, TagSpec, parse_duration_ms
from .tags import DLQ_HEADERS, DLQ_MAX_ERROR_CHARS, DeadLetter, TagChange, TagChangeDict, TagValue

__all__ = [
    "CANONICAL_FIELDS",
    "CANONICAL_FIELD_TYPES",
    "CLICK_TYPES",
    "CONTACT_TYPES",
    "DLQ_HEADERS",
    "DLQ_MAX_ERROR_CHARS",
    "EVENT_REASONS",
    "IDENTITY_REASONS",
    "IDENTITY_SOURCE",
    "ID_TYPES",
    "MAX_ID_CHARS",
    "MAX_ITEMS",
    "MAX_LABEL_CHARS",
    "MAX_LINK_IDS",
    "MAX_MONEY",
    "MAX_QTY",
    "MAX_QUERY_CHARS",
    "MAX_TS_CHARS",
    "MAX_TS_MS",
    "MAX_URL_CHARS",
    "MIN_TS_MS",
    "MODEL_BY_SOURCE",
    "ORDER_CHANNELS",
    "ORDER_STATUSES",
    "POS_TYPES",
    "REASONS",
    "SOURCES",
    "ClickType",
    "ClickstreamEvent",
    "DeadLetter",
    "EventDecodeError",
    "FeatureSpec",
    "IdType",
    "IdentityRecord",
    "LineItem",
    "OrderChannel",
    "OrderEvent",
    "OrderStatus",
    "PosEvent",
    "PosType",
    "RuleFile",
    "Source",
    "SourceEvent",
    "TagChange",
    "TagChangeDict",
    "TagSpec",
    "TagValue",
    "TypedId",
    "decode_event",
    "decode_identity",
    "event_ids",
    "id_key",
    "is_junk",
    "json_schemas",
    "parse_duration_ms",
    "parse_id_key",
    "to_canonical",
]

if TYPE_CHECKING:  # for type checkers only; at run time the lazy __getattr__ below provides it
    from .export import json_schemas


def __getattr__(name: str) -> object:
    # Lazy: importing schemas.export eagerly would make ``python -m schemas.export`` warn (module
    # already in sys.modules before it runs as __main__). The export() function is deliberately not
    # re-exported: the name would clash with the submodule schemas.export.
    if name == "json_schemas":
        from .export import json_schemas

        return json_schemas
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
