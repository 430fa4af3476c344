"""Garbage-collector pauses with many customer states in memory, with and without the worker's
freeze policy (streams/app/gc_policy.py, ``TAGSTREAM_ENGINE__GC_FREEZE``).

    python -m benchmarks.gc_pause [--customers 200000] [--events 300000] [--policy both|on|off]

No Kafka, no Redis: a worker's heap in one process. ``--customers`` states are loaded as a
worker recovers them from its changelog (``CustomerState.loads`` of states the engine made from
the generator's events, one per customer id), then the policy's ``after_recovery`` runs, then
``--events`` generator events go through ``TagEngine.process_event`` on those states (the
reference rules) while every collection's pause is recorded. Each policy runs in a fresh
subprocess (its own heap), one after the other; run it alone on the machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path
from typing import Any

from schemas.canonical import to_canonical
from schemas.decode import decode_event
from streams.app import gc_policy
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from streams.tools.generator import RetailGenerator
from tag_rules import load_rules

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "benchmarks" / "reference_rules.yaml"


def _canonical(gen: RetailGenerator, n: int, now: int) -> list[dict[str, Any]]:
    return [to_canonical(g.source, decode_event(g.source, g.value), now)
            for g in islice(gen, n) if g.key is not None and g.valid]


def one(customers: int, events: int, freeze: bool, seed: int) -> dict[str, Any]:
    """One policy in this process: load the states, then process the events; the pauses seen."""
    pauses: list[tuple[int, float]] = []
    started = [0.0]

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - started[0]))

    gc_policy.install(10_000, freeze=freeze)  # as run_worker does, before anything is loaded
    gc.callbacks.append(record)
    engine = TagEngine(load_rules(RULES))
    now = int(time.time() * 1000)
    # states to load: the engine's own, from a first stretch of traffic (templates reused round robin)
    templates: dict[str, CustomerState] = {}
    for ev in _canonical(RetailGenerator(seed=seed + 1, customers=20_000, start_ms=now - 400_000, step_ms=1.0),
                         200_000, now):
        engine.process_event(templates.setdefault(ev["customer_id"], CustomerState()), ev, ev["ts_ms"])
    blobs = [s.dumps() for s in templates.values()]
    del templates
    gen = RetailGenerator(seed=seed, customers=customers, start_ms=now - events, step_ms=1.0)
    churn = _canonical(gen, events, now)
    ids = sorted({ev["customer_id"] for ev in churn})
    loaded_at = time.perf_counter()
    states = {f"c{i:07d}": CustomerState.loads(blobs[i % len(blobs)]) for i in range(customers)}
    for i, cid in enumerate(ids):  # the ids the traffic reaches hold a state too
        states[cid] = CustomerState.loads(blobs[i % len(blobs)])
    load_s = time.perf_counter() - loaded_at
    frozen = gc_policy.after_recovery()
    loading, pauses[:] = list(pauses), []
    t0, c0 = time.perf_counter(), time.process_time()
    for ev in churn:
        engine.process_event(states[ev["customer_id"]], ev, ev["ts_ms"])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    gc.callbacks.remove(record)
    full = [p for g, p in pauses if g == 2]
    tracked = len(gc.get_objects())  # what a full collection walks (the permanent generation excluded)
    forced = time.perf_counter()
    gc.collect()  # what the next full collection costs now
    forced_s = time.perf_counter() - forced
    return {"freeze": freeze, "customers": len(states), "events": len(churn), "load_s": round(load_s, 1),
            "frozen_objects": frozen, "tracked_objects": tracked,
            "load_full_collections": sum(1 for g, _ in loading if g == 2),
            "load_full_total_s": round(sum(p for g, p in loading if g == 2), 3),
            "next_full_collection_s": round(forced_s, 3),
            "full_collections": len(full), "full_max_s": round(max(full, default=0.0), 3),
            "full_total_s": round(sum(full), 3), "all_collections_s": round(sum(p for _, p in pauses), 3),
            "cpu_us_per_event": round(cpu / len(churn) * 1e6, 1), "wall_s": round(wall, 2),
            "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=200_000)
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--policy", choices=("both", "on", "off"), default="both")
    args = p.parse_args()
    if args.policy != "both":
        print(json.dumps(one(args.customers, args.events, args.policy == "on", args.seed)))
        return
    rows = []
    for policy in ("off", "on"):
        print(f"[{time.strftime('%H:%M:%S')}] freeze {policy}: loading {args.customers:,} states, "
              f"then {args.events:,} events ...", flush=True)
        out = subprocess.run([sys.executable, "-m", "benchmarks.gc_pause", "--policy", policy, "--customers",
                              str(args.customers), "--events", str(args.events), "--seed", str(args.seed)],
                             cwd=REPO, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    keys = ["customers", "load_s", "load_full_collections", "load_full_total_s", "frozen_objects", "events",
            "full_collections", "full_max_s", "full_total_s", "all_collections_s", "cpu_us_per_event", "wall_s",
            "tracked_objects", "next_full_collection_s", "max_rss_mib"]
    print(f"{'':24}{'freeze off':>14}{'freeze on':>14}")
    for k in keys:
        print(f"{k:24}{rows[0][k]:>14,}{rows[1][k]:>14,}")


if __name__ == "__main__":
    main()
