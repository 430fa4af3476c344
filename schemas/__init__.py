"""tagstream data contracts: pure pydantic v2 models, no I/O and no imports of other tagstream packages.

- events: the three source topics' input models (validated from bytes); the source names,
  event type enums and size limits, each defined once
- decode: bytes -> event, or EventDecodeError(reason, message)
- canonical: event -> the flat canonical dict the engine and rules see
- tags: tag-change topic value, Redis tag value, dead-letter headers
- rules: typed shape of a rule file, parse_duration_ms
- api: response bodies of the HTTP API (streams/io/http_api.py)
- export: JSON Schemas of the public shapes (``python -m schemas.export [DIR]``)
"""

from typing import TYPE_CHECKING

from .canonical import CANONICAL_FIELD_TYPES, CANONICAL_FIELDS, to_canonical
from .decode import REASONS, EventDecodeError, decode_event
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
from .rules import FeatureSpec, RuleFile, TagSpec, parse_duration_ms
from .tags import DLQ_HEADERS, DLQ_MAX_ERROR_CHARS, DeadLetter, TagChange, TagChangeDict, TagValue

__all__ = [
    "CANONICAL_FIELDS",
    "CANONICAL_FIELD_TYPES",
    "CLICK_TYPES",
    "DLQ_HEADERS",
    "DLQ_MAX_ERROR_CHARS",
    "MAX_ID_CHARS",
    "MAX_ITEMS",
    "MAX_LABEL_CHARS",
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
    "decode_event",
    "json_schemas",
    "parse_duration_ms",
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
