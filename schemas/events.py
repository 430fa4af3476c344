"""Input event models for the three source topics (clickstream, pos, orders).

The models are validated straight from the Kafka record bytes with ``Model.model_validate_json``
(pydantic-core parses and validates in one pass, no Python ``json`` step). Fields are strict where
a silent coercion would hide a producer bug: ids must be JSON strings (``123`` is not ``"123"``),
numbers must be JSON numbers (``"9.99"`` is rejected; an int is fine where a float is expected).
Unknown extra fields are ignored, so producers can add fields without breaking us.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

SOURCES: tuple[str, ...] = ("clickstream", "pos", "orders")
"""The source names, in a stable order (also the ``source`` value of a canonical event)."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_TS_MS = 0
"""1970-01-01T00:00:00Z."""
MAX_TS_MS = (datetime(2201, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1) - 1
"""2200-12-31T23:59:59.999Z: anything later is a unit bug (seconds vs micro/nanoseconds), not a date."""

TIMESTAMP_ERROR = "bad_timestamp"
"""pydantic error type raised by the ``ts`` validator (schemas.decode maps it to reason bad_timestamp)."""

# RFC 3339 date-time. datetime.fromisoformat alone is too lenient (it takes ISO 8601 basic
# format, week dates, date-only strings), so the shape is checked first.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)


def _ts_error(message: str) -> PydanticCustomError:
    return PydanticCustomError(TIMESTAMP_ERROR, message)


def _ms_to_datetime(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def datetime_to_ms(dt: datetime) -> int:
    """Epoch milliseconds of an aware datetime (sub-millisecond digits are floored)."""
    return (dt - EPOCH) // timedelta(milliseconds=1)


def _parse_ts(value: Any) -> datetime:
    """``ts``: an RFC 3339 string with an offset, or epoch milliseconds as a JSON integer."""
    # bool is an int subclass; JSON true/false is never a timestamp.
    if isinstance(value, bool):
        raise _ts_error("timestamp must be an RFC 3339 string or epoch milliseconds (integer), not a boolean")
    if isinstance(value, int):
        if not MIN_TS_MS <= value <= MAX_TS_MS:
            raise _ts_error("epoch milliseconds out of range (years 1970..2200); seconds or microseconds?")
        return _ms_to_datetime(value)
    if isinstance(value, str):
        if len(value) > 64:
            raise _ts_error("timestamp string is too long to be RFC 3339")
        m = _RFC3339.fullmatch(value)
        if m is None:
            raise _ts_error("timestamp must be RFC 3339, e.g. 2026-01-31T12:00:00Z, or epoch milliseconds")
        if m.group("offset") is None:
            raise _ts_error("timestamp needs a timezone offset")
        try:
            dt = datetime.fromisoformat(value.upper())
        except ValueError:
            raise _ts_error("timestamp is not a valid date/time") from None
        ms = datetime_to_ms(dt)
        if not MIN_TS_MS <= ms <= MAX_TS_MS:
            raise _ts_error("timestamp out of range (years 1970..2200)")
        return _ms_to_datetime(ms)
    if isinstance(value, datetime):
        # Python callers (tests, replays) may pass a datetime; the same offset rule applies.
        if value.tzinfo is None or value.utcoffset() is None:
            raise _ts_error("timestamp needs a timezone offset")
        return _parse_ts(datetime_to_ms(value))
    raise _ts_error("timestamp must be an RFC 3339 string or epoch milliseconds (integer)")


Timestamp = Annotated[
    datetime,
    PlainValidator(_parse_ts),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time", "description": "RFC 3339 with a timezone offset"},
                {"type": "integer", "minimum": MIN_TS_MS, "maximum": MAX_TS_MS,
                 "description": "epoch milliseconds"},
            ],
            "description": "Business time of the event (kept as an aware UTC datetime, ms precision).",
        },
        mode="validation",
    ),
]
"""Event time: parsed to an aware UTC datetime truncated to whole milliseconds."""

Id = Annotated[str, Field(strict=True, min_length=1)]
"""An identifier: a non-empty JSON string (a JSON number is rejected, not coerced)."""
Text = Annotated[str, Field(strict=True)]
MAX_MONEY = 1e12
"""No retail amount is larger; beyond it a value is a unit or encoding bug (and sums stay exact)."""
MAX_QTY = 1_000_000
Money = Annotated[float, Field(strict=True, ge=0, le=MAX_MONEY, allow_inf_nan=False)]
"""A non-negative finite JSON number (ints accepted), at most MAX_MONEY."""
Number = Annotated[float, Field(strict=True, ge=-MAX_MONEY, le=MAX_MONEY, allow_inf_nan=False)]
Currency = Annotated[
    str,
    Field(strict=True, pattern=r"^[A-Za-z]{3}$", description="ISO 4217 code; normalised to upper case"),
    AfterValidator(str.upper),
]

ClickType = Literal["page_view", "product_view", "search", "add_to_cart", "remove_from_cart",
                    "checkout_start", "login"]
PosType = Literal["sale", "return"]
OrderStatus = Literal["created", "paid", "shipped", "cancelled", "refunded"]
OrderChannel = Literal["web", "app", "mini_program", "marketplace"]


class _Event(BaseModel):
    """Fields every source event has."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Id
    ts: Timestamp

    @property
    def ts_ms(self) -> int:
        """Business time as epoch milliseconds."""
        return datetime_to_ms(self.ts)


class LineItem(BaseModel):
    """One line of a POS ticket or an order."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sku: Text
    category: Text
    qty: Annotated[int, Field(strict=True, ge=1, le=MAX_QTY)]
    unit_price: Money


class ClickstreamEvent(_Event):
    """A web/app interaction. Identifies the visitor by ``user_id`` (logged in) and/or ``anonymous_id``."""

    user_id: Id | None = None
    anonymous_id: Id | None = None
    session_id: Text
    type: ClickType
    sku: Text | None = None
    category: Text | None = None
    price: Money | None = None
    url: Text | None = None
    query: Text | None = None
    channel: Text | None = None
    """Not in the producer contract; carried to the canonical event when a producer sends it."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["user_id"]}, {"required": ["anonymous_id"]}]},
    )

    @model_validator(mode="after")
    def _someone(self) -> ClickstreamEvent:
        if self.user_id is None and self.anonymous_id is None:
            raise PydanticCustomError("missing_identity", "either user_id or anonymous_id is required")
        return self


class PosEvent(_Event):
    """A point-of-sale ticket. ``member_id`` is None (or absent) for walk-in customers."""

    store_id: Id
    member_id: Id | None = None
    type: PosType
    items: Annotated[list[LineItem], Field(min_length=1)]
    total: Number
    """As sent; the canonical ``amount`` is its absolute value (``type`` tells sale from return)."""
    payment_method: Text


class OrderEvent(_Event):
    """An e-commerce order status change."""

    order_id: Id
    user_id: Id
    status: OrderStatus
    amount: Money
    currency: Currency
    channel: OrderChannel
    items: list[LineItem]


SourceEvent = ClickstreamEvent | PosEvent | OrderEvent

MODEL_BY_SOURCE: dict[str, type[ClickstreamEvent] | type[PosEvent] | type[OrderEvent]] = {
    "clickstream": ClickstreamEvent,
    "pos": PosEvent,
    "orders": OrderEvent,
}
"""Source name -> input model."""
