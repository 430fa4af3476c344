"""50 vs 1,000 tags while time passes: events and due times over hours, in-process (issue 12).

    python -m benchmarks.rules_live [--events 100000] [--step-ms 150] [--customers 100000]
                                    [--rules1000 PATH] [--repeat 3] [--json PATH] [--python-gc]

``benchmarks.rules_scale`` drains a backlog whose events span a few minutes of business time:
no window bucket expires and no ``since_last`` threshold of hours is crossed while it runs, so it
never meets the due timer. A worker on a live stream does: every bucket that leaves a window, every
threshold a ``since_last`` crosses and every flap-control gate is a due time, and once the stream
is hours long they come at ~0.2 per event. This runs the generator's stream (seed 20261127, Zipf
customers) with event times ``--step-ms`` apart, each event processed at its own time, and before
each event every customer whose due time has come (``TagEngine.catch_up``, as the worker's timer
does): ``TagEngine`` alone, no Kafka, no Redis, no stage. The rule sets alternate ``--repeat``
times, each run in a process of its own (a long-lived one drifts: its heap grows with the runs
before, and a rule set's caches would carry over); reported per rule set: CPU µs per event counting the due runs
(``time.process_time``, median over the repeats), the events' and the due runs' shares, tag
changes, and the ratio 50-tag / 1,000-tag of that cost (the share of the 50-tag throughput the
1,000 tags keep in this part of the worker). Each run collects garbage as the worker does
(``streams/app/gc_policy.py``: a young threshold of 10,000, what survives a full collection frozen;
``--python-gc``: Python's own thresholds). See benchmarks/RULES.md.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from schemas.canonical import to_canonical
from schemas.decode import decode_event
from streams.app import gc_policy
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from streams.settings import EngineSettings
from streams.tools.generator import RetailGenerator
from tag_rules import load_rules

from .common import REFERENCE_RULES
from .rules_1000 import RULES_1000_SELECTIVE

WORKER_GC_YOUNG_THRESHOLD: int = EngineSettings.model_fields["gc_young_threshold"].default
"""``TAGSTREAM_ENGINE__GC_YOUNG_THRESHOLD``'s default."""
T0 = 1_780_000_000_000
"""The stream's first event time (fixed: the figures do not depend on the day they are run)."""


def stream(events: int, customers: int, seed: int, step_ms: float) -> list[dict[str, Any]]:
    """The generator's customer events (anonymous and invalid ones left out), canonical, in time order."""
    out = []
    for g in RetailGenerator(seed=seed, customers=customers, start_ms=T0, step_ms=step_ms).take(events):
        if g.key is not None and g.valid:
            ev = to_canonical(g.source, decode_event(g.source, g.value), T0)
            if ev["customer_id"] is not None:
                out.append(ev)
    return out


