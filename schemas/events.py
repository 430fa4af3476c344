"""Input event models for the three source topics (clickstream, pos, orders).

The models are validated straight from the Kafka record bytes with ``Model.model_validate_json``
(pydantic-core parses and validates in one pass, no Python ``json`` step). Fields are strict where
a silent coercion would hide a producer bug: ids must be JSON strings (``123`` is not ``"123"``),
numbers must be JSON numbers (``"9.99"`` is rejected; an int is fine where a float is expected,
and a number without a fraction, ``2.0``, is fine where an int is expected). Every field read is
size-limited (``MAX_*`` below). Unknown extra fields are ignored, so producers can add fields without
breaking us.

The JSON Schemas exported from these models (schemas/json) accept exactly what ``decode_event``
accepts; tests/unit/test_schemas_agreement_corpus.py checks it and docs/contracts.md lists the one
exception (NaN/Infinity literals, which are not JSON).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .ids import EmailSha256, PhoneSha256

# -- names: defined here once ---------------------------------------------------------------------

Source = Literal["clickstream", "pos", "orders"]
SOURCES: tuple[Source, ...] = get_args(Source)
"""The source names, in a stable order (also the ``source`` value of a canonical event)."""

ClickType = Literal["page_view", "product_view", "search", "add_to_cart", "remove_from_cart",
                    "checkout_start", "login"]
CLICK_TYPES: tuple[ClickType, ...] = get_args(ClickType)
"""clickstream ``type`` values."""
PosType = Literal["sale", "return"]
POS_TYPES: tuple[PosType, ...] = get_args(PosType)
"""pos ``type`` values."""
OrderStatus = Literal["created", "paid", "shipped", "cancelled", "refunded"]
ORDER_STATUSES: tuple[OrderStatus, ...] = get_args(OrderStatus)
"""orders ``status`` values."""
OrderChannel = Literal["web", "app", "mini_program", "marketplace"]
ORDER_CHANNELS: tuple[OrderChannel, ...] = get_args(OrderChannel)
"""orders ``channel`` values."""

# -- size limits ---------------------------------------------------------------------------------
# Every field the models read is bounded, so a valid event can never carry megabytes into the
# canonical event, customer state or Redis. String limits count characters (Unicode code points,
# what JSON Schema's maxLength counts), so a limit of N is at most 4*N bytes of UTF-8. Over a limit
# the event is rejected (reason invalid_field, the message names the field), never truncated.
# Fields the models ignore are not limited here: the whole record is bounded by Kafka.

MAX_ID_CHARS = 256
"""Identifiers: event_id, user_id, anonymous_id, session_id, member_id, store_id, order_id, sku."""
MAX_LABEL_CHARS = 256
"""Short labels kept per customer (distinct categories) or used as values: category, payment_method,
clickstream channel."""
MAX_QUERY_CHARS = 4096
"""A search query (clickstream ``query``)."""
MAX_URL_CHARS = 8192
"""A page URL (clickstream ``url``): 8 KiB, the request-line limit of common HTTP servers."""
MAX_ITEMS = 1000
"""Line items of one POS ticket or order."""
MAX_TS_CHARS = 64
"""An RFC 3339 ``ts`` string."""
MAX_MONEY = 1e12
"""No retail amount is larger; beyond it a value is a unit or encoding bug (and sums stay exact)."""
MAX_QTY = 1_000_000
"""Units of one line item."""

# -- timestamps ----------------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_TS_YEAR = 2001
MAX_TS_YEAR = 2200
MIN_TS_MS = (datetime(MIN_TS_YEAR, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)
"""978307200000 = 2001-01-01T00:00:00Z, the smallest epoch-milliseconds ``ts``. Any smaller number is
a unit bug: 1796001968 is epoch *seconds* (2026-11-30), which read as milliseconds is 1970-01-21."""
MAX_TS_MS = (datetime(MAX_TS_YEAR + 1, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1) - 1
"""7289654399999 = 2200-12-31T23:59:59.999Z: anything later is a unit bug (micro/nanoseconds), not a date."""

TIMESTAMP_ERROR = "bad_timestamp"
"""pydantic error type raised by the ``ts`` validator (schemas.decode maps it to reason bad_timestamp)."""

# RFC 3339 date-time with an offset, written years MIN_TS_YEAR..MAX_TS_YEAR, real calendar dates
# (leap years included), hours 00-23, no leap second, any number of fraction digits, and a
# space allowed instead of "T" (RFC 3339 section 5.6 note). This one pattern is both what the
# decoder checks (re.fullmatch) and the ``pattern`` of the JSON Schema, so the two cannot differ.
# ASCII classes only ([0-9], not \d: Python's \d also matches other scripts' digits).
_YEAR = r"(?:200[1-9]|20[1-9][0-9]|21[0-9][0-9]|2200)"
_LEAP_YEAR = r"(?:2[01](?:0[48]|[2468][048]|[13579][26]))"  # 2004..2196; 2100 and 2200 are not leap
_MONTH_DAY = (r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
              r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
              r"|02-(?:0[1-9]|1[0-9]|2[0-8]))")
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
_OFFSET = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
TS_PATTERN = rf"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)[Tt ]{_TIME}{_OFFSET}$"
"""The accepted ``ts`` strings (also the JSON Schema ``pattern``)."""
_TS_STRICT = re.compile(TS_PATTERN)
# Only to parse a string _TS_STRICT accepted, and to explain why one was rejected.
_TS_SHAPE = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})[Tt ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})"
    r"(?:\.(?P<frac>[0-9]+))?(?P<offset>[Zz]|(?P<sign>[+-])(?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))?"
)


def _ts_error(message: str) -> PydanticCustomError:
    return PydanticCustomError(TIMESTAMP_ERROR, message)


def _ms_to_datetime(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def datetime_to_ms(dt: datetime) -> int:
    """Epoch milliseconds of an aware datetime (sub-millisecond digits are floored)."""
    return (dt - EPOCH) // timedelta(milliseconds=1)


def _epoch_ms(value: int) -> datetime:
    if value < 0:
        raise _ts_error(f"ts {value} is negative: epoch milliseconds out of range "
                        f"(years {MIN_TS_YEAR}..{MAX_TS_YEAR})")
    if value < MIN_TS_MS:
        raise _ts_error(f"ts {value} is before {MIN_TS_YEAR} as epoch milliseconds: epoch seconds?")
    if value > MAX_TS_MS:
        raise _ts_error(f"ts {value} is after {MAX_TS_YEAR} as epoch milliseconds: out of range; "
                        "microseconds or nanoseconds?")
    return _ms_to_datetime(value)


def _rfc3339(value: str) -> datetime:
    if len(value) > MAX_TS_CHARS:
        raise _ts_error("timestamp string is too long to be RFC 3339")
    m = _TS_SHAPE.fullmatch(value)
    if m is None:
        raise _ts_error("timestamp must be RFC 3339, e.g. 2026-01-31T12:00:00Z, or epoch milliseconds")
    if m["offset"] is None:
        raise _ts_error("timestamp needs a timezone offset")
    if not MIN_TS_YEAR <= int(m["y"]) <= MAX_TS_YEAR:
        raise _ts_error(f"timestamp out of range (years {MIN_TS_YEAR}..{MAX_TS_YEAR})")
    if _TS_STRICT.fullmatch(value) is None:
        raise _ts_error("timestamp is not a valid date/time")
    return _ms_to_datetime(_shape_ms(m))


def rfc3339_ms(value: str) -> int | None:
    """Epoch milliseconds of a ``ts`` string the models accept (TS_PATTERN), None for any other
    (``schemas.fast_decode``; the models say why)."""
    if len(value) > MAX_TS_CHARS or _TS_STRICT.fullmatch(value) is None:
        return None
    m = _TS_SHAPE.fullmatch(value)
    return None if m is None else _shape_ms(m)


_EPOCH_ORDINAL = EPOCH.toordinal()


def _shape_ms(m: re.Match[str]) -> int:
    """Epoch milliseconds of a valid date-time (integer arithmetic: datetime and timedelta objects
    took ~8 µs per event)."""
    y, mo, d, h, mi, s, frac, _, sign, oh, om = m.groups()
    seconds = ((date(int(y), int(mo), int(d)).toordinal() - _EPOCH_ORDINAL) * 86_400
               + int(h) * 3600 + int(mi) * 60 + int(s))
    if sign is not None:
        offset = int(oh) * 3600 + int(om) * 60
        seconds += -offset if sign == "+" else offset
    return seconds * 1000 + (int(frac[:3].ljust(3, "0")) if frac else 0)


def _parse_ts(value: Any) -> datetime:
    """``ts``: an RFC 3339 string with an offset (TS_PATTERN), or epoch milliseconds as a JSON
    number without a fraction, MIN_TS_MS..MAX_TS_MS."""
    # bool is an int subclass; JSON true/false is never a timestamp.
    if isinstance(value, bool):
        raise _ts_error("timestamp must be an RFC 3339 string or epoch milliseconds (integer), not a boolean")
    if isinstance(value, int):
        return _epoch_ms(value)
    if isinstance(value, float):
        # JSON has one number type: 1769857200250.0 and 1.76985720025e12 are the integer
        # 1769857200250 (as for JSON Schema's "integer"); a fraction of a millisecond is not.
        if not value.is_integer():
            raise _ts_error("epoch milliseconds must be a whole number")
        return _epoch_ms(int(value))
    if isinstance(value, str):
        return _rfc3339(value)
    if isinstance(value, datetime):
        # Python callers (tests, replays) may pass a datetime; the same offset and range rules apply.
        if value.tzinfo is None or value.utcoffset() is None:
            raise _ts_error("timestamp needs a timezone offset")
        ms = datetime_to_ms(value)
        if not MIN_TS_MS <= ms <= MAX_TS_MS:
            raise _ts_error(f"timestamp out of range (years {MIN_TS_YEAR}..{MAX_TS_YEAR})")
        return _ms_to_datetime(ms)
    raise _ts_error("timestamp must be an RFC 3339 string or epoch milliseconds (integer)")


Timestamp = Annotated[
    datetime,
    PlainValidator(_parse_ts),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "maxLength": MAX_TS_CHARS,
                    "pattern": TS_PATTERN,
                    # Python's re (which some validators use for "pattern") lets "$" match before
                    # a final newline; ECMA-262 does not. This keeps both readings the same.
                    "not": {"pattern": "\n"},
                    "description": f"RFC 3339 date-time with a timezone offset (T or a space between date and "
                                   f"time), written year {MIN_TS_YEAR}..{MAX_TS_YEAR}",
                },
                {
                    "type": "integer",
                    "minimum": MIN_TS_MS,
                    "maximum": MAX_TS_MS,
                    "description": f"epoch milliseconds ({MIN_TS_YEAR}-01-01 .. {MAX_TS_YEAR}-12-31); "
                                   "a smaller number is probably epoch seconds and is rejected",
                },
            ],
            "description": "Business time of the event (kept as an aware UTC datetime, ms precision).",
        },
        mode="validation",
    ),
]
"""Event time: parsed to an aware UTC datetime truncated to whole milliseconds."""


def _integral(value: Any) -> Any:
    # JSON has one number type: 2.0 is the integer 2 (JSON Schema's "integer" says so too).
    if type(value) is float and value.is_integer():
        return int(value)
    return value


Id = Annotated[str, Field(strict=True, min_length=1, max_length=MAX_ID_CHARS)]
"""An identifier: a non-empty JSON string (a JSON number is rejected, not coerced), at most MAX_ID_CHARS."""
IdText = Annotated[str, Field(strict=True, max_length=MAX_ID_CHARS)]
"""An id-like string that may be empty (session_id, sku)."""
Label = Annotated[str, Field(strict=True, max_length=MAX_LABEL_CHARS)]
QueryText = Annotated[str, Field(strict=True, max_length=MAX_QUERY_CHARS)]
Url = Annotated[str, Field(strict=True, max_length=MAX_URL_CHARS)]
Money = Annotated[float, Field(strict=True, ge=0, le=MAX_MONEY, allow_inf_nan=False)]
"""A non-negative finite JSON number (ints accepted), at most MAX_MONEY."""
Number = Annotated[float, Field(strict=True, ge=-MAX_MONEY, le=MAX_MONEY, allow_inf_nan=False)]
Quantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QTY), BeforeValidator(_integral)]
"""A JSON number without a fraction (2 or 2.0, not 2.5 or "2"), 1..MAX_QTY."""
Currency = Annotated[
    str,
    # min/max length too: a validator whose regex "$" matches before a final newline still
    # rejects "EUR\n".
    Field(strict=True, min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$",
          description="ISO 4217 code; normalised to upper case"),
    AfterValidator(str.upper),
]


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

    sku: IdText
    category: Label
    qty: Quantity
    unit_price: Money


# A JSON Schema "required" only says the key is present; the decoder wants a non-null id.
_IDENTITY_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"required": [name], "properties": {name: {"type": "string"}}} for name in ("user_id", "anonymous_id")
    ],
}


class ClickstreamEvent(_Event):
    """A web/app interaction. Identifies the visitor by ``user_id`` (logged in) and/or ``anonymous_id``
    (at least one of them a string)."""

    user_id: Id | None = None
    anonymous_id: Id | None = None
    session_id: IdText
    type: ClickType
    sku: IdText | None = None
    category: Label | None = None
    price: Money | None = None
    url: Url | None = None
    query: QueryText | None = None
    channel: Label | None = None
    """Not in the producer contract; carried to the canonical event when a producer sends it."""

    model_config = ConfigDict(json_schema_extra=_IDENTITY_SCHEMA)

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
    items: Annotated[list[LineItem], Field(min_length=1, max_length=MAX_ITEMS)]
    total: Number
    """As sent; the canonical ``amount`` is its absolute value (``type`` tells sale from return)."""
    payment_method: Label
    email_sha256: EmailSha256 | None = None
    """Hashed e-mail of the buyer when the till knows it (never a raw address): links the ticket to
    the member card or online account (docs/identity.md)."""
    phone_sha256: PhoneSha256 | None = None
    """Hashed phone number of the buyer, as ``email_sha256``."""


class OrderEvent(_Event):
    """An e-commerce order status change."""

    order_id: Id
    user_id: Id
    status: OrderStatus
    amount: Money
    currency: Currency
    channel: OrderChannel
    items: Annotated[list[LineItem], Field(max_length=MAX_ITEMS)]
    email_sha256: EmailSha256 | None = None
    """Hashed e-mail of the account holder (optional; never a raw address, docs/identity.md)."""
    phone_sha256: PhoneSha256 | None = None
    """Hashed phone number of the account holder (optional)."""


SourceEvent = ClickstreamEvent | PosEvent | OrderEvent

MODEL_BY_SOURCE: dict[str, type[ClickstreamEvent] | type[PosEvent] | type[OrderEvent]] = dict(
    zip(SOURCES, (ClickstreamEvent, PosEvent, OrderEvent), strict=True)
)
"""Source name -> input model (keys in SOURCES order)."""
