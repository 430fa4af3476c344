"""Shared by the engine tests (tests/unit/test_engine_*.py and others): a fixed origin of time,
rule files, canonical events, a generated stream of customers' events, and the window rules."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

H = 3_600_000
D = 24 * H
T0 = 1_800_000_000_000  # a fixed "now" far from epoch


def rules_file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(text)
    return p


def event(source: str = "clickstream", typ: str = "product_view", ts_ms: int = T0, **kw: Any) -> dict[str, Any]:
    base = {"event_id": f"e{random.random()}", "source": source, "type": typ, "customer_id": "c1", "ts_ms": ts_ms,
            "src_ts_ms": ts_ms, "amount": None, "currency": None, "skus": [], "categories": [], "channel": None,
            "store_id": None, "session_id": None, "order_id": None, "payment_method": None, "quantity": None,
            "query": None, "url": None}
    base.update(kw)
    return base


def customer_stream(seed: int, customers: int, step_ms: float,
                    n: int = 3000) -> Iterator[tuple[str, dict[str, Any], int]]:
    """The generator's events with a customer, canonical, as (customer id, event, the time the
    worker sees it: a second after it happened)."""
    from schemas.canonical import to_canonical
    from schemas.decode import decode_event
    from streams.tools.generator import RetailGenerator

    for g in RetailGenerator(seed=seed, customers=customers, start_ms=T0, step_ms=step_ms).take(n):
        ev = to_canonical(g.source, decode_event(g.source, g.value), T0)
        if ev["customer_id"] is not None:
            yield ev["customer_id"], ev, ev["ts_ms"] + 1000


WINDOW_RULES = """
version: v1
features:
  - {name: views_1h, agg: count, window: 1h, sources: [clickstream], where: type == "product_view"}
  - {name: orders_30d, agg: count, window: 30d, sources: [orders], where: type == "paid"}
  - {name: orders_all, agg: count, sources: [orders], where: type == "paid"}
  - {name: since_order, agg: since_last, sources: [orders], where: type == "paid"}
tags:
  - {name: hot, when: views_1h >= 10}
  - {name: lapsing, when: orders_all >= 1 and since_order >= days(30)}
  - {name: no_orders_30d, when: orders_all >= 1 and orders_30d == 0}
"""