def run(engine: TagEngine, evs: list[dict[str, Any]],
        states: dict[str, CustomerState] | None = None) -> dict[str, float]:
    """One pass over fresh states (``states``, empty: filled here): each event at its own time,
    after the due times before it."""
    states = {} if states is None else states
    timer: list[tuple[int, str]] = []  # (due time, customer): the worker's due index, as a heap
    clock = time.process_time
    event_s = due_s = 0.0
    due_runs = event_changes = due_changes = 0
    gc.collect()
    for ev in evs:
        now = ev["ts_ms"]
        while timer and timer[0][0] <= now:
            due, cid = heapq.heappop(timer)
            state = states[cid]
            if state.due_ms != due:  # moved since it was queued: its own entry is in the heap
                continue
            t = clock()
            due_changes += len(engine.catch_up(state, cid, due))
            due_s += clock() - t
            due_runs += 1
            if state.due_ms is not None:
                heapq.heappush(timer, (state.due_ms, cid))
        cid = ev["customer_id"]
        state = states.setdefault(cid, CustomerState())
        due_before = state.due_ms
        t = clock()
        event_changes += len(engine.process_event(state, ev, now).changes)
        event_s += clock() - t
        if state.due_ms is not None and state.due_ms != due_before:
            heapq.heappush(timer, (state.due_ms, cid))
    n = len(evs)
    return {"us_per_event": (event_s + due_s) / n * 1e6, "event_us": event_s / n * 1e6,
            "due_us_per_event": due_s / n * 1e6, "due_runs_per_event": due_runs / n,
            "us_per_due_run": due_s / due_runs * 1e6 if due_runs else 0.0,
            "changes_per_event": event_changes / n, "due_changes_per_event": due_changes / n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100_000,
                   help="generated events (anonymous and invalid ones are left out)")
    p.add_argument("--step-ms", type=float, default=150.0, help="event time between two generated events")
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--rules1000", type=Path, default=RULES_1000_SELECTIVE)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--python-gc", action="store_true", help="Python's garbage-collector thresholds, not the worker's")
    p.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # a child: one run of these rules, as JSON
    args = p.parse_args(argv)
    evs = stream(args.events, args.customers, args.seed, args.step_ms)
    if args.one:
        engine = TagEngine(load_rules(args.one))
        if not args.python_gc:
            gc_policy.install(WORKER_GC_YOUNG_THRESHOLD, freeze=True)
            gc_policy.after_recovery()  # the input and the engine are long-lived, as a worker's tables
        print(json.dumps(run(engine, evs)))
        return 0
    hours = (evs[-1]["ts_ms"] - evs[0]["ts_ms"]) / 3.6e6 if evs else 0.0
    print(f"{len(evs):,} customer events over {hours:.1f} h of event time", flush=True)
    sets = {"50": REFERENCE_RULES, "1000": args.rules1000}
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in sets}
    child = [sys.executable, "-m", "benchmarks.rules_live", "--events", str(args.events), "--step-ms",
             str(args.step_ms), "--customers", str(args.customers), "--seed", str(args.seed),
             *(["--python-gc"] if args.python_gc else [])]
    for i in range(args.repeat):
        for k, path in sets.items():
            out = subprocess.run([*child, "--one", str(path)], check=True, capture_output=True, text=True,
                                 cwd=Path(__file__).resolve().parents[1]).stdout
            r = json.loads(out.strip().splitlines()[-1])
            runs[k].append(r)
            print(f"  {k:>4} tags, run {i + 1}: {r['us_per_event']:.1f} µs per event (events {r['event_us']:.1f}, "
                  f"due times {r['due_us_per_event']:.1f}: {r['due_runs_per_event']:.3f} per event at "
                  f"{r['us_per_due_run']:.0f} µs)", flush=True)
    med = {k: {f: statistics.median(r[f] for r in rs) for f in rs[0]} for k, rs in runs.items()}
    print("\n| tags | CPU µs per event | of which events | due times | due runs per event | µs per due run | "
          "changes per event (events, due times) |\n|---|---|---|---|---|---|---|")
    for k, m in med.items():
        print(f"| {k} | {m['us_per_event']:.1f} | {m['event_us']:.1f} | {m['due_us_per_event']:.1f} | "
              f"{m['due_runs_per_event']:.3f} | {m['us_per_due_run']:.0f} | "
              f"{m['changes_per_event']:.2f}, {m['due_changes_per_event']:.3f} |")
    kept = med["50"]["us_per_event"] / med["1000"]["us_per_event"]
    pairs = [a["us_per_event"] / b["us_per_event"] for a, b in zip(runs["50"], runs["1000"], strict=True)]
    print(f"\n1,000 tags ({args.rules1000}) keep {kept:.0%} of the 50-tag speed of the engine as time passes "
          f"(pairs {' / '.join(f'{x:.0%}' for x in pairs)})")
    if args.json:
        args.json.write_text(json.dumps({"config": {k: str(v) for k, v in vars(args).items()},
                                         "events": len(evs), "hours": hours, "runs": runs, "median": med,
                                         "kept": kept}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
