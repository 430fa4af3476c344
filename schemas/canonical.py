"""Source event -> canonical event: the one flat dict the feature engine and rules see.

Every key is always present (None or [] when it does not apply), so rule ``where`` expressions
and aggregations can read any field of any source without guarding for missing keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .events import ClickstreamEvent, LineItem, OrderEvent, PosEvent

CANONICAL_FIELD_TYPES: dict[str, str] = {
    "event_id": "str",
    "source": "str",
    "type": "str",
    "customer_id": "str",
    "ts_ms": "int",
    "src_ts_ms": "int",
    "amount": "float",
    "currency": "str",
    "skus": "list[str]",
    "categories": "list[str]",
    "channel": "str",
    "store_id": "str",
    "session_id": "str",
    "order_id": "str",
    "payment_method": "str",
    "quantity": "int",
    "query": "str",
    "url": "str",
}
"""Canonical key -> value type ("str" | "int" | "float" | "list[str]"). Every scalar may also be None
except event_id, source, type, ts_ms and src_ts_ms; lists are [] when empty. Key order is the
order of ``to_canonical``'s output."""

CANONICAL_FIELDS: frozenset[str] = frozenset(CANONICAL_FIELD_TYPES)
"""The keys of every canonical event."""

POS_CHANNEL = "store"


def to_canonical(
    source: str, event: ClickstreamEvent | PosEvent | OrderEvent, src_ts_ms: int
) -> dict[str, Any]:
    """Builds the canonical dict (all CANONICAL_FIELDS present) of a validated source event.

    ``src_ts_ms`` is the Kafka timestamp of the source record. Raises ValueError when ``source``
    does not match the event's model.
    """
    if source == "clickstream" and isinstance(event, ClickstreamEvent):
        return _base(
            event, source, event.type,
            customer_id=event.user_id,
            src_ts_ms=src_ts_ms,
            amount=_amount(event.price),
            skus=_unique([event.sku]),
            categories=_unique([event.category]),
            channel=event.channel,
            session_id=event.session_id,
            query=event.query,
            url=event.url,
        )
    if source == "pos" and isinstance(event, PosEvent):
        return _base(
            event, source, event.type,
            customer_id=event.member_id,
            src_ts_ms=src_ts_ms,
            # Returns may be sent with a negative total; the amount is a size, ``type`` gives the sign.
            amount=_amount(abs(event.total)),
            skus=_unique(i.sku for i in event.items),
            categories=_unique(i.category for i in event.items),
            channel=POS_CHANNEL,
            store_id=event.store_id,
            payment_method=event.payment_method,
            quantity=_quantity(event.items),
        )
    if source == "orders" and isinstance(event, OrderEvent):
        return _base(
            event, source, event.status,
            customer_id=event.user_id,
            src_ts_ms=src_ts_ms,
            amount=_amount(event.amount),
            currency=event.currency,
            skus=_unique(i.sku for i in event.items),
            categories=_unique(i.category for i in event.items),
            channel=event.channel,
            order_id=event.order_id,
            quantity=_quantity(event.items),
        )
    raise ValueError(f"source {source!r} does not match event model {type(event).__name__}")


def _base(event: ClickstreamEvent | PosEvent | OrderEvent, source: str, type_: str, *,
          customer_id: str | None, src_ts_ms: int, amount: float | None, skus: list[str],
          categories: list[str], channel: str | None, currency: str | None = None,
          store_id: str | None = None, session_id: str | None = None, order_id: str | None = None,
          payment_method: str | None = None, quantity: int | None = None, query: str | None = None,
          url: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "source": source,
        "type": type_,
        "customer_id": customer_id,
        "ts_ms": event.ts_ms,
        "src_ts_ms": int(src_ts_ms),
        "amount": amount,
        "currency": currency,
        "skus": skus,
        "categories": categories,
        "channel": channel,
        "store_id": store_id,
        "session_id": session_id,
        "order_id": order_id,
        "payment_method": payment_method,
        "quantity": quantity,
        "query": query,
        "url": url,
    }


def _amount(value: float | None) -> float | None:
    # float(): ints are accepted on input; "+ 0.0" turns -0.0 into 0.0.
    return None if value is None else float(value) + 0.0


def _quantity(items: list[LineItem]) -> int:
    return sum(i.qty for i in items)


def _unique(values: Iterable[str | None]) -> list[str]:
    """Distinct non-empty values in first-seen order (None and "" carry no information)."""
    return list(dict.fromkeys(v for v in values if v))
