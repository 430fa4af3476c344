"""Shared by the sequence and absence feature tests (tests/unit/test_sequences_*.py): the time
units, the documented caps, the rules (with the module-scoped ``engine`` fixture running them) and
an event builder."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from streams.engine.tag_engine import TagEngine
from tag_rules import load_rules

S = 1000
H = 3_600_000
D = 24 * H
T0 = 1_800_000_000_000
MAX_PENDING, MAX_RUNS, MAX_UNMATCHED = 8, 4, 4
"""The caps docs/rules.md documents (the state cost per customer is computed from them)."""


RULES = """
version: v1
features:
  - name: abandoned
    agg: absence
    first: {sources: [clickstream], where: type == "add_to_cart"}
    then: {sources: [orders], where: type == "paid"}
    within: 24h
    window: 7d
  - name: abandoned_ever
    agg: absence
    first: {sources: [clickstream], where: type == "add_to_cart"}
    then: {sources: [orders], where: type == "paid"}
    within: 24h
  - name: view_buy
    agg: sequence
    first: {sources: [clickstream], where: type == "product_view"}
    then: {sources: [orders], where: type == "paid"}
    within: 1h
    window: 1d
  - name: view_buy_ever
    agg: sequence
    first: {sources: [clickstream], where: type == "product_view"}
    then: {sources: [orders], where: type == "paid"}
    within: 1h
tags:
  - {name: abandoner, when: abandoned}
  - {name: abandoner_ever, when: abandoned_ever}
  - {name: impulse, when: view_buy >= 1}
  - {name: impulse_ever, when: view_buy_ever >= 1}
"""


_ids = itertools.count()


def ev(kind: str, ts_ms: int, event_id: str | None = None) -> dict[str, Any]:
    source, typ = {"cart": ("clickstream", "add_to_cart"), "view": ("clickstream", "product_view"),
                   "paid": ("orders", "paid"), "page": ("clickstream", "page_view")}[kind]
    return {"event_id": event_id or f"e{next(_ids)}", "source": source, "type": typ, "customer_id": "c1",
            "ts_ms": ts_ms, "src_ts_ms": ts_ms, "amount": 10.0 if source == "orders" else None, "currency": None,
            "skus": [], "categories": [], "channel": None, "store_id": None, "session_id": None, "order_id": None,
            "payment_method": None, "quantity": None, "query": None, "url": None}


@pytest.fixture(scope="module", name="engine")
def engine_fixture(tmp_path_factory: pytest.TempPathFactory) -> TagEngine:
    p = tmp_path_factory.mktemp("rules") / "seq.yaml"
    p.write_text(RULES)
    return TagEngine(load_rules(p))
