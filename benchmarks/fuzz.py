"""Fuzz run: malformed and adversarial events through the REAL worker on the real broker.

    python -m benchmarks.fuzz [--events 1000000] [--seed 1] [--kinds K1,K2] [--no-probes]

Method and results: benchmarks/FUZZ.md. In short:

1. A deterministic mix of payloads for all three source topics (``KINDS``: each kind has a
   count; ~99 % are invalid in some way, ~1 % are valid controls). ``--seed`` fixes the mix,
   the order and every byte except the ``ts`` of valid events (relative to the run start).
2. In-process: ``schemas.decode.decode_event`` over every payload; it must raise only
   ``EventDecodeError`` for the invalid ones and accept the valid ones (counted by reason,
   timed in events/s). Accepted payloads also go through ``to_canonical`` + ``orjson.dumps``,
   the rest of the worker's ingest path.
3. A real ``tagstream worker`` subprocess on fresh topics; every payload is produced (aiokafka,
   batched; records the broker refuses are counted and left out), the dead-letter topic is read
   until every expected record arrived, and each DLQ record is matched to what was produced by
   its ``ts.source_topic/partition/offset`` headers: value and key bytes must be identical
   (BLAKE2b digests), ``ts.reason``/``ts.error`` present, reason == the in-process reason.
   Valid controls must not be dead-lettered. The worker must stay alive with no agent crash
   or restart in its log; its RSS/VmHWM is sampled all along.
4. Probes (each on its own small worker, since they may break ingest): records that the fuzz
   found or suspects to crash the worker (see ``PROBES``).

Writes JSON to benchmarks/results/fuzz-<run>.json and reproducers of every failure under
benchmarks/results/fuzz-<run>/. Needs Kafka and Redis (``bash deploy/local/stack.sh up kafka redis``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import sys
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from schemas.canonical import to_canonical
from schemas.decode import EventDecodeError, decode_event
from streams.tools.generator import SOURCES

from .common import RESULTS, Load, Proc, delete_topics, free_port, log, machine_info, tagstream_env, try_scrape
from .procstat import cpu_seconds, vm_hwm_bytes, vm_rss_bytes

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
TOMBSTONE = None  # a record with a null value

# -- payloads ----------------------------------------------------------------------------------------

Payload = tuple[bytes | None, bytes | None]  # (key, value)


@dataclass(frozen=True)
class Ctx:
    rng: random.Random
    i: int
    source: str
    now_ms: int


def _ts_ok(c: Ctx) -> int:
    return c.now_ms - c.rng.randrange(1, 3_600_000)


def base_event(c: Ctx, *, customer: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    """A valid event of ``c.source``."""
    cust = customer or f"fz-c{c.rng.randrange(1000):04d}"
    eid = event_id or f"fz-{c.i}"
    sku = f"sku-{c.rng.randrange(50)}"  # draw order matters: --seed reproduces the published run
    qty, price = c.rng.randrange(1, 4), round(c.rng.uniform(1, 200), 2)
    item: dict[str, Any] = {"sku": sku, "category": "shoes", "qty": qty, "unit_price": price}
    if c.source == "clickstream":
        return {"event_id": eid, "ts": _ts_ok(c), "user_id": cust, "session_id": f"s{c.rng.randrange(99)}",
                "type": "product_view", "sku": item["sku"], "category": "shoes", "price": item["unit_price"]}
    if c.source == "pos":
        return {"event_id": eid, "ts": _ts_ok(c), "store_id": "s01", "member_id": cust, "type": "sale",
                "items": [item], "total": price * qty, "payment_method": "card"}
    return {"event_id": eid, "ts": _ts_ok(c), "order_id": f"o{c.i}", "user_id": cust, "status": "paid",
            "amount": price * qty, "currency": "USD", "channel": "web", "items": [item]}


REQUIRED = {
    "clickstream": ("event_id", "ts", "session_id", "type", "user_id"),  # user_id: the only identity here
    "pos": ("event_id", "ts", "store_id", "type", "items", "total", "payment_method"),
    "orders": ("event_id", "ts", "order_id", "user_id", "status", "amount", "currency", "channel", "items"),
}
ITEM = {"sku": "a", "category": "b", "qty": 1, "unit_price": 1.0}
WRONG_TYPES: dict[str, list[tuple[str, Any]]] = {
    "*": [("event_id", 123), ("event_id", True), ("event_id", []), ("event_id", {}), ("event_id", 1.5),
          ("event_id", None), ("ts", {}), ("ts", []), ("ts", None)],
    "clickstream": [("user_id", 42), ("session_id", 7), ("session_id", None), ("type", ["page_view"]),
                    ("sku", 5), ("price", "9.99"), ("url", {}), ("query", 1), ("category", False)],
    "pos": [("store_id", 1), ("member_id", 99), ("items", ITEM), ("items", "a"), ("items", [1]),
            ("items", [{**ITEM, "qty": "1"}]), ("items", [{**ITEM, "qty": 1.5}]), ("items", [{**ITEM, "qty": True}]),
            ("items", [{**ITEM, "unit_price": "1"}]), ("items", None), ("total", "10"), ("total", None),
            ("payment_method", 0)],
    "orders": [("order_id", 1), ("user_id", None), ("amount", "10"), ("currency", 840), ("channel", 1),
               ("items", None), ("status", True), ("items", [{"sku": "a"}])],
}
EMPTY_VALUES: dict[str, list[tuple[str, Any]]] = {
    "*": [("event_id", ""), ("ts", "")],
    "clickstream": [("user_id", ""), ("type", "")],
    "pos": [("store_id", ""), ("member_id", ""), ("items", []), ("type", "")],
    "orders": [("order_id", ""), ("user_id", ""), ("currency", ""), ("status", ""), ("channel", "")],
}
UNKNOWN_ENUMS: dict[str, list[tuple[str, Any]]] = {
    "clickstream": [("type", v) for v in ("purchase", "PAGE_VIEW", "page-view", " page_view", "page_view\u0000")],
    "pos": [("type", v) for v in ("refund", "SALE", "void", "sale ")],
    "orders": [("status", v) for v in ("PAID", "delivered", "paid ")]
    + [("channel", v) for v in ("store", "WEB", "pos")],
}
OUT_OF_RANGE: dict[str, list[tuple[str, Any]]] = {
    "clickstream": [("price", -0.01), ("price", -1e308)],
    "pos": [("items", [{**ITEM, "qty": 0}]), ("items", [{**ITEM, "qty": -1}]), ("items", [{**ITEM, "unit_price": -1}])],
    "orders": [("amount", -0.01), ("currency", "US"), ("currency", "USDX"), ("currency", "U$D"),
               ("items", [{**ITEM, "qty": 0}])],
}
RAW = "\u2063RAW\u2063"  # placeholder replaced by raw bytes after encoding (NaN, huge literals)
BAD_TS: list[Any] = [
    -1, -1_700_000_000_000, 2**63, 2**64, -(2**63), 7_289_654_400_000, 253_402_300_800_000,  # 2201-01-01, year 10000
    "10000-01-01T00:00:00Z", "+10000-01-01T00:00:00Z", "yesterday", "now", "2026-11-27T08:00:00",
    "2026-11-27 08:00:00", "2026-11-27", "1969-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "2026-02-30T00:00:00Z",
    "2026-06-30T23:59:60Z", "2026-11-27T08:00:00+99:99", "2026-11-27T25:00:00Z", "9" * 100, "1700000000000",
    "\uff12\uff10\uff12\uff16-11-27T08:00:00Z",  # full-width digits
    "2026-11-27T08:00:00.123456789012345678901234567890123456789012345678Z",
    1.7e12 + 0.5, 1_796_001_968, True, False, b"NaN", b"Infinity", b"-Infinity", b"1e400",
]
HUGE_NUMBERS: dict[str, list[str]] = {
    "clickstream": ["price"], "pos": ["total", "items.unit_price", "items.qty"], "orders": ["amount", "items.qty"],
}


def dumps_raw(obj: dict[str, Any], raw: bytes | None = None) -> bytes:
    out = orjson.dumps(obj)
    return out if raw is None else out.replace(orjson.dumps(RAW), raw, 1)


def with_field(c: Ctx, path: str, value: Any, ev: dict[str, Any] | None = None) -> bytes:
    ev = ev if ev is not None else base_event(c)
    raw = None
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        value = str(value).encode()  # orjson stops at 64 bits
    if isinstance(value, bytes):
        raw, value = value, RAW
    if path.startswith("items."):
        ev["items"] = [{**ITEM, path.split(".", 1)[1]: value}]
    else:
        ev[path] = value
    return dumps_raw(ev, raw)


def pick(c: Ctx, table: dict[str, list[tuple[str, Any]]]) -> tuple[str, Any]:
    return c.rng.choice(table.get("*", []) + table.get(c.source, []))


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
REASON_CODES = ["", "invalid_json", "not_an_object", "missing_field", "invalid_field", "bad_timestamp",
                "future_timestamp", "unknown_source", "internal_error", "ACCEPTED", "CRASH"]
RC = {r: i for i, r in enumerate(REASON_CODES)}


def plan(n: int, seed: int, kinds: list[str] | None) -> array:
    """Kind index of every record, in a deterministic shuffled order."""
    if n <= 0:
        return array("B")
    chosen = [k for k in KINDS if kinds is None or k.name in kinds]
    fixed = sum(k.count(n) for k in chosen if k.fixed is not None or k.per_million * n < 1e6)
    weighted = [k for k in chosen if not (k.fixed is not None or k.per_million * n < 1e6)]
    wsum = sum(k.per_million for k in weighted) or 1.0
    counts = {k.name: k.count(n) for k in chosen if k not in weighted}
    rest = max(0, n - fixed)
    for k in weighted:
        counts[k.name] = int(rest * k.per_million / wsum)
    if weighted:  # rounding: the largest weighted kind takes the remainder
        big = max(weighted, key=lambda k: k.per_million)
        counts[big.name] += n - sum(counts.values())
    order = array("B")
    for name, cnt in counts.items():
        order.extend([KIND_INDEX[name]] * max(0, cnt))
    rng = random.Random(f"plan:{seed}")
    lst = order.tolist()
    rng.shuffle(lst)
    return array("B", lst)


def key_for(rng: random.Random, kind: Kind) -> bytes | None:
    r = rng.random()
    if kind.expect == "valid":
        return None if r < 0.5 else f"fz-c{rng.randrange(1000):04d}".encode()
    if r < 0.6:
        return None
    if r < 0.9:
        return f"fz-c{rng.randrange(1000):04d}".encode()
    if r < 0.95:
        return rng.choice([b"\xff\xfe", b"\x00", b"\xed\xa0\x80", b"k" * 1000])
    return b""


def payloads(order: array, seed: int, now_ms: int) -> Iterator[tuple[int, Kind, str, bytes | None, bytes | None]]:
    """(index, kind, source, key, value) of every record, deterministic for (seed, now_ms)."""
    _DUP_POOL.clear()
    rng = random.Random(f"payloads:{seed}")
    for i, ki in enumerate(order):
        kind = KINDS[ki]
        source = SOURCES[i % 3] if kind.name != "valid_anonymous" else ("clickstream", "pos")[i % 2]
        value = kind.build(Ctx(rng, i, source, now_ms))
        key = key_for(rng, kind)
        if value is None and key is None:
            key = b"fz-null"  # Kafka needs a key or a value
        yield i, kind, source, key, value


def digest(b: bytes | None) -> bytes:
    if b is None:
        return b"\x00" * 8
    return hashlib.blake2b(b, digest_size=8).digest()


# -- in-process ------------------------------------------------------------------------------------


@dataclass
class Failure:
    where: str
    index: int
    kind: str
    source: str
    detail: str
    repro: str = ""


@dataclass
class InProcess:
    records: int = 0
    decode_seconds: float = 0.0
    by_kind_reason: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)


def run_in_process(order: array, seed: int, now_ms: int, repro_dir: Path, expected: array,
                   digests: bytearray, sizes: array) -> InProcess:
    """decode_event (+ to_canonical + orjson.dumps for accepted ones) over every payload."""
    res = InProcess()
    batch: list[tuple[int, Kind, str, bytes | None, bytes | None]] = []
    last = time.monotonic()

    def flush() -> None:
        outcomes: list[Any] = []
        t0 = time.perf_counter()
        for _, _, source, _, value in batch:
            try:
                outcomes.append(decode_event(source, value))  # type: ignore[arg-type]
            except EventDecodeError as exc:
                outcomes.append(exc)
            except BaseException as exc:  # anything else is the finding
                outcomes.append(("CRASH", exc))
        res.decode_seconds += time.perf_counter() - t0
        for (i, kind, source, _key, value), out in zip(batch, outcomes, strict=True):
            counts = res.by_kind_reason.setdefault(kind.name, Counter())
            if isinstance(out, EventDecodeError):
                reason = "invalid_json" if not value else out.reason  # the worker checks emptiness first
                counts[reason] += 1
                expected[i] = RC[reason]
                if kind.expect != "dlq":
                    res.failures.append(save(repro_dir, "decode", i, kind, source, value,
                                             f"{kind.expect} payload rejected: {out.reason}: {out.message}"))
                continue
            if isinstance(out, tuple):
                counts["CRASH"] += 1
                expected[i] = RC["CRASH"]
                res.failures.append(save(repro_dir, "decode", i, kind, source, value,
                                         f"decode_event raised {type(out[1]).__name__}: {out[1]}"))
                continue
            counts["ACCEPTED"] += 1
            # The rest of the worker's ingest path for an accepted event.
            try:
                canonical = to_canonical(source, out, now_ms)
                orjson.dumps(canonical)
            except Exception as exc:
                expected[i] = RC["CRASH"]
                res.failures.append(save(repro_dir, "canonical", i, kind, source, value,
                                         f"to_canonical/orjson.dumps raised {type(exc).__name__}: {exc}"))
                continue
            if kind.expect == "dlq_worker":
                expected[i] = RC["future_timestamp"] if canonical["ts_ms"] > now_ms + 300_000 else RC["ACCEPTED"]
                if expected[i] == RC["ACCEPTED"]:
                    res.failures.append(save(repro_dir, "decode", i, kind, source, value, "future ts not in future"))
            elif kind.expect == "valid":
                expected[i] = RC["ACCEPTED"]
            else:
                expected[i] = RC["ACCEPTED"]
                res.failures.append(save(repro_dir, "decode", i, kind, source, value,
                                         "adversarial payload ACCEPTED by decode_event"))
        batch.clear()

    for rec in payloads(order, seed, now_ms):
        i, _, _, key, value = rec
        digests[i * 16: i * 16 + 8] = digest(value)
        digests[i * 16 + 8: i * 16 + 16] = digest(key)
        sizes[i] = len(value or b"")
        batch.append(rec)
        res.records += 1
        if len(batch) >= 2000:
            flush()
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            log(f"in-process: {res.records:,}/{len(order):,} decoded "
                f"({res.records / max(1e-9, res.decode_seconds):,.0f}/s in decode_event)")
    flush()
    return res


def save(repro_dir: Path, where: str, i: int, kind: Kind, source: str, value: bytes | None, detail: str) -> Failure:
    repro_dir.mkdir(parents=True, exist_ok=True)
    p = repro_dir / f"{i:07d}-{kind.name}-{source}.bin"
    p.write_bytes(value or b"")
    repro = (f".venv/bin/python -c \"from schemas.decode import decode_event; "
             f"print(decode_event('{source}', open('{p.relative_to(REPO)}','rb').read()))\"")
    return Failure(where, i, kind.name, source, detail[:300], repro)


# -- the real worker ----------------------------------------------------------------------------------


@dataclass
class RssSample:
    t: float
    progress: float
    """Source records the worker has read (tagstream_events_in_total) / records produced."""
    rss: int
    hwm: int
    cpu: float
    events_in: float
    deadletter: float


async def sample_worker(proc: Proc, samples: list[RssSample], url: str, total_records: int,
                        stop: asyncio.Event) -> None:
    from streams.tools.demo import total

    t0 = time.monotonic()
    while not stop.is_set():
        if proc.alive():
            s = await asyncio.to_thread(try_scrape, url) or {}
            ein = total(s, "tagstream_events_in_total")
            with contextlib.suppress(OSError):
                samples.append(RssSample(round(time.monotonic() - t0, 2), ein / max(1, total_records),
                                         vm_rss_bytes(proc.pid), vm_hwm_bytes(proc.pid), cpu_seconds(proc.pid), ein,
                                         total(s, "tagstream_deadletter_total")))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def wait_ready(proc: Proc, url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"worker exited during start:\n{proc.tail()}")
        s = try_scrape(url)
        if s is not None and any(v == 1 for _, v in s.get("tagstream_ready", [])):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"worker not ready after {timeout_s}s:\n{proc.tail()}")


CRASH_PATTERNS = re.compile(r"Traceback|crashed|Crashed|Restarting|Error|exception", re.I)
NOISE = re.compile(r"ignoring missing topic|UNKNOWN_TOPIC_OR_PART|LeaderNotAvailable|NotCoordinator"
                   r"|GroupCoordinatorNotAvailable|Heartbeat failed", re.I)


def crash_lines(log_path: Path) -> list[str]:
    if not log_path.exists():
        return []
    out = []
    for ln in log_path.read_text(errors="replace").splitlines():
        if CRASH_PATTERNS.search(ln) and not NOISE.search(ln):
            out.append(ln[:300])
    return out


def start_worker(run_id: str, app_id: str, bootstrap: str, redis_url: str, partitions: int,
                 out_dir: Path) -> tuple[Proc, str, Load]:
    load = Load(run_id, bootstrap, partitions)
    port = free_port()
    env = tagstream_env(load, app_id, port, out_dir / f"data-{app_id}", REPO / "tag_rules" / "retail.yaml",
                        redis_url)
    env["TAGSTREAM_LOGLEVEL"] = "info"
    env["TAGSTREAM_RULES_PATH"] = ""
    env.pop("TAGSTREAM_RULES_PATH")  # the shipped retail rules
    proc = Proc(app_id, [sys.executable, "-m", "streams.cli", "worker"], env, out_dir / f"{app_id}.log").start()
    return proc, f"http://127.0.0.1:{port}/metrics", load


def new_producer(bootstrap: str, **kw: Any) -> Any:
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_request_size=8 * MB,
                            max_batch_size=256 * 1024, request_timeout_ms=60_000, **kw)


async def produce_all(bootstrap: str, load: Load, order: array, seed: int, now_ms: int, digests: bytearray,
                      where: dict[int, int], topic_ids: dict[str, int], refused: list[dict[str, Any]],
                      failures: list[Failure]) -> dict[str, float]:
    """Produces every payload; fills ``where`` ((topic id, partition, offset) code -> index)."""
    from aiokafka.errors import KafkaError

    p = new_producer(bootstrap)
    pz = new_producer(bootstrap, compression_type="gzip")
    await p.start()
    await pz.start()
    t0 = time.monotonic()
    last = t0
    sent = 0
    pending: list[tuple[int, Kind, int, Any]] = []

    async def settle() -> None:
        res = await asyncio.gather(*(f for *_, f in pending), return_exceptions=True)
        for (i, kind, size, _), md in zip(pending, res, strict=True):
            if isinstance(md, BaseException):
                refused.append({"index": i, "kind": kind.name, "bytes": size, "error": type(md).__name__})
                continue
            where[code(topic_ids[md.topic], md.partition, md.offset)] = i
        pending.clear()

    try:
        for i, kind, source, key, value in payloads(order, seed, now_ms):
            if digest(value) != bytes(digests[i * 16: i * 16 + 8]):
                failures.append(Failure("generator", i, kind.name, source, "payload not deterministic"))
            try:
                fut = await (pz if kind.compressed else p).send(load.topic(source), value, key=key)
            except KafkaError as exc:  # refused by the client before sending
                refused.append({"index": i, "kind": kind.name, "bytes": len(value or b""),
                                "error": f"{type(exc).__name__} (client)"})
                continue
            pending.append((i, kind, len(value or b""), fut))
            sent += 1
            if len(pending) >= 5000:
                await settle()
            now = time.monotonic()
            if now - last >= 2:
                last = now
                log(f"produce: {sent:,}/{len(order):,} sent ({sent / (now - t0):,.0f}/s), "
                    f"{len(refused)} refused by the broker")
        await settle()
        await p.flush()
        await pz.flush()
    finally:
        await p.stop()
        await pz.stop()
    secs = time.monotonic() - t0
    log(f"produce: done, {sent - len([r for r in refused if 'client' not in r['error']]):,} accepted, "
        f"{len(refused)} refused, {secs:.1f}s ({sent / secs:,.0f}/s)")
    return {"seconds": secs, "per_s": sent / secs}


def code(topic_id: int, partition: int, offset: int) -> int:
    return (topic_id << 56) | (partition << 40) | offset


@dataclass
class DlqCheck:
    records: int = 0
    matched: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    value_mismatch: int = 0
    key_mismatch: int = 0
    missing_headers: int = 0
    reason_mismatch: Counter[str] = field(default_factory=Counter)
    unknown_source: int = 0
    duplicates: int = 0
    valid_dead_lettered: int = 0
    t_first: float = 0.0
    t_last: float = 0.0
    error_max_len: int = 0
    seen: set[int] = field(default_factory=set)
    null_as_empty: int = 0


async def consume_dlq(bootstrap: str, topic: str, order: array, where: dict[int, int], topic_ids: dict[str, int],
                      digests: bytearray, expected: array, expected_total: int, proc: Proc, chk: DlqCheck,
                      failures: list[Failure], repro_dir: Path, stall_s: float = 180) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=16 * MB,
                         fetch_max_bytes=64 * MB)
    await c.start()
    try:
        parts: set[int] = set()
        deadline = time.monotonic() + 120
        while not parts:
            await c._client.force_metadata_update()
            parts = c.partitions_for_topic(topic) or set()
            if time.monotonic() > deadline:
                raise TimeoutError(f"dead-letter topic {topic} never appeared")
            if not parts:
                await asyncio.sleep(1)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        t0 = time.monotonic()
        last_print = last_growth = t0
        done_at: float | None = None
        while True:
            batch = await c.getmany(timeout_ms=500, max_records=5000)
            now = time.monotonic()
            for recs in batch.values():
                for r in recs:
                    check_record(r, chk, order, where, topic_ids, digests, expected, failures)
            if batch:
                last_growth = now
            if now - last_print >= 2:
                last_print = now
                rate = chk.records / max(1e-9, now - t0)
                log(f"dead-letter: {chk.records:,}/{expected_total:,} received ({rate:,.0f}/s since start), "
                    f"worker {'alive' if proc.alive() else 'DEAD'}")
            if chk.records >= expected_total and done_at is None:
                done_at = now  # keep reading a little: extra records (valid ones, doubles) must show too
            if done_at is not None and now - done_at >= 5:
                return
            if not proc.alive() and now - last_growth > 10:
                log("dead-letter: worker is dead; giving up")
                return
            if now - last_growth > stall_s:
                log(f"dead-letter: no new record for {stall_s:.0f}s; giving up at {chk.records:,}/{expected_total:,}")
                return
    finally:
        await c.stop()


def value_ok_(got: bytes | None, want: bytes) -> bool:
    return digest(got) == want


def check_record(r: Any, chk: DlqCheck, order: array, where: dict[int, int], topic_ids: dict[str, int],
                 digests: bytearray, expected: array, failures: list[Failure]) -> None:
    now = time.monotonic()
    chk.t_first = chk.t_first or now
    chk.t_last = now
    chk.records += 1
    h = {k: v for k, v in (r.headers or [])}
    reason = h.get("ts.reason", b"").decode(errors="replace")
    chk.by_reason[reason or "<none>"] += 1
    if "ts.reason" not in h or "ts.error" not in h or not h.get("ts.error"):
        chk.missing_headers += 1
    chk.error_max_len = max(chk.error_max_len, len(h.get("ts.error", b"")))
    try:
        src = code(topic_ids[h["ts.source_topic"].decode()], int(h["ts.source_partition"]),
                   int(h["ts.source_offset"]))
        i = where[src]
    except (KeyError, ValueError):
        chk.unknown_source += 1
        return
    if src in chk.seen:
        chk.duplicates += 1
        return
    chk.seen.add(src)
    chk.matched += 1
    kind = KINDS[order[i]]
    chk.by_kind.setdefault(kind.name, Counter())[reason] += 1
    if r.value == b"" and bytes(digests[i * 16: i * 16 + 8]) == digest(None):
        chk.null_as_empty += 1  # app.py's dead_letter writes b"" for a null value (a known deviation)
    elif not value_ok_(r.value, bytes(digests[i * 16: i * 16 + 8])):
        chk.value_mismatch += 1
        if chk.value_mismatch <= 20:
            failures.append(Failure("dlq", i, kind.name, "", f"DLQ value differs from the produced bytes "
                                    f"(got {'null' if r.value is None else len(r.value)} bytes; produced "
                                    f"{'null' if digests[i * 16: i * 16 + 8] == digest(None) else 'bytes'})"))
    if digest(r.key) != bytes(digests[i * 16 + 8: i * 16 + 16]):
        chk.key_mismatch += 1
        if chk.key_mismatch <= 20:
            failures.append(Failure("dlq", i, kind.name, "", f"DLQ key {r.key!r:.40} differs from the produced key"))
    exp = REASON_CODES[expected[i]]
    if kind.expect == "valid":
        chk.valid_dead_lettered += 1
        failures.append(Failure("dlq", i, kind.name, "", f"VALID event dead-lettered: {reason}: "
                                f"{h.get('ts.error', b'').decode(errors='replace')}"))
    elif exp != reason:
        chk.reason_mismatch[f"{kind.name}: expected {exp}, got {reason}"] += 1


async def metrics_totals(url: str) -> dict[str, float]:
    s = try_scrape(url) or {}
    from streams.tools.demo import total

    return {n: total(s, f"tagstream_{n}_total") for n in
            ("events_in", "events_invalid", "deadletter", "events_anonymous", "events_processed",
             "events_duplicate")}


async def run_worker_part(args: argparse.Namespace, order: array, now_ms: int, digests: bytearray,
                          expected: array, out_dir: Path, run_id: str, failures: list[Failure]) -> dict[str, Any]:
    from streams.io.topics import ensure_topics

    app_id = f"{run_id}-w"
    proc, url, load = start_worker(run_id, app_id, args.bootstrap, args.redis_url, args.partitions, out_dir)
    dlq_topic = f"{app_id}.deadletter"
    topic_ids = {load.topic(s): n for n, s in enumerate(SOURCES)}
    samples: list[RssSample] = []
    chk = DlqCheck()
    where: dict[int, int] = {}
    refused: list[dict[str, Any]] = []
    stop = asyncio.Event()
    sampler: asyncio.Task[None] | None = None
    result: dict[str, Any] = {"app_id": app_id, "worker_log": str(proc.log_path.relative_to(REPO))}
    try:
        await ensure_topics(args.bootstrap, load.topics.values(), args.partitions)
        log(f"worker pid {proc.pid} starting (app id {app_id}, metrics {url})")
        t_start = time.monotonic()
        await wait_ready(proc, url)
        result["startup_s"] = round(time.monotonic() - t_start, 1)
        log(f"worker ready after {result['startup_s']}s")
        expected_total = sum(1 for i, k in enumerate(order) if KINDS[k].expect != "valid")
        sampler = asyncio.create_task(sample_worker(proc, samples, url, len(order), stop))
        cpu0 = cpu_seconds(proc.pid)
        result["produce"] = await produce_all(args.bootstrap, load, order, args.seed, now_ms, digests, where,
                                              topic_ids, refused, failures)
        refused_idx = {r["index"] for r in refused}
        expected_total = sum(1 for i, k in enumerate(order) if KINDS[k].expect != "valid" and i not in refused_idx)
        accepted = len(order) - len(refused_idx)
        log(f"expecting {expected_total:,} dead-letter records ({accepted:,} records accepted by the broker)")
        await consume_dlq(args.bootstrap, dlq_topic, order, where, topic_ids, digests, expected, expected_total,
                          proc, chk, failures, out_dir / "repro")
        # the valid controls: wait until the second stage has folded them in (or give up after 60 s)
        valid_idx = [i for i, k in enumerate(order) if KINDS[k].expect == "valid" and i not in refused_idx]
        anon = sum(1 for i in valid_idx if KINDS[order[i]].anonymous)
        want_processed = len(valid_idx) - anon
        m: dict[str, float] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = await metrics_totals(url)
            if m.get("events_in", 0) >= accepted and m.get("events_processed", 0) >= want_processed:
                break
            await asyncio.sleep(1)
        result["metrics"] = m
        result["expected_metrics"] = {"events_in": accepted, "events_invalid": expected_total,
                                      "events_processed": want_processed}
        result["cpu_s"] = round(cpu_seconds(proc.pid) - cpu0, 1) if proc.alive() else None
        result["alive_at_end"] = proc.alive()
    finally:
        stop.set()
        if sampler is not None:
            await sampler
        result["vm_hwm_bytes_end"] = samples[-1].hwm if samples else None
        proc.stop()
    result["exit_code"] = proc.proc.returncode if proc.proc else None
    result["crash_log_lines"] = crash_lines(proc.log_path)[:50]
    result["expected_dlq"] = expected_total
    result["refused_by_broker"] = refused
    result["dlq"] = {
        "records": chk.records, "matched": chk.matched, "by_reason": dict(chk.by_reason),
        "by_kind": {k: dict(v) for k, v in chk.by_kind.items()}, "value_mismatch": chk.value_mismatch,
        "key_mismatch": chk.key_mismatch, "missing_headers": chk.missing_headers,
        "reason_mismatch": dict(chk.reason_mismatch), "unknown_source": chk.unknown_source,
        "duplicates": chk.duplicates, "null_value_as_empty": chk.null_as_empty,
        "valid_dead_lettered": chk.valid_dead_lettered,
        "seconds_first_to_last": round(chk.t_last - chk.t_first, 2),
        "per_s": round(chk.records / max(1e-9, chk.t_last - chk.t_first), 1),
        "error_header_max_bytes": chk.error_max_len,
    }
    lost = [i for c_, i in where.items() if KINDS[order[i]].expect != "valid" and c_ not in chk.seen]
    result["dlq"]["lost"] = len(lost)
    for i in lost[:20]:
        failures.append(Failure("dlq", i, KINDS[order[i]].name, "", "produced, never dead-lettered"))
    result["rss"] = rss_at(samples)
    result["worker_throughput"] = worker_rate(samples)
    result["samples"] = [s.__dict__ for s in samples[:: max(1, len(samples) // 400)]]
    return result


def worker_rate(samples: list[RssSample]) -> dict[str, Any]:
    """Source records read per second by the worker, from its first record read to its last."""
    idle = [s for s in samples if s.events_in == 0]
    busy = [s for s in samples if s.events_in > 0]
    if not busy:
        return {}
    first = idle[-1] if idle else busy[0]  # the last poll before the first record was read
    last = next(s for s in busy if s.events_in >= busy[-1].events_in)
    secs = max(1e-9, last.t - first.t)
    return {"records_per_s": round((last.events_in - first.events_in) / secs, 1),
            "deadletter_per_s": round((last.deadletter - first.deadletter) / secs, 1), "seconds": round(secs, 1),
            "cpu_s": round(last.cpu - first.cpu, 1),
            "cpu_utilisation": round((last.cpu - first.cpu) / secs, 2)}


def rss_at(samples: list[RssSample]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    final = max((s.events_in for s in samples), default=0.0)  # the records the broker accepted
    for frac in (0.1, 0.5, 1.0):
        s = next((s for s in samples if s.events_in >= frac * final > 0), samples[-1] if samples else None)
        out[f"{int(frac * 100)}%"] = None if s is None else {"t_s": s.t, "rss_mib": round(s.rss / MB, 1),
                                                              "vm_hwm_mib": round(s.hwm / MB, 1)}
    if samples:
        out["start"] = {"t_s": samples[0].t, "rss_mib": round(samples[0].rss / MB, 1),
                        "vm_hwm_mib": round(samples[0].hwm / MB, 1)}
        out["peak_vm_hwm_mib"] = round(max(s.hwm for s in samples) / MB, 1)
    return out


# -- probes: records suspected to break the worker, each on its own worker ---------------------------


def _probe_qty(now_ms: int) -> tuple[bytes, dict[str, Any]]:
    ev = {"event_id": "probe-qty", "ts": now_ms - 1000, "store_id": "s01", "member_id": "probe-c1", "type": "sale",
          "items": [{"sku": "a", "category": "b", "qty": RAW, "unit_price": 1.0}], "total": 1.0,
          "payment_method": "card"}
    return dumps_raw(ev, str(10**30).encode()), {}


def _probe_size(size: int, compress: bool) -> Callable[[int], tuple[bytes, dict[str, Any]]]:
    def build(now_ms: int) -> tuple[bytes, dict[str, Any]]:
        body = orjson.dumps({"event_id": "probe-big", "ts": "yesterday", "note": "x" * (size - 80)})
        return body, ({"compression_type": "gzip"} if compress else {})
    return build


PROBES: dict[str, tuple[str, Callable[[int], tuple[bytes, dict[str, Any]]], str]] = {
    "qty_over_64_bits": ("pos", _probe_qty,
                         "a POS sale with items[0].qty = 10**30: valid for the schema (strict int >= 1), "
                         "but orjson cannot encode it when ingest repartitions the canonical event"),
    "dlq_record_over_producer_limit": ("clickstream", _probe_size(1_000_000, False),
                                       "an invalid 1,000,000-byte record: the broker takes it (limit "
                                       "1,048,588), the worker's DLQ copy (+ headers) is over faust's "
                                       "producer_max_request_size (1,000,000)"),
    "compressed_3mb": ("orders", _probe_size(3 * MB, True),
                       "an invalid 3 MiB record sent gzip-compressed: the broker checks the compressed "
                       "size, so it is accepted; the worker must dead-letter 3 MiB"),
}


async def run_probe(args: argparse.Namespace, name: str, run_id: str, out_dir: Path) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.io.topics import ensure_topics

    source, build, why = PROBES[name]
    pid = f"{run_id}-p-{name.replace('_', '-')}"
    proc, url, load = start_worker(pid, pid + "-w", args.bootstrap, args.redis_url, 1, out_dir)
    res: dict[str, Any] = {"probe": name, "what": why}
    try:
        await ensure_topics(args.bootstrap, load.topics.values(), 1)
        await wait_ready(proc, url)
        now_ms = int(time.time() * 1000)
        value, pkw = build(now_ms)
        canary = b'{"event_id": "canary", "ts": '  # truncated JSON, sent after the probe
        p = new_producer(args.bootstrap, **pkw)
        await p.start()
        try:
            try:
                md = await p.send_and_wait(load.topic(source), value, key=b"probe")
                res["produced"] = {"bytes": len(value), "offset": md.offset}
            except Exception as exc:
                res["produced"] = {"bytes": len(value), "refused": f"{type(exc).__name__}: {exc}"[:300]}
            await p.send_and_wait(load.topic(source), canary, key=b"canary")
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, enable_auto_commit=False,
                             max_partition_fetch_bytes=16 * MB)
        await c.start()
        got: list[dict[str, Any]] = []
        try:
            deadline = time.monotonic() + 30
            tp = TopicPartition(f"{pid}-w.deadletter", 0)
            while time.monotonic() < deadline and not c.partitions_for_topic(tp.topic):
                await c._client.force_metadata_update()
                await asyncio.sleep(1)
            if c.partitions_for_topic(tp.topic):
                c.assign([tp])
                await c.seek_to_beginning(tp)
                while time.monotonic() < deadline and len(got) < 2:
                    for recs in (await c.getmany(timeout_ms=500)).values():
                        for r in recs:
                            h = dict(r.headers or [])
                            got.append({"key": r.key.decode(errors="replace") if r.key else None,
                                        "reason": h.get("ts.reason", b"").decode(),
                                        "error": h.get("ts.error", b"").decode(errors="replace")[:200],
                                        "value_identical": (r.key == b"canary" and r.value == canary)
                                        or (r.key == b"probe" and r.value == value)})
        finally:
            await c.stop()
        m = await metrics_totals(url)
        res.update(dlq=got, alive=proc.alive(), metrics={k: m[k] for k in ("events_in", "deadletter",
                                                                            "events_processed")})
    finally:
        proc.stop()
    res["crash_log_lines"] = crash_lines(proc.log_path)[:12]
    keys = {g["key"] for g in got}
    if "refused" in res.get("produced", {}):
        res["verdict"] = "refused by the broker (not a worker issue)"
    elif "probe" in keys and "canary" in keys and not res["crash_log_lines"]:
        res["verdict"] = "ok: dead-lettered, ingest kept going"
    else:
        res["verdict"] = ("FAIL: " + ("probe not dead-lettered; " if "probe" not in keys else "")
                          + ("ingest stopped (canary not dead-lettered); " if "canary" not in keys else "")
                          + ("agent crash in the worker log" if res["crash_log_lines"] else "")).rstrip("; ")
    return res


async def cleanup(args: argparse.Namespace, run_id: str) -> None:
    """Deletes this run's topics and Redis keys (all named after the run id)."""
    import redis

    try:
        names = await delete_topics(args.bootstrap, [run_id])
        r = redis.Redis.from_url(args.redis_url)
        keys = list(r.scan_iter(f"{run_id}*", count=1000))
        for n in range(0, len(keys), 1000):
            r.delete(*keys[n: n + 1000])
        log(f"cleanup: deleted {len(names)} topics and {len(keys)} Redis keys of {run_id}")
    except Exception as exc:
        log(f"cleanup failed: {exc!r}")


