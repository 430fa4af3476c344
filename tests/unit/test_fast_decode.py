"""``schemas.fast_decode`` against the models: whatever the record, the fast path returns None or
exactly what ``decode_event`` + ``to_canonical`` (+ ``event_id_values``) give, and it never accepts
a record they reject. Checked on the generator's records (good, broken and identity traffic) and on
mutations of plain records, field by field, with the values at and across every limit."""

from __future__ import annotations

import calendar
import json
import random
from datetime import datetime
from typing import Any

import orjson
import pytest

from schemas.canonical import to_canonical
from schemas.decode import EventDecodeError, decode_event
from schemas.events import (
    MAX_ID_CHARS,
    MAX_ITEMS,
    MAX_LABEL_CHARS,
    MAX_MONEY,
    MAX_QTY,
    MAX_TS_MS,
    MIN_TS_MS,
    datetime_to_ms,
    rfc3339_ms,
)
from schemas.fast_decode import fast_canonical
from schemas.identity import event_id_values
from streams.tools.generator import RetailGenerator

SRC_TS = 1_796_000_000_123
HASH = "a3" * 32


def slow(source: str, raw: bytes) -> tuple[dict[str, Any], list[Any]] | None:
    """The models' answer, or None when they reject the record."""
    try:
        event = decode_event(source, raw)
    except EventDecodeError:
        return None
    return to_canonical(source, event, SRC_TS), event_id_values(event)


def check(source: str, raw: bytes) -> bool:
    """Asserts the contract for one record; returns whether the fast path took it."""
    fast = fast_canonical(source, raw, SRC_TS)
    if fast is None:
        return False
    want = slow(source, raw)
    assert want is not None, f"fast path accepted what the models reject: {source} {raw[:300]!r}"
    got_canonical, got_ids = fast
    want_canonical, want_ids = want
    assert list(got_canonical) == list(want_canonical), "key order"
    for key, value in want_canonical.items():
        assert got_canonical[key] == value and type(got_canonical[key]) is type(value), (key, raw[:300])
    assert got_ids == want_ids
    assert orjson.dumps(got_canonical) == orjson.dumps(want_canonical)
    return True


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generator_records_agree_and_plain_ones_take_the_fast_path(seed: int) -> None:
    taken = valid = 0
    gen = RetailGenerator(seed=seed, customers=500, bad_ratio=0.05, identity=True)
    for e in gen.take(6000):
        if e.source not in ("clickstream", "pos", "orders"):
            continue
        hit = check(e.source, e.value)
        taken += hit
        valid += slow(e.source, e.value) is not None
    # Every valid record the generator writes is plain (ints for ts, lower-case hashes) except the
    # few whose ids are junk placeholders the models also accept: nearly all take the fast path.
    assert valid > 5000
    assert taken >= 0.99 * valid, (taken, valid)


CLICK = {"event_id": "e-1", "ts": 1_796_000_000_000, "user_id": "u-1", "anonymous_id": "a-1", "session_id": "s-1",
         "type": "product_view", "sku": "SKU-1", "category": "shoes", "price": 19.99, "url": "/p/1", "query": None,
         "channel": "web"}
POS = {"event_id": "p-1", "ts": 1_796_000_000_000, "store_id": "s08", "member_id": "m-1", "type": "sale",
       "items": [{"sku": "A", "category": "books", "qty": 2, "unit_price": 3.5},
                 {"sku": "B", "category": "books", "qty": 1, "unit_price": 0}],
       "total": 7, "payment_method": "card", "email_sha256": HASH, "phone_sha256": None}
ORDER = {"event_id": "o-1", "ts": 1_796_000_000_000, "order_id": "o-1", "user_id": "u-1", "status": "paid",
         "amount": 10.5, "currency": "eur", "channel": "app",
         "items": [{"sku": "A", "category": "toys", "qty": 1, "unit_price": 10.5, "extra": [1, 2]}],
         "phone_sha256": HASH}
BASES = {"clickstream": CLICK, "pos": POS, "orders": ORDER}

