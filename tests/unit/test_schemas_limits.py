"""Size limits of the source event models: every field the decoder reads is bounded, and an
over-limit event is rejected (reason invalid_field, the message names the field), never cut."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from schemas import (
    MAX_ID_CHARS,
    MAX_ITEMS,
    MAX_LABEL_CHARS,
    MAX_QUERY_CHARS,
    MAX_TS_CHARS,
    MAX_URL_CHARS,
    EventDecodeError,
    OrderEvent,
    decode_event,
)
from schemas.export import json_schemas

TS_MS = 1769857200250
ITEM: dict[str, Any] = {"sku": "SKU-1", "category": "shoes", "qty": 1, "unit_price": 10.0}
VALID: dict[str, dict[str, Any]] = {
    "clickstream": {"event_id": "c-1", "ts": TS_MS, "user_id": "u-1", "anonymous_id": "a-1", "session_id": "s-1",
                    "type": "search", "sku": "SKU-1", "category": "shoes", "price": 1.5,
                    "url": "https://shop.example/", "query": "red shoes", "channel": "web"},
    "pos": {"event_id": "p-1", "ts": TS_MS, "store_id": "st-1", "member_id": "m-1", "type": "sale",
            "items": [ITEM], "total": 10.0, "payment_method": "card"},
    "orders": {"event_id": "o-1", "ts": TS_MS, "order_id": "ord-1", "user_id": "u-1", "status": "paid",
               "amount": 10.0, "currency": "EUR", "channel": "web", "items": [ITEM]},
}

# (source, dotted field path, limit in characters): every string field a model reads.
STRING_LIMITS: list[tuple[str, str, int]] = [
    *[(src, "event_id", MAX_ID_CHARS) for src in VALID],
    ("clickstream", "user_id", MAX_ID_CHARS),
    ("clickstream", "anonymous_id", MAX_ID_CHARS),
    ("clickstream", "session_id", MAX_ID_CHARS),
    ("clickstream", "sku", MAX_ID_CHARS),
    ("clickstream", "category", MAX_LABEL_CHARS),
    ("clickstream", "channel", MAX_LABEL_CHARS),
    ("clickstream", "query", MAX_QUERY_CHARS),
    ("clickstream", "url", MAX_URL_CHARS),
    ("pos", "store_id", MAX_ID_CHARS),
    ("pos", "member_id", MAX_ID_CHARS),
    ("pos", "payment_method", MAX_LABEL_CHARS),
    ("pos", "items.0.sku", MAX_ID_CHARS),
    ("pos", "items.0.category", MAX_LABEL_CHARS),
    ("orders", "order_id", MAX_ID_CHARS),
    ("orders", "user_id", MAX_ID_CHARS),
    ("orders", "items.0.sku", MAX_ID_CHARS),
    ("orders", "items.0.category", MAX_LABEL_CHARS),
]


def with_path(source: str, path: str, value: Any) -> bytes:
    doc = json.loads(json.dumps(VALID[source]))
    *parents, last = path.split(".")
    target = doc
    for p in parents:
        target = target[int(p)] if p.isdigit() else target[p]
    target[last] = value
    return json.dumps(doc).encode()


def reject(source: str, data: bytes) -> EventDecodeError:
    with pytest.raises(EventDecodeError) as info:
        decode_event(source, data)
    return info.value


def test_limits_are_what_docs_say() -> None:
    assert (MAX_ID_CHARS, MAX_LABEL_CHARS, MAX_QUERY_CHARS, MAX_URL_CHARS, MAX_ITEMS, MAX_TS_CHARS) == (
        256, 256, 4096, 8192, 1000, 64)


def _string_properties(source: str) -> dict[str, list[dict[str, Any]]]:
    """Dotted path -> string alternatives of every string property of a source schema."""
    schema = json_schemas()[source]
    out: dict[str, list[dict[str, Any]]] = {}

    def walk(obj: dict[str, Any], prefix: str) -> None:
        for name, prop in obj["properties"].items():
            strings = [a for a in prop.get("anyOf", [prop]) if a.get("type") == "string"]
            if strings:
                out[prefix + name] = strings
            if prop.get("type") == "array":
                walk(schema["$defs"]["LineItem"], f"{prefix}{name}.0.")

    walk(schema, "")
    return out


@pytest.mark.parametrize("source", list(VALID))
def test_every_string_field_read_has_a_limit(source: str) -> None:
    """Every string property has a maxLength, and each free-form one is tested below (so a new
    field cannot forget its limit)."""
    tested = {p for s, p, _ in STRING_LIMITS if s == source}
    for path, alternatives in _string_properties(source).items():
        for alt in alternatives:
            assert "maxLength" in alt or "enum" in alt, f"{source}.{path} has no maxLength"
        if path != "ts" and not any("enum" in a or "pattern" in a for a in alternatives):
            assert path in tested, f"{source}.{path}: add it to STRING_LIMITS"


@pytest.mark.parametrize(("source", "path", "limit"), STRING_LIMITS,
                         ids=[f"{s}-{p}" for s, p, _ in STRING_LIMITS])
def test_string_at_limit_decodes_and_over_limit_is_invalid_field(source: str, path: str, limit: int) -> None:
    decode_event(source, with_path(source, path, "é" * limit))  # characters, not bytes: 2*limit bytes here
    err = reject(source, with_path(source, path, "x" * (limit + 1)))
    assert err.reason == "invalid_field"
    assert f"field '{path}': String should have at most {limit} characters (got {limit + 1})" in err.message


@pytest.mark.parametrize("field", ["event_id", "user_id", "url"])
def test_ten_megabyte_field_is_rejected_quickly_with_a_short_message(field: str) -> None:
    data = with_path("clickstream", field, "x" * 10_000_000)
    t0 = time.perf_counter()
    err = reject("clickstream", data)
    assert time.perf_counter() - t0 < 2.0
    assert err.reason == "invalid_field"
    assert f"field '{field}'" in err.message and len(err.message) <= 200


@pytest.mark.parametrize("source", ["pos", "orders"])
def test_items_limit(source: str) -> None:
    decode_event(source, with_path(source, "items", [ITEM] * MAX_ITEMS))
    for n in (MAX_ITEMS + 1, 100_000):
        err = reject(source, with_path(source, "items", [ITEM] * n))
        assert err.reason == "invalid_field"
        assert f"field 'items': List should have at most {MAX_ITEMS} items" in err.message
        assert str(n) in err.message


def test_over_limit_ts_string_is_bad_timestamp() -> None:
    ts = "2026-01-31T12:00:00." + "1" * (MAX_TS_CHARS - 21) + "Z"
    assert len(ts) == MAX_TS_CHARS
    decode_event("orders", with_path("orders", "ts", ts))
    err = reject("orders", with_path("orders", "ts", ts[:-1] + "1Z"))
    assert err.reason == "bad_timestamp" and "too long" in err.message


def test_limits_count_code_points_like_json_schema() -> None:
    # An astral character is one code point (two UTF-16 units in the JSON escape): 256 of them fit.
    emoji = "\U0001f600" * MAX_ID_CHARS
    escaped = json.dumps(VALID["orders"] | {"user_id": emoji}, ensure_ascii=True).encode()
    for data in (with_path("orders", "user_id", emoji), escaped):
        event = decode_event("orders", data)
        assert isinstance(event, OrderEvent) and event.user_id == emoji
