"""Unit tests for the schemas package: decoding, canonical form, error reasons, JSON Schema files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import (
    CANONICAL_FIELD_TYPES,
    CANONICAL_FIELDS,
    DLQ_HEADERS,
    DLQ_MAX_ERROR_CHARS,
    MAX_TS_MS,
    MIN_TS_MS,
    MODEL_BY_SOURCE,
    REASONS,
    SOURCES,
    DeadLetter,
    EventDecodeError,
    FeatureSpec,
    RuleFile,
    TagChange,
    TagSpec,
    TagValue,
    decode_event,
    parse_duration_ms,
    to_canonical,
)
from schemas.export import DEFAULT_DIR, export, json_schemas, render

TS = "2026-01-31T12:00:00.250+01:00"
TS_MS = 1769857200250  # 2026-01-31T11:00:00.250Z
SRC_TS_MS = 1769857201000

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


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def with_(source: str, **changes: Any) -> bytes:
    return raw({**VALID[source], **changes})


def without(source: str, *keys: str) -> bytes:
    return raw({k: v for k, v in VALID[source].items() if k not in keys})


def decode_error(source: str, data: bytes) -> EventDecodeError:
    with pytest.raises(EventDecodeError) as info:
        decode_event(source, data)
    return info.value


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


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "data", "reason", "fragment"),
    [
        ("clickstream", b"{not json", "invalid_json", "Invalid JSON"),
        ("clickstream", b"", "invalid_json", "Invalid JSON"),
        ("pos", b"[1, 2]", "not_an_object", "object"),
        ("orders", b'"a string"', "not_an_object", "object"),
        ("orders", b"null", "not_an_object", "object"),
        ("pos", without("pos", "store_id"), "missing_field", "field 'store_id': Field required"),
        ("orders", without("orders", "event_id"), "missing_field", "field 'event_id'"),
        ("clickstream", without("clickstream", "ts"), "missing_field", "field 'ts'"),
        ("clickstream", with_("clickstream", user_id=None, anonymous_id=None), "missing_field",
         "anonymous_id"),
        ("clickstream", with_("clickstream", type="purchase"), "invalid_field", "field 'type'"),
        ("clickstream", with_("clickstream", price=-1), "invalid_field", "field 'price'"),
        ("clickstream", with_("clickstream", price="9.99"), "invalid_field", "field 'price'"),
        ("clickstream", with_("clickstream", event_id=""), "invalid_field", "field 'event_id'"),
        ("pos", with_("pos", items=[{**POS["items"][0], "qty": "2"}]), "invalid_field",
         "field 'items.0.qty': Input should be a valid integer"),
        ("pos", with_("pos", items=[{**POS["items"][0], "qty": 0}]), "invalid_field", "field 'items.0.qty'"),
        ("pos", with_("pos", items=[{**POS["items"][0], "qty": 1.5}]), "invalid_field",
         "field 'items.0.qty'"),
        ("pos", with_("pos", items=[]), "invalid_field", "field 'items'"),
        ("pos", with_("pos", total=True), "invalid_field", "field 'total'"),
        ("orders", with_("orders", currency="EURO"), "invalid_field", "field 'currency'"),
        ("orders", with_("orders", channel="store"), "invalid_field", "field 'channel'"),
        ("orders", with_("orders", amount="1e3"), "invalid_field", "field 'amount'"),
        ("orders", with_("orders", items=None), "invalid_field", "field 'items'"),
        ("orders", with_("orders", ts="2026-01-31T12:00:00"), "bad_timestamp",
         "field 'ts': timestamp needs a timezone offset"),
        ("orders", with_("orders", ts="2026-01-31"), "bad_timestamp", "field 'ts'"),
        ("orders", with_("orders", ts="20260131T120000Z"), "bad_timestamp", "field 'ts'"),
        ("orders", with_("orders", ts="2026-02-30T12:00:00Z"), "bad_timestamp", "field 'ts'"),
        ("orders", with_("orders", ts="1769857200250"), "bad_timestamp", "field 'ts'"),
        ("orders", with_("orders", ts="1769857200250.5"), "bad_timestamp", "field 'ts'"),
        ("orders", with_("orders", ts=1769857200250.5), "bad_timestamp", "field 'ts': epoch milliseconds must be"),
        ("orders", with_("orders", ts=1796001968), "bad_timestamp",
         "field 'ts': ts 1796001968 is before 2001 as epoch milliseconds: epoch seconds?"),
        ("orders", with_("orders", ts="1900-01-01T00:00:00Z"), "bad_timestamp", "out of range"),
        ("orders", with_("orders", ts="2026-01-31T12:00:00Z\n"), "bad_timestamp", "field 'ts'"),
        ("orders", with_("orders", ts="2026-06-30T23:59:60Z"), "bad_timestamp", "not a valid date/time"),
        ("orders", with_("orders", ts="2100-02-29T00:00:00Z"), "bad_timestamp", "not a valid date/time"),
        ("orders", with_("orders", ts="2026-01-31T12:00:00+24:00"), "bad_timestamp", "not a valid date/time"),
        ("orders", with_("orders", ts=True), "bad_timestamp", "boolean"),
        ("orders", with_("orders", ts=-1), "bad_timestamp", "out of range"),
        ("orders", with_("orders", ts=1769857200250000), "bad_timestamp", "out of range"),
        ("orders", with_("orders", ts="2201-01-01T00:00:00Z"), "bad_timestamp", "out of range"),
        ("orders", with_("orders", ts="1970-01-01T00:30:00+01:00"), "bad_timestamp", "out of range"),
        ("orders", with_("orders", ts="2000-12-31T23:59:59.999Z"), "bad_timestamp", "out of range"),
        ("orders", with_("orders", ts=None), "bad_timestamp", "field 'ts'"),
        ("tweets", raw(CLICK), "unknown_source", "tweets"),
    ],
)
def test_error_reasons_and_messages(source: str, data: bytes, reason: str, fragment: str) -> None:
    err = decode_error(source, data)
    assert err.reason == reason
    assert err.reason in REASONS
    assert fragment in err.message
    assert len(err.message) <= 500


@pytest.mark.parametrize(
    ("source", "field", "value"),
    [
        ("clickstream", "event_id", 1), ("clickstream", "user_id", 42), ("clickstream", "session_id", 7),
        ("pos", "store_id", 3), ("pos", "member_id", 123456),
        ("orders", "order_id", 99), ("orders", "user_id", 5),
    ],
)
def test_ids_as_ints_are_rejected(source: str, field: str, value: int) -> None:
    err = decode_error(source, with_(source, **{field: value}))
    assert err.reason == "invalid_field"
    assert f"field '{field}': Input should be a valid string" in err.message


def test_ts_edges_accepted() -> None:
    assert MIN_TS_MS == 978307200000 and MAX_TS_MS == 7289654399999
    assert decode_event("orders", with_("orders", ts=978307200000)).ts_ms == 978307200000
    assert decode_event("orders", with_("orders", ts="2001-01-01T00:00:00Z")).ts_ms == 978307200000
    assert decode_event("orders", with_("orders", ts="2200-12-31T23:59:59.999Z")).ts_ms == 7289654399999
    assert decode_event("orders", with_("orders", ts=7289654399999)).ts_ms == 7289654399999
    assert decode_error("orders", with_("orders", ts=7289654400000)).reason == "bad_timestamp"
    assert decode_error("orders", with_("orders", ts=978307199999)).reason == "bad_timestamp"
    # The year range applies to the date-time as written; the offset may move the instant by < 1 day.
    assert decode_event("orders", with_("orders", ts="2001-01-01T00:30:00+01:00")).ts_ms == 978305400000
    assert decode_event("orders", with_("orders", ts="2024-02-29T00:00:00Z")).ts_ms == 1709164800000


@pytest.mark.parametrize(
    ("ts", "ts_ms"),
    [(1769857200250.0, TS_MS), (1.76985720025e12, TS_MS), ("2026-11-30 01:20:00Z", 1796001600000),
     ("2026-11-30T01:20:00.5Z", 1796001600500), ("2026-11-30T01:20:00.123456789012345+00:00", 1796001600123),
     ("2026-11-30T01:20:00-00:00", 1796001600000), ("2026-11-30T06:50:00+05:30", 1796001600000)],
)
def test_ts_forms_accepted(ts: float | str, ts_ms: int) -> None:
    """A JSON number without a fraction is an integer (2.0 == 2); a space may replace the T."""
    assert decode_event("orders", with_("orders", ts=ts)).ts_ms == ts_ms


@pytest.mark.parametrize("seconds", [1796001968, 1796001968.0, 1, 978307199])
def test_ts_in_epoch_seconds_is_rejected_with_a_hint(seconds: float) -> None:
    err = decode_error("clickstream", with_("clickstream", ts=seconds))
    assert err.reason == "bad_timestamp"
    assert f"ts {int(seconds)} is before 2001 as epoch milliseconds: epoch seconds?" in err.message


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe\x00garbage",
        b'{"event_id": "\xc3\x28"}',
        b'{"event_id": "\\ud800", "ts": 0}',
        b"[" * 100_000,
        b'{"a":' * 100_000,
        b'{"event_id": "e", "ts": ' + b"9" * 100_000 + b"}",
        b'{"event_id": "e", "ts": 1e999999}',
        b'{"event_id": "e", "total": ' + b"9" * 5000 + b".5}",
        b'{"event_id": "' + b"x" * 10_000_000 + b'"}',
        b'{"event_id": "e", "ts": "' + b"x" * 10_000_000 + b'"}',
        b'{"event_id": 1' + b"0" * 1000 + b"}",
    ],
    ids=["invalid-utf8", "invalid-utf8-in-string", "lone-surrogate", "deep-array", "deep-object",
         "huge-int", "huge-float", "huge-decimal", "10mb-string", "10mb-ts", "big-int-id"],
)
@pytest.mark.parametrize("source", SOURCES)
def test_hostile_input_raises_only_decode_error(source: str, data: bytes) -> None:
    err = decode_error(source, data)
    assert err.reason in REASONS
    assert len(err.message) <= 500
    assert len(str(err)) <= 600


def test_message_lists_several_problems_but_stays_short() -> None:
    doc = {"event_id": "e", "ts": TS_MS, "store_id": "s", "type": "sale", "total": 1, "payment_method": "x",
           "items": [{"sku": 1, "category": 2, "qty": "x", "unit_price": "y"}] * 50}
    err = decode_error("pos", raw(doc))
    assert err.reason == "invalid_field"
    assert "field 'items.0.sku'" in err.message
    assert "more" in err.message
    assert len(err.message) <= 500


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from([*SOURCES, "nope"]), data=st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_decode_error(source: str, data: bytes) -> None:
    try:
        decode_event(source, data)
    except EventDecodeError as err:
        assert err.reason in REASONS
        assert len(err.message) <= 500


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(source=st.sampled_from(SOURCES), data=st.data())
def test_mutated_valid_events_raise_only_decode_error(source: str, data: st.DataObject) -> None:
    doc = dict(VALID[source])
    key = data.draw(st.sampled_from([*doc, "items"]))
    doc[key] = data.draw(_json_values)
    try:
        event = decode_event(source, json.dumps(doc).encode())
    except EventDecodeError as err:
        assert err.reason in REASONS
    else:
        assert set(to_canonical(source, event, 0)) == CANONICAL_FIELDS


# -- tags, dead letters, rules -----------------------------------------------------------------


def test_tag_change_and_tag_value_round_trip() -> None:
    change = {"customer_id": "u-1", "tag": "vip", "op": "add", "at_ms": 10, "event_ts_ms": 9,
              "cause": "event", "rule_version": "v1",
              "features": {"spend_30d": 1200.5, "purchases_30d": 3, "seg": "a", "x": None},
              "event_id": "o-1", "change_id": "abc"}
    parsed = TagChange.model_validate_json(json.dumps(change))
    assert parsed.model_dump(exclude={"via"}) == change and parsed.via is None
    assert TagChange.model_validate({**change, "via": "anonymous:a-1"}).via == "anonymous:a-1"
    assert type(parsed.features["purchases_30d"]) is int
    with pytest.raises(ValidationError):
        TagChange.model_validate({**change, "op": "toggle"})
    with pytest.raises(ValidationError):
        TagChange.model_validate({**change, "cause": "magic"})
    assert TagValue.model_validate_json(b'{"since_ms": 5, "rule_version": "v1"}').since_ms == 5


def test_dead_letter_headers_round_trip() -> None:
    dl = DeadLetter(source_topic="events.pos", source_partition=3, source_offset=42, source_timestamp_ms=1700,
                    reason="invalid_field", error="field 'total': Input should be a valid number")
    headers = dl.to_headers()
    assert [k for k, _ in headers] == ["ts.source_topic", "ts.source_partition", "ts.source_offset",
                                       "ts.source_timestamp_ms", "ts.reason", "ts.error"]
    assert all(isinstance(v, bytes) for _, v in headers)
    assert DeadLetter.from_headers([("traceparent", b"x"), *headers]) == dl
    no_ts = DeadLetter(**{**dl.model_dump(), "source_timestamp_ms": None})
    assert "ts.source_timestamp_ms" not in dict(no_ts.to_headers())
    assert DeadLetter.from_headers(no_ts.to_headers()) == no_ts
    with pytest.raises(ValueError):
        DeadLetter.from_headers(headers[1:])


class _Msg:
    topic, partition, offset, timestamp = "events.orders", 2, 1234, 1769857201.5


def _worker_dlq_headers(msg: Any, reason: str, error: str) -> list[tuple[str, bytes]]:
    """The header layout the worker wrote by hand before it used DeadLetter (streams/app.py, before the split)."""
    return [
        ("ts.source_topic", msg.topic.encode()),
        ("ts.source_partition", str(msg.partition).encode()),
        ("ts.source_offset", str(msg.offset).encode()),
        ("ts.source_timestamp_ms", str(int(msg.timestamp * 1000)).encode()),
        ("ts.reason", reason.encode()),
        ("ts.error", error[:1000].encode("utf-8", "replace")),
    ]


@pytest.mark.parametrize("error", ["field 'ts': bad", "é" * 1500, "x" * 999 + "\ud800tail"])
def test_dead_letter_builds_the_worker_headers_exactly(error: str) -> None:
    msg = _Msg()
    base = _worker_dlq_headers(msg, "bad_timestamp", error)
    key, value = b"k" * 20_000, b"v" * 100
    sha = hashlib.sha256(value).hexdigest()
    # The worker appends the cut-key header first, the cut-value headers when a copy is cut.
    want = [*base, ("ts.key_truncated_from_bytes", b"20000"), ("ts.truncated_from_bytes", b"100"),
            ("ts.value_sha256", sha.encode())]
    dl = DeadLetter(source_topic=msg.topic, source_partition=msg.partition, source_offset=msg.offset,
                    source_timestamp_ms=int(msg.timestamp * 1000), reason="bad_timestamp", error=error,
                    key_truncated_from_bytes=len(key), truncated_from_bytes=len(value), value_sha256=sha)
    assert dl.to_headers() == want
    assert [k for k, _ in want] == list(DLQ_HEADERS)
    plain = DeadLetter(source_topic=msg.topic, source_partition=msg.partition, source_offset=msg.offset,
                       source_timestamp_ms=int(msg.timestamp * 1000), reason="bad_timestamp", error=error)
    assert plain.to_headers() == base
    assert len(plain.error) == min(len(error), DLQ_MAX_ERROR_CHARS)
    assert DeadLetter.from_headers(dl.to_headers()).to_headers() == want
    with pytest.raises(ValidationError):
        DeadLetter(**{**plain.model_dump(), "value_sha256": "not-hex"})
    with pytest.raises(ValidationError):
        DeadLetter(**{**plain.model_dump(), "truncated_from_bytes": -1})


@pytest.mark.parametrize(
    ("text", "ms"),
    [("250ms", 250), ("90s", 90_000), ("10m", 600_000), ("1h", 3_600_000), ("24h", 86_400_000),
     ("7d", 604_800_000), ("30d", 2_592_000_000), ("2w", 1_209_600_000), ("0s", 0)],
)
def test_parse_duration_ms(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "10", "h", "1.5h", "-1h", "1 h", "1H", "1y", "lifetime", "1h30m"])
def test_parse_duration_ms_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration_ms(text)


def test_rule_file_shape() -> None:
    rf = RuleFile.model_validate({
        "version": "v1",
        "features": [
            {"name": "spend_30d", "agg": "sum", "field": "amount", "window": "30d", "sources": "orders"},
            {"name": "purchases", "agg": "count"},
        ],
        "tags": [{"name": "big_spender", "when": "spend_30d > 1000"}],
    })
    assert rf.features[0].sources == ["orders"]
    assert rf.features[1].sources == list(SOURCES)
    assert rf.features[1].window is None
    assert rf.tags == [TagSpec(name="big_spender", when="spend_30d > 1000")]


@pytest.mark.parametrize(
    "feature",
    [
        {"name": "x", "agg": "count", "windw": "7d"},
        {"name": "X", "agg": "count"},
        {"name": "1x", "agg": "count"},
        {"name": "x" * 65, "agg": "count"},
        {"name": "x", "agg": "median"},
        {"name": "x", "agg": "count", "sources": ["web"]},
        {"name": "x", "agg": "count", "sources": []},
    ],
)
def test_feature_spec_rejects(feature: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FeatureSpec.model_validate(feature)


def test_rule_file_rejects_unknown_top_level_key() -> None:
    with pytest.raises(ValidationError, match="tag"):
        RuleFile.model_validate({"tag": []})


# -- JSON Schema files, import hygiene ---------------------------------------------------------


def test_committed_json_schemas_are_current() -> None:
    schemas = json_schemas()
    assert set(schemas) == {"clickstream", "pos", "orders", "identity", "tag_change", "tag_value", "rule_file",
                            "rules_deployment"}
    committed = {p.name for p in DEFAULT_DIR.glob("*.schema.json")}
    assert committed == {f"{name}.schema.json" for name in schemas}, "run: python -m schemas.export"
    for name, schema in schemas.items():
        text = (DEFAULT_DIR / f"{name}.schema.json").read_text(encoding="utf-8")
        assert text == render(schema), f"{name}.schema.json is stale: run python -m schemas.export"


def test_export_writes_files(tmp_path: Path) -> None:
    paths = export(tmp_path / "out")
    assert len(paths) == 8
    for path in paths:
        assert path.read_text(encoding="utf-8").endswith("}\n")
        assert json.loads(path.read_text(encoding="utf-8")) == json_schemas()[path.name.split(".")[0]]


def test_importing_schemas_loads_no_io_frameworks() -> None:
    code = (
        "import sys, schemas, schemas.decode, schemas.canonical, schemas.tags, schemas.rules\n"
        "import schemas.export\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('faust', 'redis', 'aiokafka', 'mode',"
        " 'streams', 'tag_rules'))\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("qty,unit_price,field", [("1000000000000000000000000000000", "1.0", "qty"),
                                                    ("2000000", "1.0", "qty"), ("1", "1e300", "unit_price")])
def test_absurd_quantities_and_amounts_are_invalid_fields(qty: str, unit_price: str, field: str) -> None:
    # 10**30 is valid JSON but no 64-bit integer: it must be rejected here, not crash later.
    raw = ('{"event_id":"e","ts":1700000000000,"store_id":"s","member_id":"m","type":"sale","items":[{"sku":"a",'
           f'"category":"b","qty":{qty},"unit_price":{unit_price}}}],"total":1.0,"payment_method":"card"}}').encode()
    with pytest.raises(EventDecodeError) as info:
        decode_event("pos", raw)
    assert info.value.reason == "invalid_field" and field in info.value.message


def test_the_engine_change_dict_has_exactly_the_tag_change_fields() -> None:
    from schemas.tags import TagChange, TagChangeDict

    assert list(TagChangeDict.__annotations__) == list(TagChange.model_fields)