PALETTE: list[Any] = [
    None, True, False, 0, 1, -1, 2, 2.0, 2.5, -0.0, 0.1, 1e-300, MAX_MONEY, MAX_MONEY + 1, -MAX_MONEY,
    -MAX_MONEY - 1, int(MAX_MONEY), int(MAX_MONEY) + 1, MAX_QTY, MAX_QTY + 1, float(MAX_QTY), MIN_TS_MS, MIN_TS_MS - 1,
    MAX_TS_MS, MAX_TS_MS + 1, float(MIN_TS_MS), 10**20, -(10**20), "", " ", "x", "0", "null", "x" * MAX_ID_CHARS,
    "x" * (MAX_ID_CHARS + 1), "é" * MAX_LABEL_CHARS, "é" * (MAX_LABEL_CHARS + 1), "x" * 4096, "x" * 4097,
    "x" * 8192, "x" * 8193, HASH, HASH.upper(), "g" * 64, HASH[:63], HASH + "0", "a@b.c", "+86 138 0000 0000",
    "EUR", "eur", "EU", "EURO", "E1R", "ÉUR", "2026-11-30T10:00:00Z", "2026-11-30T10:00:00", "1796000000000",
    "login", "page_view", "sale", "return", "paid", "refunded", "web", "app", "store", "marketplace",
    [], {}, [{}], [1], {"a": 1}, "\x00", "\n", "\U0001f600" * 3,
]
"""Values tried in every field: types, limits and one past them, enum members, hashes, timestamps."""
ITEM_FIELDS = ("sku", "category", "qty", "unit_price")


