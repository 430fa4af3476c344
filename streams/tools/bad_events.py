"""Deliberately broken events (``bad_ratio > 0``) to exercise the pipeline's error handling.

Each bad event starts as a plausible event of a random source and then gets one defect of a
random :data:`BAD_KINDS` kind: malformed JSON or UTF-8, a missing or mistyped field, an
unparseable timestamp, an unknown event type, or a JSON array instead of an object.
"""

from __future__ import annotations

import random
from typing import Any

from streams.tools.catalog import CURRENCY, SOURCES
from streams.tools.customers import Customer, CustomerPopulation, basket, basket_total, pick_sku
from streams.tools.records import GeneratedEvent, encode

__all__ = ["BAD_KINDS", "bad_event"]

#: Kinds of deliberately broken events emitted when ``bad_ratio > 0``.
BAD_KINDS: tuple[str, ...] = (
    "invalid_json",
    "invalid_utf8",
    "missing_event_id",
    "wrong_type",
    "bad_ts",
    "unknown_type",
    "json_array",
)


def bad_event(
    r: random.Random, customers: CustomerPopulation, *, seed: int, counter: int, ts: int | str
) -> GeneratedEvent:
    """A deliberately broken event of a random source and :data:`BAD_KINDS` kind."""
    source = r.choice(SOURCES)
    kind = r.choice(BAD_KINDS)
    event_id = f"{source}-{seed}-{counter}"
    cust = customers.pick()
    body = _plausible_body(r, source, cust, seed=seed, event_id=event_id, ts=ts)
    _break_field(r, body, source, kind, cust, customers.prefix)
    return GeneratedEvent(source, cust.key, _encode_broken(r, body, kind), False, kind)


def _plausible_body(
    r: random.Random, source: str, cust: Customer, *, seed: int, event_id: str, ts: int | str
) -> dict[str, Any]:
    """A well-formed event body of ``source`` for ``cust`` (the starting point of a bad event)."""
    if source == "clickstream":
        s = pick_sku(r, cust)
        return {
            "event_id": event_id,
            "ts": ts,
            "type": "product_view",
            "session_id": f"sess-{seed}-0",
            "user_id": cust.cid,
            "anonymous_id": cust.device,
            "sku": s.sku,
            "category": s.category,
            "price": s.price,
        }
    items = basket(r, cust, 2)
    if source == "pos":
        return {
            "event_id": event_id,
            "ts": ts,
            "store_id": cust.home_store,
            "member_id": cust.cid,
            "type": "sale",
            "items": items,
            "total": basket_total(items),
            "payment_method": cust.payment,
        }
    return {
        "event_id": event_id,
        "ts": ts,
        "order_id": f"o-{seed}-0",
        "user_id": cust.cid,
        "status": "paid",
        "amount": basket_total(items),
        "currency": CURRENCY,
        "channel": "web",
        "items": items,
    }


def _break_field(
    r: random.Random, body: dict[str, Any], source: str, kind: str, cust: Customer, customer_prefix: str
) -> None:
    """Apply the field-level defects (missing/mistyped field, bad ts, unknown type) in place."""
    if kind == "missing_event_id":
        del body["event_id"]
    elif kind == "bad_ts":
        body["ts"] = "yesterday"
    elif kind == "unknown_type":
        if source == "orders":
            body["status"] = "on_hold"
        else:
            body["type"] = "hover" if source == "clickstream" else "exchange"
    elif kind == "wrong_type":
        # A non-numeric qty string: even lax validators that coerce "2" -> 2 must reject it.
        if source == "clickstream" or (source == "orders" and r.random() < 0.5):
            body["user_id"] = int(cust.cid[len(customer_prefix) :] or 0)
        else:
            body["items"][0] = dict(body["items"][0], qty="two")


def _encode_broken(r: random.Random, body: dict[str, Any], kind: str) -> bytes:
    """Encode ``body``, applying the encoding-level defects (array, bad JSON, bad UTF-8)."""
    if kind == "json_array":
        return encode([body])
    value = encode(body)
    if kind == "invalid_json":
        # Any strict prefix of a JSON object is invalid JSON.
        value = value[: r.randint(1, len(value) - 1)]
    elif kind == "invalid_utf8":
        value = value.replace(b'"ts":', b'"\xff\xfets":', 1)
    return value
