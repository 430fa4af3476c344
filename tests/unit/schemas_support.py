"""Valid events of the three sources and the JSON bytes the schemas tests decode
(tests/unit/test_schemas_decode.py and test_schemas_errors.py)."""

from __future__ import annotations

import json
from typing import Any

TS = "2026-01-31T12:00:00.250+01:00"
TS_MS = 1769857200250  # 2026-01-31T11:00:00.250Z

CLICK: dict[str, Any] = {
    "event_id": "c-1", "ts": TS, "user_id": "u-1", "anonymous_id": "anon-9", "session_id": "s-1",
    "type": "add_to_cart", "sku": "SKU-1", "category": "electronics", "price": 19.99,
    "url": "https://shop.example/p/1", "query": None,
}
POS: dict[str, Any] = {
    "event_id": "p-1", "ts": TS, "store_id": "st-7", "member_id": "m-1", "type": "sale",
    "items": [
        {"sku": "SKU-1", "category": "electronics", "qty": 2, "unit_price": 10},
        {"sku": "SKU-2", "category": "grocery", "qty": 1, "unit_price": 3.5},
        {"sku": "SKU-1", "category": "electronics", "qty": 1, "unit_price": 10},
    ],
    "total": 33.5, "payment_method": "card",
}
ORDER: dict[str, Any] = {
    "event_id": "o-1", "ts": TS, "order_id": "ord-1", "user_id": "u-1", "status": "paid", "amount": 120,
    "currency": "eur", "channel": "app",
    "items": [{"sku": "SKU-3", "category": "fashion", "qty": 3, "unit_price": 40}],
}
VALID = {"clickstream": CLICK, "pos": POS, "orders": ORDER}


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def with_(source: str, **changes: Any) -> bytes:
    return raw({**VALID[source], **changes})


def without(source: str, *keys: str) -> bytes:
    return raw({k: v for k, v in VALID[source].items() if k not in keys})
