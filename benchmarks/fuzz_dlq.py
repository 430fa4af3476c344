"""Dead-letter check of the fuzz run (benchmarks/fuzz.py): reads the worker's dead-letter topic and
matches each record to what was produced (source topic/partition/offset headers): same value and key
bytes, reason and error headers present, reason == the in-process one; counts losses and doubles."""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import Proc, log
from .fuzz_failures import Failure
from .fuzz_fields import MB
from .fuzz_kinds import KINDS
from .fuzz_plan import REASON_CODES, digest


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

    def report(self) -> dict[str, Any]:
        """The ``dlq`` part of the run's JSON (``lost`` is added by the caller)."""
        return {
            "records": self.records, "matched": self.matched, "by_reason": dict(self.by_reason),
            "by_kind": {k: dict(v) for k, v in self.by_kind.items()}, "value_mismatch": self.value_mismatch,
            "key_mismatch": self.key_mismatch, "missing_headers": self.missing_headers,
            "reason_mismatch": dict(self.reason_mismatch), "unknown_source": self.unknown_source,
            "duplicates": self.duplicates, "null_value_as_empty": self.null_as_empty,
            "valid_dead_lettered": self.valid_dead_lettered,
            "seconds_first_to_last": round(self.t_last - self.t_first, 2),
            "per_s": round(self.records / max(1e-9, self.t_last - self.t_first), 1),
            "error_header_max_bytes": self.error_max_len,
        }


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
