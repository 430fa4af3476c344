"""The Rust core's fast path (``native/src/lib.rs``, ``tagstream_core.fast_event``) against the models:
whatever the record, it returns None or an event whose encoded item is exactly the canonical event
``decode_event`` + ``to_canonical`` give (same keys, order, values and types; ``event_id_values``'
typed ids), with the customer key and source position ingest stamps; it never accepts a record they
reject. The same generated, mutated and odd records as tests/unit/test_fast_decode.py.

The core must be built (``python -m streams.tools.build_native``, which deploy/local/bootstrap.sh
runs): without it these tests fail rather than skip."""

from __future__ import annotations

import calendar
import json
import random
from typing import Any

import orjson
import pytest

from schemas import events
from schemas.fast_decode import fast_canonical
from schemas.ids import CONTACT_HASH_CHARS, CONTACT_TYPES
from streams.engine import native_core
from streams.tools.generator import RetailGenerator
from tests.unit.test_fast_decode import BASES, CLICK, ODD_JSON, SRC_TS, mutate, slow

SP, SO = "clickstream:3", 1_234_567


def core() -> Any:
    assert native_core.CORE is not None, (f"{native_core.CORE_REASON}: run `python -m streams.tools.build_native` "
                                          "(deploy/local/bootstrap.sh does)")
    return native_core.CORE


def check(source: str, raw: bytes) -> bool:
    """Asserts the contract for one record; returns whether the core took it."""
    got = core().fast_event(source, raw, SRC_TS)
    if got is None:
        return False
    want = slow(source, raw)
    assert want is not None, f"the core accepted what the models reject: {source} {raw[:300]!r}"
    canonical, ids = want
    assert got.ids == ids
    assert (got.event_id, got.ts_ms, got.customer_id) == (canonical["event_id"], canonical["ts_ms"],
                                                          canonical["customer_id"])
    for key in (canonical["customer_id"], "user:u-\"1\u00e9", None):
        item = orjson.loads(got.item(key, SP, SO))
        expected = {**canonical, "customer_id": key, "sp": SP, "so": SO}
        assert list(item) == list(expected), "key order"
        for k, value in expected.items():
            assert item[k] == value and type(item[k]) is type(value), (k, raw[:300])
    return True


def test_the_core_checks_the_limits_of_the_models() -> None:
    limits = core().limits()
    for name in ("MAX_ID_CHARS", "MAX_LABEL_CHARS", "MAX_QUERY_CHARS", "MAX_URL_CHARS", "MAX_ITEMS", "MAX_MONEY",
                 "MAX_QTY", "MIN_TS_MS", "MAX_TS_MS", "MAX_TS_CHARS", "CLICK_TYPES", "POS_TYPES", "ORDER_STATUSES",
                 "ORDER_CHANNELS"):
        want = getattr(events, name)
        assert limits[name] == (list(want) if isinstance(want, tuple) else want), name
    assert limits["CONTACT_HASH_CHARS"] == CONTACT_HASH_CHARS
    assert limits["CONTACT_TYPES"] == list(CONTACT_TYPES)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generator_records_agree_and_the_core_takes_what_the_python_fast_path_takes(seed: int) -> None:
    taken = fast = 0
    gen = RetailGenerator(seed=seed, customers=500, bad_ratio=0.05, identity=True)
    for e in gen.take(6000):
        if e.source not in ("clickstream", "pos", "orders"):
            continue
        taken += check(e.source, e.value)
        fast += fast_canonical(e.source, e.value, SRC_TS) is not None
    assert fast > 5000
    assert taken == fast, (taken, fast)


@pytest.mark.parametrize("source", ["clickstream", "pos", "orders"])
def test_mutated_records_agree(source: str) -> None:
    """...and the core takes exactly the records the Python fast path takes: values at every limit
    included (one that refused more would pass ``check`` alone)."""
    rng = random.Random(f"core-{source}")
    taken = 0
    for _ in range(4000):
        raw = json.dumps(mutate(rng, BASES[source]), ensure_ascii=rng.random() < 0.3).encode()
        took = check(source, raw)
        assert took == (fast_canonical(source, raw, SRC_TS) is not None), raw[:300]
        taken += took
    assert taken > 400  # both sides of the contract were exercised, not only the fallback


