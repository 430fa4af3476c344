"""The synthetic retail event generator's stream (no network): deterministic from its seed, resumable,
timestamps by step in both formats, and realistic: skewed and interleaved customers, session
funnels, checkouts leading to orders, order statuses in order, walk-ins and returns in stores, and
customers buying in stores, online or both."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import orjson
import pytest

from streams.tools.generator import PAYMENT_METHODS, STORES, GeneratedEvent, RetailGenerator

from .generator_support import START_MS, _decode, _must_ts_ms, _ts_ms

# created -> paid -> shipped, with cancellation before shipping and refund after shipping.
_NEXT_STATUS = {"created": {"paid", "cancelled"}, "paid": {"shipped", "cancelled"}, "shipped": {"refunded"}}


@pytest.fixture(scope="module")
def clean() -> list[tuple[GeneratedEvent, dict[str, Any]]]:
    """A longer all-valid stream, decoded."""
    evs = RetailGenerator(seed=3, start_ms=START_MS).take(50_000)
    return [(e, orjson.loads(e.value)) for e in evs]


def test_deterministic_from_seed() -> None:
    kw: dict[str, Any] = {"start_ms": START_MS, "bad_ratio": 0.1}
    a = RetailGenerator(seed=11, **kw).take(3000)
    assert a == RetailGenerator(seed=11, **kw).take(3000)
    assert a != RetailGenerator(seed=12, **kw).take(3000)


def test_take_continues_the_stream() -> None:
    g = RetailGenerator(seed=5, start_ms=START_MS)
    assert g.take(100) + g.take(150) + [next(iter(g))] == RetailGenerator(seed=5, start_ms=START_MS).take(251)


def test_default_start_is_now() -> None:
    before = int(datetime.now().timestamp() * 1000)
    ev = RetailGenerator(seed=1).take(1)[0]
    assert abs(_must_ts_ms(_decode(ev)["ts"]) - before) < 60_000


def test_timestamps_advance_by_step_and_mix_formats() -> None:
    g = RetailGenerator(seed=2, start_ms=START_MS, step_ms=2.5, bad_ratio=0.0)
    docs = [_decode(e) for e in g.take(5000)]
    assert [_ts_ms(d["ts"]) for d in docs] == [START_MS + int(i * 2.5) for i in range(5000)]
    kinds = Counter(type(d["ts"]).__name__ for d in docs)
    assert kinds["int"] > 0.75 * len(docs)
    assert kinds["str"] > 0.05 * len(docs)
    strs = [d["ts"] for d in docs if isinstance(d["ts"], str)]
    assert any(s.endswith("Z") for s in strs)
    assert any(s.endswith("+08:00") for s in strs)


def test_zipf_skew(clean: list[tuple[GeneratedEvent, dict[str, Any]]]) -> None:
    per_customer = Counter(e.key for e, _ in clean if e.key is not None)
    total = sum(per_customer.values())
    top = sum(n for _, n in per_customer.most_common(10))  # top 1% of 1000 customers
    assert top / total > 0.2
    flat = Counter(e.key for e in RetailGenerator(seed=3, start_ms=START_MS, zipf_s=0.0).take(50_000) if e.key)
    assert sum(n for _, n in flat.most_common(10)) / sum(flat.values()) < 0.05


def test_consecutive_events_interleave_customers(clean: list[tuple[GeneratedEvent, dict[str, Any]]]) -> None:
    keys = [e.key for e, _ in clean]
    assert not [i for i in range(1, len(keys)) if keys[i] is not None and keys[i] == keys[i - 1]]
    sessions = [d["session_id"] for e, d in clean[:2000] if e.source == "clickstream"]
    # Many sessions are in flight at once, not one after the other.
    switches = sum(a != b for a, b in itertools.pairwise(sessions))
    assert switches > 0.8 * len(sessions)


def test_session_funnels(clean: list[tuple[GeneratedEvent, dict[str, Any]]]) -> None:
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e, d in clean:
        if e.source == "clickstream":
            sessions[d["session_id"]].append(d)
    checked_out = abandoned = 0
    for steps in sessions.values():
        types = [s["type"] for s in steps]
        assert len({s["user_id"] for s in steps}) == 1
        assert len({s["anonymous_id"] for s in steps}) == 1
        assert "login" not in types[1:]
        assert types[0] in ("login", "page_view")
        if "checkout_start" in types:
            assert "add_to_cart" in types[: types.index("checkout_start")]
            assert steps[0]["user_id"] is not None
            checked_out += 1
        elif "add_to_cart" in types:
            abandoned += 1
        for s in steps:
            if s["type"] in ("product_view", "add_to_cart", "remove_from_cart"):
                assert {"sku", "category", "price"} <= set(s)
            if s["type"] == "search":
                assert s["query"]
    assert checked_out > 50
    assert abandoned > 50


def test_checkout_leads_to_order(clean: list[tuple[GeneratedEvent, dict[str, Any]]]) -> None:
    last_checkout: dict[str | None, int] = {}
    linked = 0
    for i, (e, d) in enumerate(clean):
        if e.source == "clickstream" and d["type"] == "checkout_start":
            last_checkout[d["user_id"]] = i
        elif e.source == "orders" and d["status"] == "created" and d["channel"] != "marketplace":
            assert d["user_id"] in last_checkout  # web/app/mini-program orders come from a checkout
            linked += 1
    assert linked > 50


def test_order_status_order(clean: list[tuple[GeneratedEvent, dict[str, Any]]]) -> None:
    orders: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e, d in clean:
        if e.source == "orders":
            orders[d["order_id"]].append(d)
    for steps in orders.values():
        statuses = [s["status"] for s in steps]
        assert statuses[0] == "created", statuses
        for a, b in itertools.pairwise(statuses):
            assert b in _NEXT_STATUS.get(a, set()), statuses
        assert len({(s["user_id"], s["amount"], s["channel"]) for s in steps}) == 1
        assert [_ts_ms(s["ts"]) for s in steps] == sorted(_must_ts_ms(s["ts"]) for s in steps)
    finished = [o for o in orders.values() if o[-1]["status"] in ("shipped", "cancelled", "refunded")]
    ends = Counter(o[-1]["status"] for o in finished)
    assert 0.02 < ends["cancelled"] / len(finished) < 0.09
    assert 0.01 < ends["refunded"] / len(finished) < 0.06


def test_pos_walk_ins_and_returns(clean: list[tuple[GeneratedEvent, dict[str, Any]]]) -> None:
    pos = [d for e, d in clean if e.source == "pos"]
    sales = [d for d in pos if d["type"] == "sale"]
    walk_in = sum(d["member_id"] is None for d in sales) / len(sales)
    assert 0.08 < walk_in < 0.25
    assert 0.01 < (len(pos) - len(sales)) / len(sales) < 0.06
    assert all(1 <= len(d["items"]) <= 7 for d in sales)  # 1-5 items, big spenders a couple more
    assert len({d["store_id"] for d in pos}) == len(STORES)
    assert {d["payment_method"] for d in pos} == set(PAYMENT_METHODS)


def test_customer_channel_mix(clean: list[tuple[GeneratedEvent, dict[str, Any]]]) -> None:
    seen: dict[bytes, set[str]] = defaultdict(set)
    for e, _ in clean:
        if e.key is not None:
            seen[e.key].add("store" if e.source == "pos" else "online")
    mix = Counter(frozenset(s) for s in seen.values())
    assert mix[frozenset({"store"})] > 20
    assert mix[frozenset({"online"})] > 20
    assert mix[frozenset({"store", "online"})] > 20
