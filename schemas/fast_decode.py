"""A fast path for the common source record: the canonical event ``decode_event`` + ``to_canonical``
would build, from ``orjson.loads`` and plain checks, or None to let them decide.

Ingest validates every record; with pydantic building a model first and ``to_canonical`` copying it
into a dict, that was ~17 µs per event (issue 9). Most records are plain: ids as strings, ``ts`` as
epoch milliseconds, numbers in range. For those, this module checks the same constraints as
``schemas.events`` by hand and builds the canonical dict directly (~4 µs).

The contract, checked by tests/unit/test_fast_decode.py against the models on generated and mutated
records: ``fast_canonical`` returns either None or exactly what the models and ``to_canonical``
give (same keys, order, values and types) and never accepts a record the models reject. Anything it
is not sure of — a float ``ts`` or quantity, a contact hash in upper case, a missing field, a
value out of range, JSON orjson refuses — returns None, and ingest takes the model path, which also
writes the dead-letter reason. So this module never rejects and never explains: it only accepts.
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

import orjson

from .canonical import POS_CHANNEL
from .events import (
    CLICK_TYPES,
    MAX_ID_CHARS,
    MAX_ITEMS,
    MAX_LABEL_CHARS,
    MAX_MONEY,
    MAX_QTY,
    MAX_QUERY_CHARS,
    MAX_TS_MS,
    MAX_URL_CHARS,
    MIN_TS_MS,
    ORDER_CHANNELS,
    ORDER_STATUSES,
    POS_TYPES,
    rfc3339_ms,
)
from .ids import CONTACT_HASH_CHARS, CONTACT_TYPES, IdType

IdPairs: TypeAlias = list[tuple[IdType, str]]
"""The typed ids an event carries, as ``schemas.identity.event_id_values`` gives them."""

_CLICK_TYPES: Final = frozenset(CLICK_TYPES)
_POS_TYPES: Final = frozenset(POS_TYPES)
_ORDER_STATUSES: Final = frozenset(ORDER_STATUSES)
_ORDER_CHANNELS: Final = frozenset(ORDER_CHANNELS)
_LOWER_HEX: Final = frozenset("0123456789abcdef")
_MAX_BRACKETS: Final = 128
"""pydantic-core rejects arrays/objects nested deeper than 200 levels (docs/contracts.md), orjson
reads 1,024: a record with more brackets than this (even in strings) is left to the models."""


class _Unsure(Exception):
    """A value this path does not vouch for: the models decide."""


def fast_canonical(source: str, raw: bytes, src_ts_ms: int) -> tuple[dict[str, Any], IdPairs] | None:
    """The canonical event of a plain record of ``source`` and its typed ids, or None (not an error:
    the record is not plain enough for this path; ``decode_event`` decides)."""
    if raw.count(b"[") + raw.count(b"{") > _MAX_BRACKETS:
        return None  # maybe nested deeper than the models' parser allows (orjson allows more)
    try:
        obj = orjson.loads(raw)
    except (ValueError, TypeError):  # orjson.JSONDecodeError is a ValueError
        return None
    if type(obj) is not dict:
        return None
    try:
        if source == "clickstream":
            return _clickstream(obj, int(src_ts_ms))
        if source == "pos":
            return _pos(obj, int(src_ts_ms))
        if source == "orders":
            return _orders(obj, int(src_ts_ms))
    except (_Unsure, KeyError):
        return None
    return None


# -- the sources, in the field order of to_canonical ----------------------------------------------

def _clickstream(obj: dict[str, Any], src_ts_ms: int) -> tuple[dict[str, Any], IdPairs]:
    event_id, ts_ms = _common(obj)
    user_id = _opt_id(obj.get("user_id"))
    anonymous_id = _opt_id(obj.get("anonymous_id"))
    if user_id is None and anonymous_id is None:
        raise _Unsure  # the models say why (missing_identity)
    session_id = _text(obj["session_id"], MAX_ID_CHARS)
    type_ = obj["type"]
    if type(type_) is not str or type_ not in _CLICK_TYPES:
        raise _Unsure
    sku = _opt_text(obj.get("sku"), MAX_ID_CHARS)
    category = _opt_text(obj.get("category"), MAX_LABEL_CHARS)
    price = obj.get("price")
    amount = None if price is None else _money(price, 0.0) + 0.0
    url = _opt_text(obj.get("url"), MAX_URL_CHARS)
    query = _opt_text(obj.get("query"), MAX_QUERY_CHARS)
    channel = _opt_text(obj.get("channel"), MAX_LABEL_CHARS)
    ids: IdPairs = []
    if user_id is not None:
        ids.append(("user", user_id))
    if anonymous_id is not None:
        ids.append(("anonymous", anonymous_id))
    return {
        "event_id": event_id, "source": "clickstream", "type": type_, "customer_id": user_id,
        "ts_ms": ts_ms, "src_ts_ms": src_ts_ms, "amount": amount, "currency": None,
        "skus": [sku] if sku else [], "categories": [category] if category else [], "channel": channel,
        "store_id": None, "session_id": session_id, "order_id": None, "payment_method": None,
        "quantity": None, "query": query, "url": url,
    }, ids


def _pos(obj: dict[str, Any], src_ts_ms: int) -> tuple[dict[str, Any], IdPairs]:
    event_id, ts_ms = _common(obj)
    store_id = _id(obj["store_id"])
    member_id = _opt_id(obj.get("member_id"))
    type_ = obj["type"]
    if type(type_) is not str or type_ not in _POS_TYPES:
        raise _Unsure
    items = obj["items"]
    if type(items) is not list or not items:
        raise _Unsure
    skus, categories, quantity = _items(items)
    total = _money(obj["total"], -MAX_MONEY)
    payment_method = _text(obj["payment_method"], MAX_LABEL_CHARS)
    ids: IdPairs = [] if member_id is None else [("member", member_id)]
    _contacts(obj, ids)
    return {
        "event_id": event_id, "source": "pos", "type": type_, "customer_id": member_id,
        "ts_ms": ts_ms, "src_ts_ms": src_ts_ms, "amount": float(abs(total)) + 0.0, "currency": None,
        "skus": skus, "categories": categories, "channel": POS_CHANNEL,
        "store_id": store_id, "session_id": None, "order_id": None, "payment_method": payment_method,
        "quantity": quantity, "query": None, "url": None,
    }, ids


def _orders(obj: dict[str, Any], src_ts_ms: int) -> tuple[dict[str, Any], IdPairs]:
    event_id, ts_ms = _common(obj)
    order_id = _id(obj["order_id"])
    user_id = _id(obj["user_id"])
    status = obj["status"]
    if type(status) is not str or status not in _ORDER_STATUSES:
        raise _Unsure
    amount = _money(obj["amount"], 0.0) + 0.0
    currency = obj["currency"]
    if type(currency) is not str or len(currency) != 3 or not (currency.isascii() and currency.isalpha()):
        raise _Unsure
    channel = obj["channel"]
    if type(channel) is not str or channel not in _ORDER_CHANNELS:
        raise _Unsure
    items = obj["items"]
    if type(items) is not list:
        raise _Unsure
    skus, categories, quantity = _items(items)
    ids: IdPairs = [("user", user_id)]
    _contacts(obj, ids)
    return {
        "event_id": event_id, "source": "orders", "type": status, "customer_id": user_id,
        "ts_ms": ts_ms, "src_ts_ms": src_ts_ms, "amount": amount, "currency": currency.upper(),
        "skus": skus, "categories": categories, "channel": channel,
        "store_id": None, "session_id": None, "order_id": order_id, "payment_method": None,
        "quantity": quantity, "query": None, "url": None,
    }, ids


# -- fields --------------------------------------------------------------------------------------

def _common(obj: dict[str, Any]) -> tuple[str, int]:
    """``event_id`` and ``ts`` as epoch milliseconds (a float ``ts`` is left to the models)."""
    event_id = _id(obj["event_id"])
    ts = obj["ts"]
    t = type(ts)
    if t is int:
        if MIN_TS_MS <= ts <= MAX_TS_MS:
            return event_id, ts
    elif t is str:
        ms = rfc3339_ms(ts)
        if ms is not None:
            return event_id, ms
    raise _Unsure


def _id(value: Any) -> str:
    if type(value) is not str or not 0 < len(value) <= MAX_ID_CHARS:
        raise _Unsure
    return value


def _opt_id(value: Any) -> str | None:
    return None if value is None else _id(value)


def _text(value: Any, limit: int) -> str:
    if type(value) is not str or len(value) > limit:
        raise _Unsure
    return value


def _opt_text(value: Any, limit: int) -> str | None:
    return None if value is None else _text(value, limit)


def _money(value: Any, low: float) -> float:
    """A JSON number (int or float, not a bool) in ``low``..MAX_MONEY; returned as a float."""
    t = type(value)
    if t is float:
        if not low <= value <= MAX_MONEY:  # NaN and the infinities fail it too
            raise _Unsure
        return value
    if t is int and low <= value <= MAX_MONEY:
        return float(value)
    raise _Unsure


def _items(items: list[Any]) -> tuple[list[str], list[str], int]:
    """Line items: distinct non-empty skus and categories in first-seen order, and the units."""
    if len(items) > MAX_ITEMS:
        raise _Unsure
    skus: dict[str, None] = {}
    categories: dict[str, None] = {}
    quantity = 0
    for item in items:
        if type(item) is not dict:
            raise _Unsure
        sku = _text(item["sku"], MAX_ID_CHARS)
        category = _text(item["category"], MAX_LABEL_CHARS)
        qty = item["qty"]
        if type(qty) is not int or not 1 <= qty <= MAX_QTY:
            raise _Unsure  # 2.0 is a valid quantity too: the models take it
        _money(item["unit_price"], 0.0)
        if sku:
            skus[sku] = None
        if category:
            categories[category] = None
        quantity += qty
    return list(skus), list(categories), quantity


def _contacts(obj: dict[str, Any], ids: IdPairs) -> None:
    """The hashed contact ids, when they are 64 lower-case hex characters (other cases: the models)."""
    for id_type in CONTACT_TYPES:
        value = obj.get(id_type)
        if value is None:
            continue
        if type(value) is not str or len(value) != CONTACT_HASH_CHARS or not _LOWER_HEX.issuperset(value):
            raise _Unsure
        ids.append((id_type, value))