@pytest.mark.parametrize("text", [
    "19.99", "0.1000000000000000055511151231257827", "1e2", "1E-7", "123456789.123456789", "4.9e-324",
    "2.2250738585072011e-308", "999999999999.99999", "1000000000000.0000001", "9007199254740993", "-0", "0.0",
    "1e12", "1.0e12", "100000000000000000000000", "7.3e11", "1e-400", "-0.0", "18446744073709551616",
    "9223372036854775808", "-9223372036854775809", "1000000000000", "1000000000001",
])
def test_number_text_parses_as_the_models_parse_it(text: str) -> None:
    raw = orjson.dumps({**CLICK, "price": "@"}).replace(b'"@"', text.encode())
    check("clickstream", raw)
    check("pos", orjson.dumps({**BASES["pos"], "total": "@"}).replace(b'"@"', ("-" + text).encode()))


def test_random_prices_agree_to_the_bit() -> None:
    rng = random.Random(5)
    taken = 0
    for _ in range(3000):
        digits = rng.randint(1, 20)
        text = f"{rng.random() * 10 ** rng.randint(0, 12):.{digits}g}"
        taken += check("clickstream", orjson.dumps({**CLICK, "price": "@"}).replace(b'"@"', text.encode()))
    assert taken > 2900


@pytest.mark.parametrize("raw", [
    *ODD_JSON,
    orjson.dumps(CLICK).replace(b'"s-1"', b'"s\\ud83d\\ude001"'), orjson.dumps(CLICK).replace(b'"s-1"', b'"s\\/1"'),
    orjson.dumps(CLICK).replace(b'"u-1"', b'"u-1", "user_id": null'),
    orjson.dumps(CLICK).replace(b'"u-1"', b'"u-1" ,\n\t"x" : [ {"y": [null, true, -1.5e3]} ] '),
    orjson.dumps(CLICK).replace(b"19.99", b"01"), orjson.dumps(CLICK).replace(b"19.99", b"1."),
    orjson.dumps(CLICK).replace(b"19.99", b".5"), orjson.dumps(CLICK).replace(b"19.99", b"+1"),
    orjson.dumps(CLICK).replace(b"19.99", b"1e"), orjson.dumps(CLICK).replace(b"19.99", b"true"),
    orjson.dumps(CLICK) + b"x", orjson.dumps(CLICK) + b"{}",
])
def test_odd_json_is_agreed_or_left_to_the_models(raw: bytes) -> None:
    for source in ("clickstream", "pos", "orders", "identity", "nope"):
        check(source, raw)
    assert core().fast_event("identity", orjson.dumps(CLICK), SRC_TS) is None


def test_rfc3339_milliseconds_match_the_models() -> None:
    """The core's ``ts`` strings against ``schemas.events.rfc3339_ms`` on random date-times and on
    each of them broken at one character."""
    rng = random.Random(9)
    for _ in range(3000):
        y = rng.randint(1999, 2202)
        mo = rng.randint(1, 12)
        d = rng.randint(1, calendar.monthrange(y, mo)[1] + rng.choice((0, 0, 0, 1)))
        frac = "" if rng.random() < 0.3 else "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 9)))
        off = rng.choice(["Z", "z", "", f"{rng.choice('+-')}{rng.randint(0, 24):02d}:{rng.randint(0, 60):02d}"])
        text = (f"{y:04d}-{mo:02d}-{d:02d}{rng.choice('Tt x')}{rng.randint(0, 24):02d}:{rng.randint(0, 59):02d}:"
                f"{rng.randint(0, 60):02d}{frac}{off}")
        assert core().rfc3339_ms(text) == events.rfc3339_ms(text), text
        i = rng.randrange(len(text))
        broken = text[:i] + rng.choice("0a:-.+ Z\u0661") + text[i + 1:]
        assert core().rfc3339_ms(broken) == events.rfc3339_ms(broken), broken
    long = "2026-01-01T00:00:00." + "1" * 43 + "Z"  # 64 characters
    assert core().rfc3339_ms(long) == events.rfc3339_ms(long) is not None
    assert core().rfc3339_ms(long[:-1] + "1Z") is events.rfc3339_ms(long[:-1] + "1Z") is None  # 65
