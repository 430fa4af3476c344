"""In-process part of the fuzz run (benchmarks/fuzz.py): ``decode_event`` (+ ``to_canonical`` and
``orjson.dumps`` for accepted events) over every payload, counted by kind and reason, timed."""

from __future__ import annotations

import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from schemas.canonical import to_canonical
from schemas.decode import EventDecodeError, decode_event

from .common import log
from .fuzz_failures import Failure, save
from .fuzz_kinds import Kind
from .fuzz_plan import RC, digest, payloads


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
