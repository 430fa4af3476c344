"""The record kinds of the fuzz run (benchmarks/fuzz.py): one builder per kind (``k_*`` invalid,
``v_*`` valid controls) and the ``KINDS`` table with each kind's share of the run and expected outcome."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .fuzz_fields import (
    BAD_TS,
    EMPTY_VALUES,
    HUGE_NUMBERS,
    ITEM,
    MB,
    OUT_OF_RANGE,
    RAW,
    REQUIRED,
    TOMBSTONE,
    UNKNOWN_ENUMS,
    WRONG_TYPES,
    Ctx,
    _ts_ok,
    base_event,
    dumps_raw,
    pick,
    with_field,
)


def k_invalid_utf8(c: Ctx) -> bytes:
    bad = c.rng.choice([b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80",
                        b"\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80"])
    ev = base_event(c)
    ev["note"] = "zz"
    body = orjson.dumps(ev)
    where = c.rng.randrange(4)
    if where == 0:
        return body.replace(b'"fz-', b'"fz-' + bad, 1)  # inside event_id
    if where == 1:
        return body.replace(b'"zz"', b'"' + bad + b'"')  # inside an ignored extra field
    if where == 2:
        return body.replace(b'"note"', b'"no' + bad + b'te"')  # inside a key
    return bad + body  # before the object


def k_lone_surrogate(c: Ctx) -> bytes:
    return orjson.dumps(base_event(c)).replace(b'"fz-', b'"\\ud800fz-', 1)


def k_truncated(c: Ctx) -> bytes:
    body = orjson.dumps(base_event(c))
    return body[: c.rng.randrange(1, len(body))]


def k_garbage(c: Ctx) -> bytes:
    return c.rng.randbytes(c.rng.randrange(1, 300))


def k_not_an_object(c: Ctx) -> bytes:
    body = orjson.dumps(base_event(c))
    return c.rng.choice([b"[]", b"[" + body + b"]", b'"' + body.replace(b'"', b'\\"') + b'"', b"null", b"0",
                         b"-1.5e3", b"true", b'""', b"   ", b"\n", b"{}", b"[{}]", b"[null]", body + body,
                         body + b" x", b"\xef\xbb\xbf" + body])


def k_nul_bytes(c: Ctx) -> bytes:
    body = orjson.dumps(base_event(c))
    return c.rng.choice([body.replace(b'"fz-', b'"\x00fz-', 1), body + b"\x00", b"\x00" + body,
                         b"\x00" * c.rng.randrange(1, 64), body.replace(b",", b",\x00", 1)])


def k_deep(c: Ctx) -> bytes:
    depth = c.rng.randrange(10_000, 100_001)
    shape = c.rng.randrange(5)
    if shape == 0:
        return b"[" * depth + b"]" * depth
    if shape == 1:
        return b'{"a":' * depth + b"1" + b"}" * depth
    if shape == 2:
        return b"[" * depth  # deep and truncated
    ev = base_event(c)
    ev["x" if shape == 3 else "ts"] = RAW  # deep inside an ignored extra field, or in ts
    return dumps_raw(ev, b"[" * depth + b"]" * depth)


def k_missing_field(c: Ctx) -> bytes:
    ev = base_event(c)
    for name in c.rng.sample(REQUIRED[c.source], c.rng.randrange(1, 3)):
        ev.pop(name, None)
    return orjson.dumps(ev)


def k_wrong_type(c: Ctx) -> bytes:
    return with_field(c, *pick(c, WRONG_TYPES))


def k_empty_value_field(c: Ctx) -> bytes:
    return with_field(c, *pick(c, EMPTY_VALUES))


def k_unknown_enum(c: Ctx) -> bytes:
    return with_field(c, *pick(c, UNKNOWN_ENUMS))


def k_out_of_range(c: Ctx) -> bytes:
    return with_field(c, *pick(c, OUT_OF_RANGE))


def k_bad_ts(c: Ctx) -> bytes:
    return with_field(c, "ts", c.rng.choice(BAD_TS))


def k_future_ts(c: Ctx) -> bytes:
    # Decodes fine; the worker rejects it (future_timestamp: more than 5 min ahead of its clock).
    ts = c.rng.choice([c.now_ms + 86_400_000, c.now_ms + 10 * 365 * 86_400_000, "2199-12-31T23:59:59Z",
                       "2200-12-31T23:59:59.999Z", "2100-01-01T00:00:00+14:00"])
    return with_field(c, "ts", ts)


def k_huge_number(c: Ctx) -> bytes:
    lit = c.rng.choice([b"1e400", b"-1e400", b"1e309", b"1" + b"0" * 5000, b"-" + b"9" * 5000,
                        b"0." + b"0" * 5000 + b"1e99999"])
    where = c.rng.choice(HUGE_NUMBERS[c.source] + ["ts", "event_id"])
    if where == "items.qty" and lit.startswith(b"0."):
        lit = b"1e400"  # a tiny positive float is "not an int" anyway; keep this kind about size
    return with_field(c, where, lit)


def k_extra_fields(c: Ctx) -> bytes:
    ev = base_event(c)
    for n in range(c.rng.randrange(100, 5000)):
        ev[f"x{n}"] = n if n % 3 else {"__proto__": {"polluted": True}, "$where": "1==1", "constructor": [n]}
    ev.pop(c.rng.choice(REQUIRED[c.source]))
    return orjson.dumps(ev)


def k_duplicate_keys(c: Ctx) -> bytes:
    # The last occurrence wins (pydantic-core), so the invalid value goes last.
    body = orjson.dumps(base_event(c))
    enum = b"status" if c.source == "orders" else b"type"
    return body[:-1] + c.rng.choice([b',"ts":"yesterday"}', b',"' + enum + b'":"nope"}', b',"event_id":7}',
                                     b',"event_id":"x","event_id":""}'])


def k_duplicate_event_id_invalid(c: Ctx) -> bytes:
    # The same event id many times, each record invalid: every one must be dead-lettered.
    return with_field(c, "ts", "yesterday", base_event(c, event_id="fz-dup-invalid"))


def _padded_invalid(c: Ctx, size: int) -> bytes:
    """An invalid event of about ``size`` bytes: a huge string where it hurts most."""
    ev = base_event(c)
    filler = "".join(c.rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=60)) + "é€😀"  # 69 bytes, 63 chars
    blob = filler * (max(0, size - 250) // 69)
    where = c.rng.randrange(3)
    if where == 0:
        # an enum value megabytes long (the error message must not echo it)
        ev["status" if c.source == "orders" else "type"] = blob
    elif where == 1:
        ev["ts"] = blob  # a timestamp string megabytes long
    else:
        ev["note"] = blob  # a huge ignored field ...
        ev.pop("event_id")  # ... on an event missing its id
    return orjson.dumps(ev)


def k_large_string(c: Ctx) -> bytes:
    return _padded_invalid(c, c.rng.randrange(100_000, 900_001))


def k_huge_string(c: Ctx) -> bytes:
    # 1-5 MiB: over the broker's default message.max.bytes (1,048,588); the broker refuses them.
    return _padded_invalid(c, c.rng.randrange(MB + 4096, 5 * MB + 1))


OVER_LIMIT: dict[str, list[str]] = {
    # field -> over its documented limit (schemas/events.py): ids 256 chars, url 8192, items 1000
    "clickstream": ["event_id", "user_id", "session_id", "sku", "url", "query", "category"],
    "pos": ["event_id", "member_id", "store_id", "items"],
    "orders": ["event_id", "user_id", "order_id", "items"],
}
LIMIT_OF = {"url": 8192, "query": 4096, "items": 1000}


def k_epoch_seconds(c: Ctx) -> bytes:
    """A timestamp in epoch SECONDS (read as ms it would be January 1970)."""
    return with_field(c, "ts", _ts_ok(c) // 1000)


def k_over_limit(c: Ctx) -> bytes:
    """A well-formed event with one field just over, or far over, its size limit."""
    name = c.rng.choice(OVER_LIMIT[c.source])
    limit = LIMIT_OF.get(name, 256)
    n = limit + 1 if c.rng.random() < 0.5 else c.rng.randrange(limit + 2, (4 if name != "items" else 2) * limit)
    if name == "items":
        return with_field(c, "items", [dict(ITEM, sku=f"s{i}") for i in range(n)])
    return with_field(c, name, "x" * n)


def k_huge_compressed(c: Ctx) -> bytes:
    """A 2-6 MiB event (a huge id) that compresses well: the broker takes it from a gzip producer;
    the worker must dead-letter it whole (invalid_field), not choke on it."""
    name = {"clickstream": "user_id", "pos": "member_id", "orders": "user_id"}[c.source]
    return with_field(c, name, "customer-" * (c.rng.randrange(2 * MB, 6 * MB) // 9))


def v_at_limits(c: Ctx) -> bytes:
    """Every bounded field exactly at its limit: valid."""
    ev = base_event(c, event_id=f"fz-{c.i}-" + "e" * (256 - len(f"fz-{c.i}-")))
    if c.source == "clickstream":
        ev.update(url="https://shop/" + "u" * (8192 - 13), session_id="s" * 256, query="q" * 4096)
    else:
        ev["items"] = [dict(ev["items"][0], sku=f"s{i}") for i in range(1000)]
        total = round(sum(it["qty"] * it["unit_price"] for it in ev["items"]), 2)
        ev["total" if c.source == "pos" else "amount"] = total
    return orjson.dumps(ev)


def k_empty_record(c: Ctx) -> bytes:
    return b""


def k_tombstone(c: Ctx) -> None:
    return TOMBSTONE


# valid controls (must NOT be dead-lettered)
_DUP_POOL: dict[str, dict[str, Any]] = {}


def v_plain(c: Ctx) -> bytes:
    return orjson.dumps(base_event(c))


def v_rfc3339(c: Ctx) -> bytes:
    ev = base_event(c)
    ms = ev["ts"]
    ev["ts"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}+00:00"
    return orjson.dumps(ev)


def v_extra_fields(c: Ctx) -> bytes:
    ev = base_event(c)
    ev.update({"schema_version": 2, "debug": {"a": [1, 2, {"b": None}]}, "nested": RAW, "emoji": "😀\u00e9"})
    return dumps_raw(ev, b"[" * 40 + b"]" * 40)


def v_nonstandard_extra(c: Ctx) -> bytes:
    # NaN / 1e400 in an ignored field: pydantic-core parses them; the event is valid.
    return with_field(c, "measure", c.rng.choice([b"NaN", b"Infinity", b"1e400"]))


def v_escaped_nul_id(c: Ctx) -> bytes:
    # "\u0000" inside an id is a valid JSON string; the contract does not forbid it.
    return orjson.dumps(base_event(c, event_id=f"fz-{c.i}\u0000nul"))


def v_duplicate(c: Ctx) -> bytes:
    """The same valid event (same customer, same event_id) as an earlier record: counted once."""
    ev = _DUP_POOL.get(c.source)
    if ev is None or c.rng.random() < 0.2:
        ev = base_event(c, customer=f"fz-dup{c.rng.randrange(10)}", event_id=f"fz-dup-{c.source}-{c.i}")
        _DUP_POOL[c.source] = ev
    return orjson.dumps(ev)


def v_anonymous(c: Ctx) -> bytes:
    ev = base_event(c)
    if c.source == "clickstream":
        ev.pop("user_id")
        ev["anonymous_id"] = f"anon-{c.i}"
    elif c.source == "pos":
        ev["member_id"] = None
    else:
        return orjson.dumps(ev)  # orders always have a user
    return orjson.dumps(ev)


@dataclass(frozen=True)
class Kind:
    name: str
    build: Callable[[Ctx], bytes | None]
    per_million: float = 0.0
    """Share of the run (records per million)."""
    fixed: int | None = None
    """A fixed count instead (heavy payloads)."""
    expect: str = "dlq"
    """"dlq" (rejected by decode_event), "dlq_worker" (decodes, the worker rejects it), "valid"."""
    anonymous: bool = False
    compressed: bool = False
    """Sent by a gzip producer (a value over the broker's 1 MB limit that compresses under it)."""

    def count(self, n: int) -> int:
        if self.fixed is not None:
            return self.fixed
        return max(1, round(n * self.per_million / 1e6))


KINDS: tuple[Kind, ...] = (
    Kind("invalid_utf8", k_invalid_utf8, 90_000),
    Kind("lone_surrogate", k_lone_surrogate, 20_000),
    Kind("truncated_json", k_truncated, 100_000),
    Kind("garbage_bytes", k_garbage, 60_000),
    Kind("not_an_object", k_not_an_object, 70_000),
    Kind("nul_bytes", k_nul_bytes, 50_000),
    Kind("missing_field", k_missing_field, 100_000),
    Kind("wrong_type", k_wrong_type, 110_000),
    Kind("empty_field_value", k_empty_value_field, 60_000),
    Kind("unknown_enum", k_unknown_enum, 70_000),
    Kind("out_of_range", k_out_of_range, 40_000),
    Kind("bad_timestamp", k_bad_ts, 110_000),
    Kind("future_timestamp", k_future_ts, 30_000, expect="dlq_worker"),
    Kind("huge_number", k_huge_number, 20_000),
    Kind("extra_fields_and_missing", k_extra_fields, 300),
    Kind("duplicate_json_keys", k_duplicate_keys, 20_000),
    Kind("duplicate_event_id_invalid", k_duplicate_event_id_invalid, 10_000),
    Kind("empty_record", k_empty_record, 10_000),
    Kind("null_record", k_tombstone, 10_000),
    Kind("deep_nesting", k_deep, 200),
    Kind("large_string_100k_900k", k_large_string, 50),
    Kind("huge_string_1_5mb", k_huge_string, fixed=5),
    Kind("epoch_seconds_ts", k_epoch_seconds, 10_000),
    Kind("over_limit_field", k_over_limit, 5_000),
    Kind("huge_valid_shape_compressed_2_6mb", k_huge_compressed, fixed=5, compressed=True),
    Kind("valid", v_plain, 5_000, expect="valid"),
    Kind("valid_rfc3339", v_rfc3339, 1_000, expect="valid"),
    Kind("valid_extra_fields", v_extra_fields, 1_000, expect="valid"),
    Kind("valid_nonstandard_json_extra", v_nonstandard_extra, 500, expect="valid"),
    Kind("valid_escaped_nul_in_id", v_escaped_nul_id, 500, expect="valid"),
    Kind("valid_duplicate_event_id", v_duplicate, 1_000, expect="valid"),
    Kind("valid_anonymous", v_anonymous, 1_000, expect="valid", anonymous=True),
    Kind("valid_at_size_limits", v_at_limits, 200, expect="valid"),
)
KIND_INDEX = {k.name: i for i, k in enumerate(KINDS)}
