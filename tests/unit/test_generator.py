"""Unit tests for the synthetic retail event generator (no network).

The events are checked against the source-topic input contract with a small hand-written
validator, deliberately independent of ``schemas/`` so the two can catch each other's mistakes.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from datetime import datetime
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

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
N = 20_000

_CLICK_KEYS = {"event_id", "ts", "type", "session_id", "user_id", "anonymous_id"}
_CLICK_OPTIONAL = {"sku", "category", "price", "url", "query"}
_POS_KEYS = {"event_id", "ts", "store_id", "member_id", "type", "items", "total", "payment_method"}
_ORDER_KEYS = {"event_id", "ts", "order_id", "user_id", "status", "amount", "currency", "channel", "items"}
_ITEM_KEYS = {"sku", "category", "qty", "unit_price"}
# created -> paid -> shipped, with cancellation before shipping and refund after shipping.
_NEXT_STATUS = {"created": {"paid", "cancelled"}, "paid": {"shipped", "cancelled"}, "shipped": {"refunded"}}


def _is_str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _must_ts_ms(ts: Any) -> int:
    ms = _ts_ms(ts)
    assert ms is not None, ts
    return ms


def _ts_ms(ts: Any) -> int | None:
    """Business time in epoch ms, or None if ``ts`` breaks the contract."""
    if isinstance(ts, int) and not isinstance(ts, bool):
        return ts
    if isinstance(ts, str):
        try:
            dt = datetime.fromisoformat(ts)
        except ValueError:
            return None
        if dt.tzinfo is None:  # RFC 3339 requires an offset
            return None
        return round(dt.timestamp() * 1000)
    return None


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


def _decode(ev: GeneratedEvent) -> Any:
    return orjson.loads(ev.value)


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
