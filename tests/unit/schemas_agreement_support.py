"""Shared by the JSON Schema agreement tests (tests/unit/test_schemas_agreement_*.py): the two
verdicts they compare (``decode_event``/``decode_identity`` and a Draft 2020-12 ``jsonschema``
validator of the committed schemas, with format checking), the known exceptions, the valid records
and the JSON writer the cases are built with, and the autouse fixture that pins Python's integer
digits limit (import it into each of those modules).

The schema side reads the bytes as standard JSON (RFC 8259, I-JSON strings): UTF-8 without a BOM,
no NaN/Infinity, no lone surrogates. Bytes that are not such JSON are "rejected" by the schema side.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from schemas import SOURCES, EventDecodeError, decode_event, decode_identity
from schemas.export import DEFAULT_DIR
from schemas.identity import IDENTITY_SOURCE

TS_MS = 1769857200250

# The committed files, not a fresh export: they are what clients use (test_schemas_models.py
# checks that they are current).
ALL = (*SOURCES, IDENTITY_SOURCE)
"""The three event sources and the identity source."""
SCHEMAS: dict[str, dict[str, Any]] = {
    src: json.loads((DEFAULT_DIR / f"{src}.schema.json").read_text(encoding="utf-8")) for src in ALL
}
VALIDATORS: dict[str, Draft202012Validator] = {
    src: Draft202012Validator(s, format_checker=Draft202012Validator.FORMAT_CHECKER) for src, s in SCHEMAS.items()
}

PARSER_MAX_DEPTH = 200
"""Deepest nesting of arrays/objects pydantic-core's JSON parser reads (its recursion limit)."""

KNOWN_EXCEPTIONS: dict[str, str] = {
    "nonstandard_literal": (
        "NaN, Infinity and -Infinity are not JSON, so no JSON Schema applies to a record holding them. "
        "pydantic-core's parser reads them; every typed field rejects them (not a finite number / wrong "
        "type), so the decoder accepts them only in fields it ignores. Checked claim: the decoder's verdict "
        "equals the schema's verdict on the record with each such literal replaced by a value no field accepts."
    ),
    "parser_depth": (
        f"pydantic-core's JSON parser stops at {PARSER_MAX_DEPTH} levels of nesting (RFC 8259 section 9 lets a "
        "parser limit depth); a JSON Schema cannot bound the depth of fields it does not describe. Checked "
        "claim: the record nests deeper than the limit and the decoder says invalid_json."
    ),
}
"""Disagreements the JSON Schema cannot avoid: key -> reason. Keep it short; aim for none."""


# -- the two verdicts --------------------------------------------------------------------------


class NotJson(ValueError):
    pass


def _no_constants(name: str) -> Any:
    raise NotJson(f"{name} is not JSON")


def _check_strings(value: Any) -> None:
    # I-JSON (RFC 7493): strings are valid Unicode; Python's json would keep a lone "\ud800".
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            v.encode("utf-8")  # UnicodeEncodeError (a ValueError) on a lone surrogate
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def parse_json(raw: bytes, parse_constant: Callable[[str], Any] = _no_constants) -> Any:
    text = raw.decode("utf-8")  # strict: invalid UTF-8 and UTF-8-encoded surrogates fail; a BOM stays
    doc = json.loads(text, parse_constant=parse_constant)
    _check_strings(doc)
    return doc


def schema_accepts(source: str, raw: bytes) -> bool:
    try:
        doc = parse_json(raw)
    except (ValueError, RecursionError):
        return False
    return bool(VALIDATORS[source].is_valid(doc))


def decoder_verdict(source: str, raw: bytes) -> str | None:
    """None when decode_event accepts ``raw``, else the EventDecodeError reason."""
    try:
        if source == IDENTITY_SOURCE:
            decode_identity(raw)
        else:
            decode_event(source, raw)
    except EventDecodeError as exc:
        return exc.reason
    return None


class _Unusable(dict[str, str]):
    """Stands in for a NaN/Infinity literal: an object no field of any source accepts."""


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def explained_by(source: str, raw: bytes, reason: str | None) -> str | None:
    """The KNOWN_EXCEPTIONS key whose checked claim explains a disagreement on ``raw``, or None."""
    try:
        lenient = parse_json(raw, parse_constant=lambda name: _Unusable({"nonstandard": name}))
    except RecursionError:
        return None
    except ValueError:
        return None
    if _depth(lenient) > PARSER_MAX_DEPTH and reason == "invalid_json":
        return "parser_depth"
    try:
        parse_json(raw)
    except NotJson:
        substituted = VALIDATORS[source].is_valid(lenient)
        if substituted == (reason is None):
            return "nonstandard_literal"
    except ValueError:
        pass
    return None


# -- valid records, and JSON with literals written as is ----------------------------------------


ITEM: dict[str, Any] = {"sku": "SKU-1", "category": "shoes", "qty": 2, "unit_price": 19.99}
HASH = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
MEMBER: dict[str, Any] = {"type": "member", "value": "m-1"}
EMAIL: dict[str, Any] = {"type": "email_sha256", "value": HASH}
VALID: dict[str, dict[str, Any]] = {
    "clickstream": {"event_id": "c-1", "ts": TS_MS, "user_id": "u-1", "anonymous_id": "a-1", "session_id": "s-1",
                    "type": "add_to_cart", "sku": "SKU-1", "category": "shoes", "price": 19.99,
                    "url": "https://shop.example/p/1", "query": "red shoes", "channel": "web"},
    "pos": {"event_id": "p-1", "ts": TS_MS, "store_id": "st-7", "member_id": "m-1", "type": "sale",
            "items": [ITEM, {**ITEM, "sku": "SKU-2"}], "total": 39.98, "payment_method": "card"},
    "orders": {"event_id": "o-1", "ts": TS_MS, "order_id": "ord-1", "user_id": "u-1", "status": "paid",
               "amount": 39.98, "currency": "EUR", "channel": "app", "items": [ITEM], "email_sha256": HASH},
    "identity": {"event_id": "i-1", "ts": TS_MS, "source": "crm", "ids": [MEMBER, EMAIL]},
}


class Raw:
    """A JSON literal written as is (NaN, 1e400, 1.0e0, a 5000-digit integer)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:30]!r})"


def dumps(doc: Any) -> bytes:
    """json.dumps, with every Raw value written verbatim."""
    raws: list[str] = []

    def default(o: Any) -> Any:
        if isinstance(o, Raw):
            raws.append(o.text)
            return f"\u2063RAW{len(raws) - 1}\u2063"
        raise TypeError(type(o).__name__)

    text = json.dumps(doc, default=default, ensure_ascii=False)
    for i, lit in enumerate(raws):
        text = text.replace(json.dumps(f"\u2063RAW{i}\u2063", ensure_ascii=False), lit, 1)
    return text.encode("utf-8", "surrogatepass")


# -- the fixture ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _big_ints() -> Iterator[None]:
    # Python's json reads integers of up to 4300 digits, like pydantic-core; keep that default
    # explicit so a test run that changed it elsewhere cannot hide a difference.
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(4300)
    yield
    sys.set_int_max_str_digits(old)
