"""The schemas package refusing events: error reasons and messages, timestamps out of range or in a
wrong form, ids and quantities of the wrong type or size, and hostile or random input raising only
EventDecodeError."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import (
    CANONICAL_FIELDS,
    MAX_TS_MS,
    MIN_TS_MS,
    REASONS,
    SOURCES,
    EventDecodeError,
    decode_event,
    to_canonical,
)

from .schemas_support import CLICK, POS, TS_MS, VALID, raw, with_, without


def decode_error(source: str, data: bytes) -> EventDecodeError:
    with pytest.raises(EventDecodeError) as info:
        decode_event(source, data)
    return info.value


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


@pytest.mark.parametrize("qty,unit_price,field", [("1000000000000000000000000000000", "1.0", "qty"),
                                                    ("2000000", "1.0", "qty"), ("1", "1e300", "unit_price")])
def test_absurd_quantities_and_amounts_are_invalid_fields(qty: str, unit_price: str, field: str) -> None:
    # 10**30 is valid JSON but no 64-bit integer: it must be rejected here, not crash later.
    raw = ('{"event_id":"e","ts":1700000000000,"store_id":"s","member_id":"m","type":"sale","items":[{"sku":"a",'
           f'"category":"b","qty":{qty},"unit_price":{unit_price}}}],"total":1.0,"payment_method":"card"}}').encode()
    with pytest.raises(EventDecodeError) as info:
        decode_event("pos", raw)
    assert info.value.reason == "invalid_field" and field in info.value.message
