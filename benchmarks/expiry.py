"""Expiry precision under load: how late do time-driven tag changes leave the worker?

    python -m benchmarks.expiry [--rate 2000 --duration 60 --customers 20000 --windows 10s,1h,24h,7d,30d]

For each window W (one *phase* each; method and results: benchmarks/EXPIRY.md):

* a real ``tagstream worker`` subprocess runs the W group of ``benchmarks/expiry_rules.yaml``
  (``seen_W: n_W >= 1`` and ``absent_W: since_W >= W``) with its clock sped up
  ``S = W / expire_wall_s`` times (``TAGSTREAM_ENGINE__CLOCK_SPEED``/``CLOCK_ORIGIN_MS``), so W
  elapses in ``expire_wall_s`` wall seconds;
* a steady stream of clickstream events (``--rate`` per second for ``--duration`` s, customers
  drawn uniformly from ``--customers``) is produced with ``ts`` = the worker's scaled now at send
  time; a customer's mean gap between events is ``customers / rate`` wall seconds, so a large share
  of them expire (and turn absent) while events keep coming;
* every record of the worker's tag-change topic is read back; for cause ``expiry`` the lateness
  is ``publish_clock - at_ms`` where ``publish_clock`` is the record's Kafka CreateTime (set when
  the worker sends it) mapped into the worker's clock: ``origin + (create_time - origin) * S``.
  It is reported in the engine's clock *and* divided by S (wall-equivalent, what the same
  scheduling delay costs a real deployment at speed 1); the 1 s target applies to the latter.

Completeness: the same events are replayed through ``TagEngine`` in process (the worker's code
snapshot, each event at its own ``ts`` as "now", then every state caught up to the end of the
run); every expiry change that replay makes must be on the tag topic (by ``change_id``), else the
phase is INCOMPLETE and the run exits 1.

Timer cost: the worker's CPU time (/proc/<pid>/stat) per event under the same load, compared with
two baselines that never fire a due time: the lifetime-only group, and the 30d group at speed 1
(same folding and due scheduling, nothing falls due within the run). Ticks are counted exactly in
the worker's internal customer topic; a micro-benchmark of ``TagEngine.catch_up`` gives the pure
engine part of one tick.

Writes JSON to ``benchmarks/results/``. Needs Kafka and Redis (``bash deploy/local/stack.sh up kafka redis``).

The parts live in ``benchmarks/expiry_*.py``: the rule groups (``expiry_groups``), one phase
(``expiry_phase``) with its worker (``expiry_worker``) and Kafka I/O (``expiry_kafka``), the analysis
(``expiry_analysis``), the replay (``expiry_replay``), the micro-benchmark (``expiry_micro``), the
report (``expiry_report``) and the code snapshot the workers run (``expiry_snapshot``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .expiry_analysis import PhaseResult, summary
from .expiry_groups import WINDOWS_MS
from .expiry_micro import micro_benchmark
from .expiry_phase import Phase
from .expiry_replay import REPLAY_FLAG, replay_main
from .expiry_report import print_report
from .expiry_snapshot import snapshot_code
from .expiry_worker import WORKER_FLAG

RESULTS = Path(__file__).with_name("results")


def phase_plan(args: argparse.Namespace) -> list[tuple[str, str, float]]:
    """(name, rules group, clock speed) of every phase: the two baselines, then one per window."""
    phases: list[tuple[str, str, float]] = []
    if args.baselines:
        phases += [("lifetime@1x", "lifetime", 1.0), ("30d@1x-nodue", "30d", 1.0)]
    for w in args.windows:
        speed = max(1.0, WINDOWS_MS[w] / (args.expire_wall_s * 1000))
        phases.append((w, w, speed))
    return phases


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    phases = phase_plan(args)
    results: list[PhaseResult] = []
    wall_under: list[float] = []
    tmp = Path(tempfile.mkdtemp(prefix="tagstream-bench-"))  # worker logs; removed when all went well
    src, code = snapshot_code(tmp / "src", args.worktree)
    print(f"worker code: {code}", flush=True)
    for name, group, speed in phases:
        print(f"phase {name}: rules group {group}, clock speed {speed:,.0f}", flush=True)
        phase = Phase(args, run_id, name, group, speed, tmp, src)
        results.append(await phase.run())
        if name in args.windows:
            wall_under += phase.wall_under
    shutil.rmtree(tmp, ignore_errors=True)
    baseline = {}
    for r in results:
        if r.name == "lifetime@1x":
            baseline["lifetime"] = r.cpu_us_per_event
        if r.name == "30d@1x-nodue":
            baseline["nodue"] = r.cpu_us_per_event
    micro = {f"{g}:{k}": v for g in ("10s", "30d") for k, v in micro_benchmark(g, args.micro_n).items()}
    overall = summary(wall_under)
    print_report(results, overall, micro, baseline)
    return {"run_id": run_id, "args": vars(args), "machine": machine(), "code": code,
            "complete": all(r.complete for r in results), "baseline_cpu_us_per_event": baseline,
            "micro_benchmark_us": micro, "phases": [asdict(r) for r in results], "overall": overall}


def machine() -> dict[str, Any]:
    import platform

    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cores": os.cpu_count(), "loadavg_at_start": os.getloadavg()}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--rate", type=float, default=250.0,
                   help="events per second during the load (default 250: one worker on a shared 2-core box\n"
                        "spends ~2.5 ms CPU per event, so ~400/s saturates it)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load per phase (default 60)")
    p.add_argument("--customers", type=int, default=2_500,
                   help="customers drawn uniformly (default 2500: mean gap per customer = customers / rate = 10 s)")
    p.add_argument("--windows", default="10s,1h,24h,7d,30d", type=lambda s: [w for w in s.split(",") if w],
                   help="windows to measure, each its own phase (default 10s,1h,24h,7d,30d)")
    p.add_argument("--expire-wall-s", type=float, default=10.0,
                   help="wall seconds one window lasts: clock speed = W / this (default 10; 10s runs at 1x)")
    p.add_argument("--timer-interval-ms", type=int, default=100, help="TAGSTREAM_ENGINE__TIMER_INTERVAL_MS")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-baselines", dest="baselines", action="store_false",
                   help="skip the two no-due baseline phases (then no timer cost)")
    p.add_argument("--micro-n", type=int, default=20_000, help="customers in the engine micro-benchmark")
    p.add_argument("--worker-loglevel", default="warn")
    p.add_argument("--worktree", action="store_true",
                   help="run the worker on the working tree's streams/ (default: as committed at HEAD)")
    p.add_argument("--keep", action="store_true", help="keep the phase topics and Redis keys")
    p.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/results/expiry-<time>.json)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == [WORKER_FLAG]:
        from streams.cli import main as tagstream

        return tagstream(["worker"])
    if len(argv) == 3 and argv[0] == REPLAY_FLAG:
        return replay_main(Path(argv[1]), Path(argv[2]))
    p = parser()
    args = p.parse_args(argv)
    bad = [w for w in args.windows if w not in WINDOWS_MS]
    if bad:
        p.error(f"unknown window(s) {bad}; choose from {list(WINDOWS_MS)}")
    report = asyncio.run(amain(args))
    out = args.out or RESULTS / f"expiry-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report["args"]["out"] = str(out)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwrote {out}")
    if not report["complete"]:
        bad = [f"{p['name']} ({p['expiries_missing']:,} of {p['expiries_expected']:,} missing)"
               for p in report["phases"] if not p["complete"]]
        print(f"INCOMPLETE: expiry changes the engine should have made are not on the tag topic: {', '.join(bad)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
