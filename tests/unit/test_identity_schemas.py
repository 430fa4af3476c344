"""Typed ids and the identity input: events.identity records, hashed contact ids on pos and orders,
junk values, id keys, the ids each event carries, and the reasons a bad record is dead-lettered with."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    ID_TYPES,
    IDENTITY_REASONS,
    MAX_LINK_IDS,
    REASONS,
    EventDecodeError,
    IdentityRecord,
    decode_event,
    decode_identity,
    event_ids,
    id_key,
    is_junk,
    parse_id_key,
)
from schemas.ids import JUNK_HASHES, JUNK_WORDS, matches_junk_pattern

REPO = Path(__file__).resolve().parents[2]
TS_MS = 1769857200250
EMAIL = hashlib.sha256(b"ana@example.com").hexdigest()
PHONE = hashlib.sha256(b"+8613800001111").hexdigest()
RECORD: dict[str, Any] = {"event_id": "crm-1", "ts": TS_MS, "source": "crm",
                          "ids": [{"type": "member", "value": "m-1"}, {"type": "email_sha256", "value": EMAIL.upper()},
                                  {"type": "user", "value": "u-1"}]}
POS: dict[str, Any] = {"event_id": "p-1", "ts": TS_MS, "store_id": "st-1", "member_id": "m-1", "type": "sale",
                       "items": [{"sku": "s", "category": "c", "qty": 1, "unit_price": 1.0}], "total": 1.0,
                       "payment_method": "card"}
ORDER: dict[str, Any] = {"event_id": "o-1", "ts": TS_MS, "order_id": "o-1", "user_id": "u-1", "status": "paid",
                         "amount": 1.0, "currency": "EUR", "channel": "web", "items": []}


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def identity_error(doc: Any) -> EventDecodeError:
    with pytest.raises(EventDecodeError) as info:
        decode_identity(raw(doc))
    return info.value


def with_ids(*ids: Any) -> dict[str, Any]:
    return {**RECORD, "ids": list(ids)}


def test_a_record_decodes_to_typed_ids_with_hashes_in_lower_case() -> None:
    rec = decode_identity(raw(RECORD))
    assert isinstance(rec, IdentityRecord)
    assert (rec.event_id, rec.ts_ms, rec.source) == ("crm-1", TS_MS, "crm")
    assert rec.keys == ["member:m-1", f"email_sha256:{EMAIL}", "user:u-1"]
    assert rec.ids[1].value == EMAIL.upper()  # as sent; the key compares in lower case


@pytest.mark.parametrize(
    ("doc", "reason", "fragment"),
    [
        (with_ids({"type": "member", "value": "m-1"}), "too_few_ids", "at least 2 items"),
        (with_ids(), "too_few_ids", "at least 2"),
        (with_ids(*({"type": "anonymous", "value": f"a{i}"} for i in range(MAX_LINK_IDS + 1))), "too_many_ids",
         f"at most {MAX_LINK_IDS} items"),
        (with_ids({"type": "member", "value": "m-1"}, {"type": "fax", "value": "1"}), "unknown_id_type",
         "'fax'"),
        (with_ids({"type": "member", "value": "m-1"}, {"type": "member", "value": "m-1"}), "duplicate_id",
         "items 0 and 1 are the same id"),
        (with_ids({"type": "member", "value": "m-1"}, {"type": "user", "value": "null"}), "junk_id",
         "field 'ids.1.user.value': a placeholder"),
        (with_ids({"type": "member", "value": "m-1"}, {"type": "anonymous", "value": "00000000"}), "junk_id",
         "one character repeated"),
        (with_ids({"type": "member", "value": "m-1"},
                  {"type": "email_sha256", "value": hashlib.sha256(b"").hexdigest()}), "junk_id", "SHA-256 of one"),
        (with_ids({"type": "member", "value": "m-1"}, {"type": "email_sha256", "value": "ana@example.com"}),
         "bad_contact_hash", "looks like a raw e-mail address"),
        (with_ids({"type": "member", "value": "m-1"}, {"type": "phone_sha256", "value": "+86 138 0000 1111"}),
         "bad_contact_hash", "looks like a raw phone number"),
        (with_ids({"type": "member", "value": "m-1"}, {"type": "phone_sha256", "value": PHONE[:-1]}),
         "bad_contact_hash", "got 63 characters"),
        (with_ids({"type": "member", "value": "m-1"}, {"type": "phone_sha256", "value": PHONE[:-1] + "z"}),
         "bad_contact_hash", "non-hex"),
        (with_ids({"type": "member", "value": "m-1"}, {"value": "u-1"}), "missing_field", "field 'ids.1'"),
        (with_ids({"type": "member", "value": "m-1"}, {"type": "user", "value": "u-1", "vaule": "x"}),
         "invalid_field", "Extra inputs are not permitted"),
        (with_ids({"type": "member", "value": "m-1"}, {"type": "user", "value": 7}), "invalid_field",
         "valid string"),
        (with_ids({"type": "member", "value": "m-1"}, {"type": "user", "value": "x" * 257}), "invalid_field",
         "at most 256 characters"),
        ({**RECORD, "source": ""}, "invalid_field", "field 'source'"),
        ({k: v for k, v in RECORD.items() if k != "source"}, "missing_field", "field 'source'"),
        ({**RECORD, "ts": 1796001968}, "bad_timestamp", "epoch seconds?"),
        ([RECORD], "not_an_object", "object"),
    ],
    ids=["one-id", "no-ids", "too-many", "unknown-type", "duplicate", "junk-word", "junk-repeated", "junk-hash",
         "raw-email", "raw-phone", "short-hash", "non-hex", "no-type", "extra-key", "int-value", "long-value",
         "empty-source", "no-source", "epoch-seconds", "array"],
)
def test_bad_records_are_rejected_with_a_reason(doc: Any, reason: str, fragment: str) -> None:
    err = identity_error(doc)
    assert (err.reason, err.reason in REASONS) == (reason, True)
    assert fragment in err.message, err.message


def test_every_identity_reason_is_documented() -> None:
    contracts = (REPO / "docs" / "contracts.md").read_text(encoding="utf-8")
    section = contracts.split("## Identity records", 1)[1].split("\n## ", 1)[0]
    for reason in (*IDENTITY_REASONS, "bad_contact_hash"):
        assert f"`{reason}`" in section, reason


@pytest.mark.parametrize("value", ["", " ", "0", "-", "null", "NULL", " Null\t", "none", "undefined", "unknown",
                                   "N/A", "nan", "a", "aaaa", "000000", "------", "\u00e9\u00e9",
                                   hashlib.sha256(b"").hexdigest(), hashlib.sha256(b"null").hexdigest().upper(),
                                   *JUNK_WORDS])
def test_junk_values(value: str) -> None:
    assert is_junk(value)


@pytest.mark.parametrize("value", ["u-1", "m1", "00000001", "nulls", "nul", "unknown1", "aab", "ab", EMAIL, "0x",
                                   "null null", "n\u00falla"])
def test_real_looking_values_are_not_junk(value: str) -> None:
    assert not is_junk(value)


def test_is_junk_answers_as_the_json_schema_pattern() -> None:
    """is_junk is a fast rewrite of JUNK_PATTERN: the same answer for every string over an alphabet
    of the edge cases (ASCII whitespace and not, case, a Kelvin sign that lowers to "k", the words'
    letters) up to four characters, for the junk words and hashes in every case and padding, and
    for the lists above."""
    alphabet = [" ", "\t", "\n", "\r", "\x0b", "\u00a0", "a", "A", "n", "N", "u", "l", "0", "-", "/",
                "\u212a", "k", "\u00e9"]
    values: list[str] = [""]
    for _ in range(4):
        values += [v + c for v in values if len(v) == len(values[-1]) for c in alphabet]
    for word in (*JUNK_WORDS, *JUNK_HASHES, "unknown", "null"):
        for w in (word, word.upper(), word.title(), word[:-1], word + word[-1:], word.replace("k", "\u212a")):
            values += [w, f" {w}\t", f"\n{w} ", f"{w}\x0b", f"\u00a0{w}", f"{w} {w}"]
    assert len(values) > 100_000
    wrong = [v for v in values if is_junk(v) != matches_junk_pattern(v)]
    assert not wrong, wrong[:10]


@pytest.mark.parametrize("source,doc", [("pos", POS), ("orders", ORDER)])
def test_pos_and_orders_carry_optional_contact_hashes(source: str, doc: dict[str, Any]) -> None:
    plain = decode_event(source, raw(doc))
    assert plain.email_sha256 is None and plain.phone_sha256 is None  # type: ignore[union-attr]
    event = decode_event(source, raw({**doc, "email_sha256": EMAIL.upper(), "phone_sha256": PHONE}))
    first = "member:m-1" if source == "pos" else "user:u-1"
    assert event_ids(event) == [first, f"email_sha256:{EMAIL}", f"phone_sha256:{PHONE}"]
    for field, value, hint in [("email_sha256", "ana@example.com", "raw e-mail"),
                               ("phone_sha256", "13800001111", "raw phone"), ("phone_sha256", PHONE * 2, "128")]:
        with pytest.raises(EventDecodeError) as info:
            decode_event(source, raw({**doc, field: value}))
        assert info.value.reason == "bad_contact_hash"
        assert f"field '{field}'" in info.value.message and hint in info.value.message


def test_a_junk_hash_on_an_event_keeps_the_event() -> None:
    """The sale happened: a junk contact hash does not reject it (the identity graph refuses the link)."""
    junk = hashlib.sha256(b"").hexdigest()
    event = decode_event("pos", raw({**POS, "email_sha256": junk}))
    assert event_ids(event) == ["member:m-1", f"email_sha256:{junk}"]


def test_the_ids_of_clicks() -> None:
    click = {"event_id": "c", "ts": TS_MS, "session_id": "s", "type": "login", "user_id": "u-1", "anonymous_id": "a"}
    assert event_ids(decode_event("clickstream", raw(click))) == ["user:u-1", "anonymous:a"]
    assert event_ids(decode_event("clickstream", raw({**click, "user_id": None}))) == ["anonymous:a"]
    walk_in = decode_event("pos", raw({**POS, "member_id": None}))
    assert event_ids(walk_in) == []


@settings(max_examples=200, deadline=None)
@given(id_type=st.sampled_from(ID_TYPES), value=st.text(max_size=20))
def test_id_keys_round_trip(id_type: Any, value: str) -> None:
    key = id_key(id_type, value)
    t, v = parse_id_key(key)
    assert t == id_type
    assert v == (value.lower() if id_type.endswith("_sha256") else value)


@pytest.mark.parametrize("key", ["", "user", "fax:1", ":x", "User:x"])
def test_parse_id_key_rejects(key: str) -> None:
    with pytest.raises(ValueError, match="not an id key"):
        parse_id_key(key)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=256))
def test_arbitrary_bytes_raise_only_decode_error(data: bytes) -> None:
    try:
        decode_identity(data)
    except EventDecodeError as err:
        assert err.reason in REASONS and len(err.message) <= 500