def mutate(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    obj = orjson.loads(orjson.dumps(base))
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        how = rng.random()
        if how < 0.6:
            field = rng.choice([*obj, "user_id", "anonymous_id", "member_id", "email_sha256", "price"])
            obj[field] = rng.choice(PALETTE)
        elif how < 0.75:
            obj.pop(rng.choice(list(obj)), None)
        elif how < 0.9 and isinstance(obj.get("items"), list) and obj["items"]:
            item = rng.choice(obj["items"])
            if isinstance(item, dict):
                if rng.random() < 0.8:
                    item[rng.choice(ITEM_FIELDS)] = rng.choice(PALETTE)
                else:
                    item.pop(rng.choice(ITEM_FIELDS), None)
        elif isinstance(obj.get("items"), list) and obj["items"]:
            obj["items"] = [obj["items"][0]] * rng.choice((0, 1, MAX_ITEMS, MAX_ITEMS + 1))
        else:
            obj["extra"] = rng.choice(PALETTE)
    return obj


@pytest.mark.parametrize("source", ["clickstream", "pos", "orders"])
def test_mutated_records_agree(source: str) -> None:
    rng = random.Random(f"fast-{source}")
    taken = 0
    for _ in range(4000):
        # json, not orjson: it writes integers past 64 bits, and \u escapes when ensure_ascii
        taken += check(source, json.dumps(mutate(rng, BASES[source]), ensure_ascii=rng.random() < 0.3).encode())
    assert taken > 400  # both sides of the contract were exercised, not only the fallback


@pytest.mark.parametrize("text", [
    "19.99", "0.1000000000000000055511151231257827", "1e2", "1E-7", "123456789.123456789", "4.9e-324",
    "2.2250738585072011e-308", "999999999999.99999", "1000000000000.0000001", "9007199254740993", "-0", "0.0",
    "1e12", "1.0e12", "100000000000000000000000", "7.3e11",
])
def test_number_text_parses_as_the_models_parse_it(text: str) -> None:
    raw = orjson.dumps({**CLICK, "price": "@"}).replace(b'"@"', text.encode())
    check("clickstream", raw)


def test_random_prices_agree_to_the_bit() -> None:
    rng = random.Random(5)
    for _ in range(3000):
        digits = rng.randint(1, 20)
        text = f"{rng.random() * 10 ** rng.randint(0, 12):.{digits}g}"
        raw = orjson.dumps({**CLICK, "price": "@"}).replace(b'"@"', text.encode())
        check("clickstream", raw)


ODD_JSON = [
    b"", b"{", b"[]", b"null", b'"x"', b"\xef\xbb\xbf{}", b'{"event_id": "e", "event_id": 5}',
    orjson.dumps(CLICK).replace(b'"e-1"', b'"\\ud800"'), orjson.dumps(CLICK) + b" ",
    orjson.dumps(CLICK).replace(b'"type":', b'"type":"login","type":'), orjson.dumps(CLICK)[:-1] + b',}',
    orjson.dumps(CLICK).replace(b"19.99", b"NaN"), orjson.dumps(CLICK).replace(b"19.99", b"Infinity"),
    orjson.dumps(CLICK).replace(b'"s-1"', b'"s-\xff"'),
    # nesting in an ignored field: pydantic-core's parser stops at 200 levels, orjson's at 1,024
    orjson.dumps(CLICK)[:-1] + b',"x":' + b"[" * 199 + b"]" * 199 + b"}",
    orjson.dumps(CLICK)[:-1] + b',"x":' + b"[" * 201 + b"]" * 201 + b"}",
    orjson.dumps(CLICK)[:-1] + b',"x":' + b"[" * 300 + b"]" * 300 + b"}",
    orjson.dumps(CLICK)[:-1] + b',"x":' + b"1" * 400 + b"}", orjson.dumps(CLICK)[:-1] + b',"x":' + b"1" * 4301 + b"}",
    orjson.dumps(CLICK).replace(b'"s-1"', b'"s\t1"'), orjson.dumps(CLICK).replace(b'"s-1"', b'"s\x011"'),
    orjson.dumps(CLICK).replace(b'"s-1"', b'"s\x7f1"'), orjson.dumps(CLICK).replace(b'"s-1"', b'"s\\u00001"'),
    orjson.dumps(CLICK).replace(b"19.99", b"1e-400"),
]
"""Records at the edges of JSON and of the two parsers (also tests/unit/test_core.py)."""


@pytest.mark.parametrize("raw", ODD_JSON)
def test_odd_json_is_agreed_or_left_to_the_models(raw: bytes) -> None:
    for source in ("clickstream", "pos", "orders", "identity", "nope"):
        check(source, raw)


def test_unknown_source_is_left_to_the_models() -> None:
    assert fast_canonical("identity", orjson.dumps(CLICK), SRC_TS) is None
    assert fast_canonical("nope", orjson.dumps(CLICK), SRC_TS) is None


def test_rfc3339_milliseconds_match_the_standard_library() -> None:
    """``rfc3339_ms`` (integer arithmetic, used by the models too) against ``datetime.fromisoformat``
    on random valid date-times: every offset, leap days, fractions of any length."""
    rng = random.Random(9)
    for _ in range(3000):
        y = rng.randint(2001, 2200)
        mo = rng.randint(1, 12)
        d = rng.randint(1, calendar.monthrange(y, mo)[1])
        frac = "" if rng.random() < 0.3 else "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 9)))
        off = rng.choice(["Z", "z", f"{rng.choice('+-')}{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"])
        text = (f"{y:04d}-{mo:02d}-{d:02d}{rng.choice('Tt ')}{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
                f"{rng.randint(0, 59):02d}{frac}{off}")
        iso = text.replace("z", "Z").replace("t", "T")
        if frac:  # fromisoformat takes up to 6 digits; the models keep milliseconds (floored)
            iso = iso.replace(frac, frac[:4].ljust(4, "0"))
        want = datetime_to_ms(datetime.fromisoformat(iso.replace("Z", "+00:00")))
        assert rfc3339_ms(text) == want, text
        assert decode_event("clickstream", orjson.dumps({**CLICK, "ts": text})).ts_ms == want


@pytest.mark.parametrize("text", ["2100-02-29T00:00:00Z", "2200-02-29T00:00:00Z", "2001-02-29T00:00:00Z",
                                  "2026-04-31T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:60Z",
                                  "2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00", "2000-12-31T23:59:59Z",
                                  "2201-01-01T00:00:00Z", "2026-01-01T00:00:00Z\n", "2026-1-01T00:00:00Z",
                                  "\uff12\uff10\uff12\uff16-01-01T00:00:00Z", "2026-01-01T00:00:00.Z"])
def test_invalid_rfc3339_is_left_to_the_models(text: str) -> None:
    assert rfc3339_ms(text) is None
    assert fast_canonical("clickstream", orjson.dumps({**CLICK, "ts": text}), SRC_TS) is None
    with pytest.raises(EventDecodeError):
        decode_event("clickstream", orjson.dumps({**CLICK, "ts": text}))
