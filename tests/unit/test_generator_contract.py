"""The synthetic retail event generator against the source-topic input contract (no network): valid
events keep it (keys, event ids, every type), broken ones break it in every kind at the configured
ratio, and schemas.decode gives each broken kind its dead-letter reason.

The events are checked against the source-topic input contract with a small hand-written
validator, deliberately independent of ``schemas/`` so the two can catch each other's mistakes.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest

from schemas.decode import EventDecodeError, decode_event
from streams.tools.generator import (
    BAD_KINDS,
    CATEGORIES,
    CLICK_TYPES,
    ORDER_CHANNELS,
    ORDER_STATUSES,
    PAYMENT_METHODS,
    POS_TYPES,
    SOURCES,
    STORES,
    GeneratedEvent,
    RetailGenerator,
)

from .generator_support import START_MS, _decode, _ts_ms

N = 20_000

_CLICK_KEYS = {"event_id", "ts", "type", "session_id", "user_id", "anonymous_id"}
_CLICK_OPTIONAL = {"sku", "category", "price", "url", "query"}
_POS_KEYS = {"event_id", "ts", "store_id", "member_id", "type", "items", "total", "payment_method"}
_ORDER_KEYS = {"event_id", "ts", "order_id", "user_id", "status", "amount", "currency", "channel", "items"}
_ITEM_KEYS = {"sku", "category", "qty", "unit_price"}


def _is_str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _items_ok(items: Any) -> bool:
    if not isinstance(items, list) or not items:
        return False
    for it in items:
        if not isinstance(it, dict) or set(it) != _ITEM_KEYS:
            return False
        if not _is_str(it["sku"]) or it["category"] not in CATEGORIES:
            return False
        if not isinstance(it["qty"], int) or isinstance(it["qty"], bool) or it["qty"] < 1:
            return False
        if not _is_num(it["unit_price"]) or it["unit_price"] <= 0:
            return False
    return True


def contract_errors(ev: GeneratedEvent) -> list[str]:
    """Why ``ev`` violates the input contract of its source (empty list = valid)."""
    try:
        doc = orjson.loads(ev.value)
    except orjson.JSONDecodeError as exc:
        return [f"not JSON / UTF-8: {exc}"]
    if not isinstance(doc, dict):
        return [f"not an object: {type(doc).__name__}"]
    errors = []
    if not _is_str(doc.get("event_id")):
        errors.append("event_id")
    if _ts_ms(doc.get("ts")) is None:
        errors.append("ts")
    if ev.source == "clickstream":
        if not _CLICK_KEYS <= set(doc) <= _CLICK_KEYS | _CLICK_OPTIONAL:
            errors.append(f"keys {sorted(doc)}")
        if doc.get("type") not in CLICK_TYPES:
            errors.append("type")
        if not _is_str(doc.get("session_id")) or not _is_str(doc.get("anonymous_id")):
            errors.append("session_id/anonymous_id")
        if doc.get("user_id") is not None and not _is_str(doc.get("user_id")):
            errors.append("user_id")
        for field in ("sku", "url", "query"):
            if field in doc and not _is_str(doc[field]):
                errors.append(field)
        if "category" in doc and doc["category"] not in CATEGORIES:
            errors.append("category")
        if "price" in doc and (not _is_num(doc["price"]) or doc["price"] <= 0):
            errors.append("price")
    elif ev.source == "pos":
        if set(doc) != _POS_KEYS:
            errors.append(f"keys {sorted(doc)}")
        if doc.get("store_id") not in STORES:
            errors.append("store_id")
        if doc.get("member_id") is not None and not _is_str(doc.get("member_id")):
            errors.append("member_id")
        if doc.get("type") not in POS_TYPES:
            errors.append("type")
        if not _items_ok(doc.get("items")):
            errors.append("items")
        elif doc.get("total") != pytest.approx(sum(i["qty"] * i["unit_price"] for i in doc["items"])):
            errors.append("total")
        if doc.get("payment_method") not in PAYMENT_METHODS:
            errors.append("payment_method")
    elif ev.source == "orders":
        if set(doc) != _ORDER_KEYS:
            errors.append(f"keys {sorted(doc)}")
        if not _is_str(doc.get("order_id")) or not _is_str(doc.get("user_id")):
            errors.append("order_id/user_id")
        if doc.get("status") not in ORDER_STATUSES:
            errors.append("status")
        if doc.get("channel") not in ORDER_CHANNELS:
            errors.append("channel")
        if not (isinstance(doc.get("currency"), str) and re.fullmatch(r"[A-Z]{3}", doc["currency"])):
            errors.append("currency")
        if not _items_ok(doc.get("items")):
            errors.append("items")
        elif doc.get("amount") != pytest.approx(sum(i["qty"] * i["unit_price"] for i in doc["items"])):
            errors.append("amount")
    else:
        errors.append(f"unknown source {ev.source}")
    return errors


def bad_kind_of(ev: GeneratedEvent) -> str:
    """Classify a broken event by looking at its bytes only."""
    try:
        ev.value.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    try:
        doc = orjson.loads(ev.value)
    except orjson.JSONDecodeError:
        return "invalid_json"
    if isinstance(doc, list):
        return "json_array"
    if "event_id" not in doc:
        return "missing_event_id"
    if doc["ts"] == "yesterday":
        return "bad_ts"
    if doc.get("type", doc.get("status")) not in (*CLICK_TYPES, *POS_TYPES, *ORDER_STATUSES):
        return "unknown_type"
    if isinstance(doc.get("user_id"), int) or any(isinstance(i["qty"], str) for i in doc.get("items", [])):
        return "wrong_type"
    return "?"


@pytest.fixture(scope="module")
def events() -> list[GeneratedEvent]:
    return RetailGenerator(seed=7, start_ms=START_MS, bad_ratio=0.05).take(N)


def test_valid_events_match_contract(events: list[GeneratedEvent]) -> None:
    valid = [e for e in events if e.valid]
    problems = [(e.value, errs) for e in valid if (errs := contract_errors(e))]
    assert problems == []
    assert {e.source for e in valid} == set(SOURCES)
    docs = [_decode(e) for e in valid]
    assert {d["type"] for d, e in zip(docs, valid, strict=True) if e.source == "clickstream"} == set(CLICK_TYPES)
    assert {d["type"] for d, e in zip(docs, valid, strict=True) if e.source == "pos"} == set(POS_TYPES)
    assert {d["status"] for d, e in zip(docs, valid, strict=True) if e.source == "orders"} == set(ORDER_STATUSES)
    assert {d["channel"] for d, e in zip(docs, valid, strict=True) if e.source == "orders"} == set(ORDER_CHANNELS)


def test_keys_are_customer_ids(events: list[GeneratedEvent]) -> None:
    for e in events:
        if not e.valid:
            continue
        doc = _decode(e)
        who = doc["member_id"] if e.source == "pos" else doc["user_id"]
        assert e.key == (None if who is None else who.encode())
        if who is not None:
            assert re.fullmatch(r"c\d{6}", who)
    g = RetailGenerator(seed=1, start_ms=START_MS, customers=1_500_000, customer_prefix="cust-")
    assert all(re.fullmatch(rb"cust-\d{7}", e.key) for e in g.take(500) if e.key is not None)


def test_event_ids_unique_and_formatted(events: list[GeneratedEvent]) -> None:
    ids = [_decode(e)["event_id"] for e in events if e.valid]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"(clickstream|pos|orders)-7-\d+", i) for i in ids)
    for e, i in zip((e for e in events if e.valid), ids, strict=True):
        assert i.startswith(e.source + "-")


def test_bad_ratio_and_every_bad_kind(events: list[GeneratedEvent]) -> None:
    bad = [e for e in events if not e.valid]
    assert 0.04 < len(bad) / len(events) < 0.06
    for e in bad:
        assert contract_errors(e), e.value  # really invalid
        assert bad_kind_of(e) == e.bad_kind, e.value
    assert set(Counter(e.bad_kind for e in bad)) == set(BAD_KINDS)
    by_source: dict[str, set[str]] = defaultdict(set)
    for e in bad:
        by_source[e.source].add(str(e.bad_kind))
    assert set(by_source) == set(SOURCES)
    assert all(len(kinds) == len(BAD_KINDS) for kinds in by_source.values())
    assert all(e.valid for e in RetailGenerator(seed=7, start_ms=START_MS).take(5000))


def test_qty_as_string_is_not_numeric(events: list[GeneratedEvent]) -> None:
    # "2" would be coerced to 2 by lax validators; the bad value must be rejected by any.
    qtys = [
        i["qty"]
        for e in events
        if e.bad_kind == "wrong_type" and e.source in ("pos", "orders")
        for i in _decode(e)["items"]
        if isinstance(i["qty"], str)
    ]
    assert qtys and not any(q.isdigit() for q in qtys)


def test_small_customer_base_and_argument_checks() -> None:
    evs = RetailGenerator(seed=1, start_ms=START_MS, customers=1).take(500)
    assert {e.key for e in evs} <= {b"c000000", None}
    assert all(not contract_errors(e) for e in evs)
    with pytest.raises(ValueError):
        RetailGenerator(customers=0)
    with pytest.raises(ValueError):
        RetailGenerator(bad_ratio=1.5)


# DLQ reason that schemas.decode should give each kind of broken event.
_EXPECTED_REASON = {
    "invalid_json": "invalid_json",
    "invalid_utf8": "invalid_json",
    "json_array": "not_an_object",
    "missing_event_id": "missing_field",
    "bad_ts": "bad_timestamp",
    "unknown_type": "invalid_field",
    "wrong_type": "invalid_field",
}


def test_schemas_decode_agrees(events: list[GeneratedEvent]) -> None:
    assert set(_EXPECTED_REASON) == set(BAD_KINDS)
    for e in events:
        if e.valid:
            decoded = decode_event(e.source, e.value)
            assert decoded.event_id == _decode(e)["event_id"]
            assert decoded.ts_ms == _ts_ms(_decode(e)["ts"])
        else:
            with pytest.raises(EventDecodeError) as info:
                decode_event(e.source, e.value)
            assert info.value.reason == _EXPECTED_REASON[str(e.bad_kind)], (e.value, info.value)
