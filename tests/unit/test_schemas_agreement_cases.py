"""The committed JSON Schemas themselves (valid Draft 2020-12, with their ids and timestamp forms),
and where they must agree with ``decode_event`` besides the corpus (test_schemas_agreement_corpus.py):
the cases clients reported, the calendar of TS_PATTERN and hypothesis-made timestamps."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from schemas import MAX_TS_MS, MIN_TS_MS
from schemas.events import TS_PATTERN
from schemas.export import schema_id

from .schemas_agreement_support import (
    ITEM,
    SCHEMAS,
    VALID,
    _big_ints,  # noqa: F401  (the autouse fixture)
    decoder_verdict,
    dumps,
    schema_accepts,
)


def test_schemas_are_valid_draft_2020_12_with_ids() -> None:
    for source, schema in SCHEMAS.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == schema_id(source) == f"https://tagstream.dev/schemas/{source}.schema.json"
        ts = schema["properties"]["ts"]["anyOf"]
        assert ts[0]["pattern"] == TS_PATTERN
        assert (ts[1]["minimum"], ts[1]["maximum"]) == (MIN_TS_MS, MAX_TS_MS)


@pytest.mark.parametrize(
    ("source", "doc", "accepted"),
    [
        # What real clients reported: the old schemas accepted these, the decoder did not ...
        ("clickstream", {**VALID["clickstream"], "user_id": None, "anonymous_id": None}, False),
        ("pos", {**VALID["pos"], "ts": "1900-01-01T00:00:00Z"}, False),
        ("pos", {**VALID["pos"], "ts": 1769857200250.5}, False),
        ("clickstream", {**VALID["clickstream"], "ts": 1796001968}, False),  # epoch seconds
        # ... and now both accept these (a JSON number without a fraction is an integer)
        ("pos", {**VALID["pos"], "items": [{**ITEM, "qty": 1.0}]}, True),
        ("pos", {**VALID["pos"], "ts": 1769857200250.0}, True),
        # ... the old schemas rejected this one (format date-time wants a T), the decoder did not
        ("orders", {**VALID["orders"], "ts": "2026-11-30 01:20:00Z"}, True),
    ],
    ids=["both-ids-null", "year-1900", "fractional-ms", "epoch-seconds", "qty-1.0", "ts-float-whole",
         "space-separator"],
)
def test_reported_cases(source: str, doc: dict[str, Any], accepted: bool) -> None:
    raw = dumps(doc)
    assert (decoder_verdict(source, raw) is None) is accepted
    assert schema_accepts(source, raw) is accepted


def test_ts_pattern_matches_exactly_the_real_dates_in_range() -> None:
    """The year/month/day part of TS_PATTERN (leap years included) against the calendar."""
    pattern = re.compile(TS_PATTERN)
    for y in range(1999, 2203):
        for m in range(14):
            for d in range(33):
                try:
                    real = 2001 <= y <= 2200 and date(y, m, d) is not None
                except ValueError:
                    real = False
                text = f"{y:04d}-{m:02d}-{d:02d}T00:00:00Z"
                assert (pattern.fullmatch(text) is not None) == real, text


_digits = st.integers(min_value=0, max_value=99).map(lambda n: f"{n:02d}")


@st.composite
def ts_strings(draw: st.DrawFn) -> str:
    """Near-RFC 3339 strings: random fields, separators, fractions and offsets, some malformed."""
    year = draw(st.sampled_from(["1999", "2000", "2001", "2026", "2100", "2104", "2200", "2201", "0000", "20262"]))
    sep = draw(st.sampled_from(["T", "t", " ", "_", "", "  "]))
    frac = draw(st.sampled_from(["", ".", ".5", ".123", ".1234567", "." + "9" * 30, ",5"]))
    offset = draw(st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+05:30", "-23:59", "+24:00", "+0100",
                                   "+01", "Z\n", "UTC"]))
    hh, mi, ss = draw(_digits), draw(_digits), draw(_digits)
    return f"{year}-{draw(_digits)}-{draw(_digits)}{sep}{hh}:{mi}:{ss}{frac}{offset}"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(ts=st.one_of(ts_strings(), st.integers(min_value=-(2**64), max_value=2**64),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.integers(min_value=MIN_TS_MS - 10, max_value=MIN_TS_MS + 10),
                    st.integers(min_value=MAX_TS_MS - 10, max_value=MAX_TS_MS + 10)))
def test_ts_verdicts_agree(ts: Any) -> None:
    raw = dumps({**VALID["orders"], "ts": ts})
    assert (decoder_verdict("orders", raw) is None) == schema_accepts("orders", raw), ts
