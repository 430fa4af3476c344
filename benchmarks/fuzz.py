"""Fuzz run: malformed and adversarial events through the REAL worker on the real broker.

    python -m benchmarks.fuzz [--events 1000000] [--seed 1] [--kinds K1,K2] [--no-probes]

Method and results: benchmarks/FUZZ.md. In short:

1. A deterministic mix of payloads for all three source topics (``KINDS`` in fuzz_kinds.py: each
   kind has a count; ~99 % are invalid in some way, ~1 % are valid controls). ``--seed`` fixes the mix,
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
   found or suspects to crash the worker (see ``PROBES`` in fuzz_probes.py).

Writes JSON to benchmarks/results/fuzz-<run>.json and reproducers of every failure under
benchmarks/results/fuzz-<run>/. Needs Kafka and Redis (``bash deploy/local/stack.sh up kafka redis``).

This module is the entry point (options, the run, the summary). The parts live in benchmarks/:
fuzz_fields.py (valid base events, bad field values), fuzz_kinds.py (the record kinds, ``KINDS``),
fuzz_plan.py (the run's records and their codes), fuzz_inprocess.py (step 2), fuzz_worker.py and
fuzz_dlq.py (step 3), fuzz_probes.py (step 4 and the broker limit), fuzz_failures.py (reproducers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from array import array
from collections import Counter
from typing import Any

from .common import REPO, RESULTS, delete_topics, log, machine_info
from .fuzz_failures import Failure
from .fuzz_fields import MB
from .fuzz_inprocess import run_in_process
from .fuzz_kinds import KINDS
from .fuzz_plan import plan
from .fuzz_probes import PROBES, broker_limit, run_probe
from .fuzz_worker import run_worker_part


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
