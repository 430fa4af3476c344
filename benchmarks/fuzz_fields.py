"""Fields of the fuzz payloads (benchmarks/fuzz.py): the valid base event of each source, the tables
of bad values per field, and the helpers that write one value (raw bytes too) into an event."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson

MB = 1024 * 1024
TOMBSTONE = None  # a record with a null value

Payload = tuple[bytes | None, bytes | None]  # (key, value)


@dataclass(frozen=True)
class Ctx:
    rng: random.Random
    i: int
    source: str
    now_ms: int


def _ts_ok(c: Ctx) -> int:
    return c.now_ms - c.rng.randrange(1, 3_600_000)


def base_event(c: Ctx, *, customer: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    """A valid event of ``c.source``."""
    cust = customer or f"fz-c{c.rng.randrange(1000):04d}"
    eid = event_id or f"fz-{c.i}"
    sku = f"sku-{c.rng.randrange(50)}"  # draw order matters: --seed reproduces the published run
    qty, price = c.rng.randrange(1, 4), round(c.rng.uniform(1, 200), 2)
    item: dict[str, Any] = {"sku": sku, "category": "shoes", "qty": qty, "unit_price": price}
    if c.source == "clickstream":
        return {"event_id": eid, "ts": _ts_ok(c), "user_id": cust, "session_id": f"s{c.rng.randrange(99)}",
                "type": "product_view", "sku": item["sku"], "category": "shoes", "price": item["unit_price"]}
    if c.source == "pos":
        return {"event_id": eid, "ts": _ts_ok(c), "store_id": "s01", "member_id": cust, "type": "sale",
                "items": [item], "total": price * qty, "payment_method": "card"}
    return {"event_id": eid, "ts": _ts_ok(c), "order_id": f"o{c.i}", "user_id": cust, "status": "paid",
            "amount": price * qty, "currency": "USD", "channel": "web", "items": [item]}


REQUIRED = {
    "clickstream": ("event_id", "ts", "session_id", "type", "user_id"),  # user_id: the only identity here
    "pos": ("event_id", "ts", "store_id", "type", "items", "total", "payment_method"),
    "orders": ("event_id", "ts", "order_id", "user_id", "status", "amount", "currency", "channel", "items"),
}
ITEM = {"sku": "a", "category": "b", "qty": 1, "unit_price": 1.0}
WRONG_TYPES: dict[str, list[tuple[str, Any]]] = {
    "*": [("event_id", 123), ("event_id", True), ("event_id", []), ("event_id", {}), ("event_id", 1.5),
          ("event_id", None), ("ts", {}), ("ts", []), ("ts", None)],
    "clickstream": [("user_id", 42), ("session_id", 7), ("session_id", None), ("type", ["page_view"]),
                    ("sku", 5), ("price", "9.99"), ("url", {}), ("query", 1), ("category", False)],
    "pos": [("store_id", 1), ("member_id", 99), ("items", ITEM), ("items", "a"), ("items", [1]),
            ("items", [{**ITEM, "qty": "1"}]), ("items", [{**ITEM, "qty": 1.5}]), ("items", [{**ITEM, "qty": True}]),
            ("items", [{**ITEM, "unit_price": "1"}]), ("items", None), ("total", "10"), ("total", None),
            ("payment_method", 0)],
    "orders": [("order_id", 1), ("user_id", None), ("amount", "10"), ("currency", 840), ("channel", 1),
               ("items", None), ("status", True), ("items", [{"sku": "a"}])],
}
EMPTY_VALUES: dict[str, list[tuple[str, Any]]] = {
    "*": [("event_id", ""), ("ts", "")],
    "clickstream": [("user_id", ""), ("type", "")],
    "pos": [("store_id", ""), ("member_id", ""), ("items", []), ("type", "")],
    "orders": [("order_id", ""), ("user_id", ""), ("currency", ""), ("status", ""), ("channel", "")],
}
UNKNOWN_ENUMS: dict[str, list[tuple[str, Any]]] = {
    "clickstream": [("type", v) for v in ("purchase", "PAGE_VIEW", "page-view", " page_view", "page_view\u0000")],
    "pos": [("type", v) for v in ("refund", "SALE", "void", "sale ")],
    "orders": [("status", v) for v in ("PAID", "delivered", "paid ")]
    + [("channel", v) for v in ("store", "WEB", "pos")],
}
OUT_OF_RANGE: dict[str, list[tuple[str, Any]]] = {
    "clickstream": [("price", -0.01), ("price", -1e308)],
    "pos": [("items", [{**ITEM, "qty": 0}]), ("items", [{**ITEM, "qty": -1}]), ("items", [{**ITEM, "unit_price": -1}])],
    "orders": [("amount", -0.01), ("currency", "US"), ("currency", "USDX"), ("currency", "U$D"),
               ("items", [{**ITEM, "qty": 0}])],
}
RAW = "\u2063RAW\u2063"  # placeholder replaced by raw bytes after encoding (NaN, huge literals)
BAD_TS: list[Any] = [
    -1, -1_700_000_000_000, 2**63, 2**64, -(2**63), 7_289_654_400_000, 253_402_300_800_000,  # 2201-01-01, year 10000
    "10000-01-01T00:00:00Z", "+10000-01-01T00:00:00Z", "yesterday", "now", "2026-11-27T08:00:00",
    "2026-11-27 08:00:00", "2026-11-27", "1969-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "2026-02-30T00:00:00Z",
    "2026-06-30T23:59:60Z", "2026-11-27T08:00:00+99:99", "2026-11-27T25:00:00Z", "9" * 100, "1700000000000",
    "\uff12\uff10\uff12\uff16-11-27T08:00:00Z",  # full-width digits
    "2026-11-27T08:00:00.123456789012345678901234567890123456789012345678Z",
    1.7e12 + 0.5, 1_796_001_968, True, False, b"NaN", b"Infinity", b"-Infinity", b"1e400",
]
HUGE_NUMBERS: dict[str, list[str]] = {
    "clickstream": ["price"], "pos": ["total", "items.unit_price", "items.qty"], "orders": ["amount", "items.qty"],
}


def dumps_raw(obj: dict[str, Any], raw: bytes | None = None) -> bytes:
    out = orjson.dumps(obj)
    return out if raw is None else out.replace(orjson.dumps(RAW), raw, 1)


def with_field(c: Ctx, path: str, value: Any, ev: dict[str, Any] | None = None) -> bytes:
    ev = ev if ev is not None else base_event(c)
    raw = None
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        value = str(value).encode()  # orjson stops at 64 bits
    if isinstance(value, bytes):
        raw, value = value, RAW
    if path.startswith("items."):
        ev["items"] = [{**ITEM, path.split(".", 1)[1]: value}]
    else:
        ev[path] = value
    return dumps_raw(ev, raw)


def pick(c: Ctx, table: dict[str, list[tuple[str, Any]]]) -> tuple[str, Any]:
    return c.rng.choice(table.get("*", []) + table.get(c.source, []))
