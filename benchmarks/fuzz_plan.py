"""The records of a fuzz run (benchmarks/fuzz.py): which kind each record is (``plan``), its key and
payload bytes (``payloads``), and the per-record codes the run keeps (``digest``, ``REASON_CODES``)."""

from __future__ import annotations

import hashlib
import random
from array import array
from collections.abc import Iterator

from streams.tools.generator import SOURCES

from .fuzz_fields import Ctx
from .fuzz_kinds import _DUP_POOL, KIND_INDEX, KINDS, Kind

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
