"""The schemas package decoding valid events: the exact canonical form, every accepted timestamp form,
extra fields ignored, customers missing by design (anonymous clicks, walk-in sales)."""

from __future__ import annotations

from typing import Any

import pytest

from schemas import CANONICAL_FIELD_TYPES, CANONICAL_FIELDS, MODEL_BY_SOURCE, SOURCES, decode_event, to_canonical

from .schemas_support import POS, TS, TS_MS, VALID, raw, with_, without

SRC_TS_MS = 1769857201000

EMPTY_CANONICAL = dict.fromkeys(CANONICAL_FIELD_TYPES)


def canonical(**fields: Any) -> dict[str, Any]:
    return {**EMPTY_CANONICAL, "skus": [], "categories": [], "ts_ms": TS_MS, "src_ts_ms": SRC_TS_MS, **fields}


EXPECTED = {
    "clickstream": canonical(
        event_id="c-1", source="clickstream", type="add_to_cart", customer_id="u-1", amount=19.99,
        skus=["SKU-1"], categories=["electronics"], session_id="s-1", url="https://shop.example/p/1",
    ),
    "pos": canonical(
        event_id="p-1", source="pos", type="sale", customer_id="m-1", amount=33.5, skus=["SKU-1", "SKU-2"],
        categories=["electronics", "grocery"], channel="store", store_id="st-7", payment_method="card",
        quantity=4,
    ),
    "orders": canonical(
        event_id="o-1", source="orders", type="paid", customer_id="u-1", amount=120.0, currency="EUR",
        skus=["SKU-3"], categories=["fashion"], channel="app", order_id="ord-1", quantity=3,
    ),
}


# -- valid events ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_valid_event_decodes_and_canonicalizes_exactly(source: str) -> None:
    event = decode_event(source, raw(VALID[source]))
    assert isinstance(event, MODEL_BY_SOURCE[source])
    out = to_canonical(source, event, SRC_TS_MS)
    assert out == EXPECTED[source]
    assert list(out) == list(CANONICAL_FIELD_TYPES)
    assert set(out) == CANONICAL_FIELDS
    assert type(out["ts_ms"]) is int
    assert type(out["amount"]) is float


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("ts", [TS, "2026-01-31T11:00:00.250Z", "2026-01-31t11:00:00.250z",
                                "2026-01-31 06:00:00.250-05:00", "2026-01-31T11:00:00.250999Z", TS_MS])
def test_rfc3339_and_epoch_ms_give_same_ts_ms(source: str, ts: str | int) -> None:
    event = decode_event(source, with_(source, ts=ts))
    assert to_canonical(source, event, 0)["ts_ms"] == TS_MS


@pytest.mark.parametrize("source", SOURCES)
def test_extra_fields_are_ignored(source: str) -> None:
    data = with_(source, brand_new_field={"nested": [1, 2, None]}, other=NotImplemented.__class__.__name__)
    assert to_canonical(source, decode_event(source, data), SRC_TS_MS) == EXPECTED[source]


def test_anonymous_clickstream_has_no_customer() -> None:
    for data in (without("clickstream", "user_id"), with_("clickstream", user_id=None)):
        out = to_canonical("clickstream", decode_event("clickstream", data), SRC_TS_MS)
        assert out["customer_id"] is None


def test_walk_in_pos_has_no_customer() -> None:
    for data in (without("pos", "member_id"), with_("pos", member_id=None)):
        out = to_canonical("pos", decode_event("pos", data), SRC_TS_MS)
        assert out["customer_id"] is None


def test_minimal_clickstream_and_empty_order_items() -> None:
    click = {"event_id": "e", "ts": TS_MS, "anonymous_id": "a", "session_id": "s", "type": "page_view"}
    out = to_canonical("clickstream", decode_event("clickstream", raw(click)), 5)
    assert out == {**EMPTY_CANONICAL, "event_id": "e", "source": "clickstream", "type": "page_view",
                   "ts_ms": TS_MS, "src_ts_ms": 5, "skus": [], "categories": [], "session_id": "s"}
    order = to_canonical("orders", decode_event("orders", with_("orders", items=[], status="cancelled")), 5)
    assert (order["skus"], order["categories"], order["quantity"], order["type"]) == ([], [], 0, "cancelled")


def test_pos_return_with_negative_total_has_positive_amount() -> None:
    out = to_canonical("pos", decode_event("pos", with_("pos", type="return", total=-33.5)), 0)
    assert (out["type"], out["amount"]) == ("return", 33.5)


def test_to_canonical_rejects_source_model_mismatch() -> None:
    event = decode_event("pos", raw(POS))
    with pytest.raises(ValueError, match="does not match"):
        to_canonical("orders", event, 0)


def test_canonical_field_types() -> None:
    assert set(CANONICAL_FIELD_TYPES.values()) <= {"str", "int", "float", "list[str]"}
    assert CANONICAL_FIELD_TYPES["amount"] == "float"
    assert CANONICAL_FIELD_TYPES["quantity"] == "int"
    assert CANONICAL_FIELD_TYPES["categories"] == "list[str]"