async def broker_limit(bootstrap: str, run_id: str) -> dict[str, Any]:
    """The largest value (uncompressed, no key) the broker accepts on a default topic (bisection)."""
    from aiokafka.errors import KafkaError

    from streams.io.topics import ensure_topics

    topic = f"{run_id}.limit"
    await ensure_topics(bootstrap, [topic], 1)
    p = new_producer(bootstrap)
    await p.start()
    lo, hi = 900_000, 1_100_000  # accepted, refused
    try:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                await p.send_and_wait(topic, b"x" * mid)
                lo = mid
            except KafkaError:
                hi = mid
    finally:
        await p.stop()
    return {"max_value_bytes_accepted": lo, "min_value_bytes_refused": hi}


# -- main -----------------------------------------------------------------------------------------------


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [[str(c) for c in r] for r in [header, *rows]]
    w = [max(len(r[j]) for r in cells) for j in range(len(header))]
    lines = ["  ".join(c.ljust(w[j]) if j == 0 else c.rjust(w[j]) for j, c in enumerate(r)) for r in cells]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


def summary(res: dict[str, Any], order: array) -> str:
    out = []
    ip = res["in_process"]
    wk = res.get("worker") or {}
    dlq = wk.get("dlq", {})
    produced_kinds = Counter(KINDS[k].name for k in order)
    refused_by_kind = Counter(r["kind"] for r in wk.get("refused_by_broker", []))
    rows = []
    for k in KINDS:
        if k.name not in produced_kinds:
            continue
        reasons = ip["by_kind_reason"].get(k.name, {})
        dk = dlq.get("by_kind", {}).get(k.name, {})
        rows.append([k.name, k.expect, produced_kinds[k.name], refused_by_kind.get(k.name, 0),
                     ",".join(f"{r}:{n}" for r, n in sorted(reasons.items(), key=lambda x: -x[1])),
                     sum(dk.values()) if wk else "-"])
    out.append(table(rows, ["kind", "expect", "records", "refused", "decode_event outcome", "DLQ'd"]))
    out.append("")
    out.append(f"in-process decode_event: {ip['records']:,} payloads, {ip['decode_per_s']:,.0f}/s, "
               f"non-EventDecodeError exceptions: {ip['crashes']}, failures: {ip['failures']}")
    if wk:
        rss = wk.get("rss", {})
        out.append(f"worker: alive to the end {wk.get('alive_at_end')}, exit code {wk.get('exit_code')} (SIGTERM at "
                   f"the end), crash/error log lines {len(wk.get('crash_log_lines', []))}")
        out.append(f"DLQ: {dlq.get('records', 0):,} records, expected {wk.get('expected_dlq', 0):,}, lost "
                   f"{dlq.get('lost')}, doubles {dlq.get('duplicates')}, value mismatches {dlq.get('value_mismatch')}, "
                   f"null values returned as b'' {dlq.get('null_value_as_empty')}, "
                   f"key mismatches {dlq.get('key_mismatch')}, missing headers {dlq.get('missing_headers')}, "
                   f"reason != in-process {sum(dlq.get('reason_mismatch', {}).values())}, valid dead-lettered "
                   f"{dlq.get('valid_dead_lettered')}, unmatched {dlq.get('unknown_source')}")
        out.append("DLQ by reason: " + ", ".join(f"{r} {n:,}" for r, n in sorted(dlq.get("by_reason", {}).items(),
                                                                                 key=lambda x: -x[1])))
        wt = wk.get("worker_throughput", {})
        out.append(f"throughput: produce {wk.get('produce', {}).get('per_s', 0):,.0f} records/s; worker read "
                   f"{wt.get('records_per_s', 0):,.0f} records/s and dead-lettered "
                   f"{wt.get('deadletter_per_s', 0):,.0f}/s "
                   f"over {wt.get('seconds')} s (CPU {wt.get('cpu_utilisation')} cores); DLQ read back at "
                   f"{dlq.get('per_s', 0):,.0f} records/s")
        out.append("worker RSS (VmHWM) at 10/50/100 % of the records read: " + ", ".join(
            f"{k} {v['rss_mib']} MiB ({v['vm_hwm_mib']})" for k, v in rss.items() if isinstance(v, dict))
            + f"; peak VmHWM {rss.get('peak_vm_hwm_mib')} MiB")
        out.append(f"metrics: {wk.get('metrics')} expected {wk.get('expected_metrics')}")
    if res.get("broker_limit"):
        out.append(f"broker (message.max.bytes default): largest value accepted "
                   f"{res['broker_limit']['max_value_bytes_accepted']:,} bytes (no key, uncompressed)")
    for p in res.get("probes", []):
        out.append(f"probe {p['probe']}: {p['verdict']}")
    if res["failures"]:
        out.append(f"FAILURES ({len(res['failures'])}, first 15):")
        for f in res["failures"][:15]:
            out.append(f"  [{f['where']}] #{f['index']} {f['kind']} {f['source']}: {f['detail'][:300]}")
            if f["repro"]:
                out.append(f"      {f['repro']}")
    return "\n".join(out)


async def amain(args: argparse.Namespace) -> int:
    run_id = f"fuzz-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    out_dir = RESULTS / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    kinds = args.kinds.split(",") if args.kinds else None
    order = plan(args.events, args.seed, kinds)
    n = len(order)
    now_ms = int(time.time() * 1000)
    log(f"{run_id}: {n:,} records, seed {args.seed}, {len({*order})} kinds")
    digests = bytearray(16 * n)
    expected = array("b", bytes(n))
    sizes = array("q", bytes(8 * n))
    res: dict[str, Any] = {"run_id": run_id, "argv": sys.argv, "events": n, "seed": args.seed, "now_ms": now_ms,
                           "machine": machine_info(args.redis_url)}
    ip = run_in_process(order, args.seed, now_ms, out_dir / "repro", expected, digests, sizes)
    res["in_process"] = {
        "records": ip.records, "decode_seconds": round(ip.decode_seconds, 3),
        "decode_per_s": ip.records / max(1e-9, ip.decode_seconds),
        "by_kind_reason": {k: dict(v) for k, v in ip.by_kind_reason.items()},
        "crashes": sum(v.get("CRASH", 0) for v in ip.by_kind_reason.values()),
        "failures": len(ip.failures),
    }
    res["bytes_total"] = sum(sizes)
    res["bytes_max"] = max(sizes) if n else 0
    log(f"in-process: {ip.records:,} payloads ({res['bytes_total'] / MB:,.0f} MiB) decoded at "
        f"{res['in_process']['decode_per_s']:,.0f}/s; {len(ip.failures)} failures")
    failures = list(ip.failures)
    if not args.no_worker:
        res["worker"] = await run_worker_part(args, order, now_ms, digests, expected, out_dir, run_id, failures)
    res["probes"] = []
    if not args.no_probes:
        res["broker_limit"] = await broker_limit(args.bootstrap, run_id)
        log(f"broker limit on a default topic: {res['broker_limit']}")
        for name in args.probe or list(PROBES):
            log(f"probe {name} ...")
            pr = await run_probe(args, name, run_id, out_dir)
            log(f"probe {name}: {pr['verdict']}")
            res["probes"].append(pr)
            if not pr["verdict"].startswith("ok"):
                failures.append(Failure("probe", -1, name, PROBES[name][0], f"{pr['verdict']}: {PROBES[name][2]}",
                                        f".venv/bin/python -m benchmarks.fuzz --probe {name}"))
    res["failures"] = [f.__dict__ for f in failures]
    if not args.keep_topics:
        await cleanup(args, run_id)
    path = RESULTS / f"{run_id}.json"
    path.write_text(json.dumps(res, indent=1, default=str))
    text = summary(res, order)
    print("\n" + text, flush=True)
    (RESULTS / f"{run_id}.txt").write_text(text + "\n")
    log(f"wrote {path.relative_to(REPO)}")
    wk = res.get("worker") or {}
    ok = (not failures and res["in_process"]["crashes"] == 0
          and (args.no_worker or (wk.get("alive_at_end") and wk["dlq"]["lost"] == 0
                                  and wk["dlq"]["records"] == wk["expected_dlq"] and not wk["crash_log_lines"])))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kinds", help="only these kinds (comma-separated names of KINDS)")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--bootstrap", default=os.environ.get("TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    ap.add_argument("--redis-url", default=os.environ.get("TAGSTREAM_REDIS__URL", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--no-worker", action="store_true", help="in-process part only")
    ap.add_argument("--no-probes", action="store_true")
    ap.add_argument("--keep-topics", action="store_true", help="keep the run's topics and Redis keys")
    ap.add_argument("--probe", action="append", choices=sorted(PROBES),
                    help="run only this probe (repeatable); implies no fuzz mix")
    args = ap.parse_args(argv)
    if args.probe:
        args.events, args.no_worker = 0, True
    return asyncio.run(amain(args))


if __name__ == "__main__":
    raise SystemExit(main())
