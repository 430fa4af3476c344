"""The tag engine's cost per event in CPU instructions, counted by valgrind (issue 12).

    python -m benchmarks.engine_instructions [--rules A.yaml B.yaml ...] [--events 20000]
    python -m benchmarks.engine_instructions --live [--events 30000] [--step-ms 500]

Timings on this project's 2-core machine vary by 5-15 % from one run to the next (other tenants of
the host), more than most engine changes are worth, so an A/B of two timings needs many
alternated runs. Instructions do not vary: this runs ``benchmarks.engine_only``'s input through
``TagEngine.process_event`` (two passes over fresh states: the first warms the engine's
caches, both are counted; the worker's garbage-collector policy) under
``valgrind --tool=callgrind``, collecting only inside ``process_event``, and reports instructions
per event per rule set and their ratio to the first (the 50 reference tags by default). Needs
valgrind (``apt-get install valgrind``) and the compiled engine (``python -m
streams.tools.build_native``); ~1 minute per rule set.

``--live`` counts ``benchmarks.rules_live``'s stream instead (event times ``--step-ms`` apart, hours
of business time, one pass): ``process_event`` and the due runs before each event
(``TagEngine.catch_up``), what a worker on a live stream runs.

Instructions are not time (a cache miss costs more than an add), but for the engine's kind of
change (fewer calls, fewer look-ups) they move together, and a 1 % change is visible.
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from streams.engine.tag_engine import TagEngine

from .common import REFERENCE_RULES
from .engine_only import events
from .rules_1000 import RULES_1000

SELECTIVE = RULES_1000.with_name("rules_1000_selective.yaml")


def entry_point(method: Any) -> str:
    """mypyc's C name of a compiled method's entry from Python (``CPyPy_<module>___<Class>___<name>``),
    named after the class that defines it: ``TagEngine.catch_up`` is ``DueTimes``'s (due_times.py)."""
    cls = getattr(method, "__objclass__", None)  # compiled: a method descriptor
    module = cls.__module__ if cls is not None else method.__module__
    return f"CPyPy_{module.rsplit('.', 1)[-1]}___{method.__qualname__.replace('.', '___')}"


COLLECT = entry_point(TagEngine.process_event)
CATCH_UP = entry_point(TagEngine.catch_up)
"""The compiled entry points (``streams/engine/native.py``); with the pure-Python engine,
``--collect`` another function (e.g. ``process_event``)."""


def _workers_gc() -> None:
    """The worker's collector policy (streams/app/gc_policy.py: a young threshold of 10,000, what is
    alive frozen once loaded): with Python's default, full collections walk the 1,000 tags'
    compiled rules again and again, ~3,400 instructions per event the worker does not spend, and
    whichever allocation triggers one is charged with it."""
    from streams.app import gc_policy

    gc_policy.install(10_000, freeze=True)
    gc_policy.after_recovery()


def _child(rules: str, events_path: str) -> None:
    """Runs inside valgrind: two passes of the events through one engine."""
    from streams.engine.features.state import CustomerState
    from tag_rules import load_rules

    with open(events_path, "rb") as f:
        evs = pickle.load(f)
    engine = TagEngine(load_rules(rules))
    _workers_gc()
    for _ in range(2):
        states: dict[str, CustomerState] = {}
        for ev in evs:
            engine.process_event(states.setdefault(ev["customer_id"], CustomerState()), ev, ev["ts_ms"])


def _live_child(rules: str, events_path: str) -> None:
    """Runs inside valgrind: one pass of ``rules_live`` (events and the due runs before them)."""
    from tag_rules import load_rules

    from .rules_live import run

    with open(events_path, "rb") as f:
        evs = pickle.load(f)
    engine = TagEngine(load_rules(rules))
    _workers_gc()
    run(engine, evs)


def count(rules: Path, events_path: Path, collect: list[str], workdir: Path, *, live: bool = False) -> int:
    """Instructions spent inside the functions ``collect`` while the child runs ``rules``."""
    out = workdir / f"callgrind.{rules.stem}"
    child = "--live-child" if live else "--child"
    subprocess.run(["valgrind", "--tool=callgrind", *(f"--toggle-collect={c}" for c in collect),
                    f"--callgrind-out-file={out}",
                    sys.executable, "-m", "benchmarks.engine_instructions", child, str(rules), str(events_path)],
                   check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1])
    m = re.search(r"^summary:\s*(\d+)", out.read_text(), re.M)
    if m is None:
        raise RuntimeError(f"no summary line in {out}")
    if not int(m.group(1)):
        raise RuntimeError(f"nothing collected inside {collect}: is the engine compiled for this source "
                           "(python -m streams.tools.build_native)?")
    return int(m.group(1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rules", nargs="+", type=Path, default=[REFERENCE_RULES, SELECTIVE])
    p.add_argument("--events", type=int, default=None, help="20,000 (30,000 with --live)")
    p.add_argument("--live", action="store_true", help="rules_live's stream: events and due runs over hours")
    p.add_argument("--step-ms", type=float, default=500.0, help="with --live: event times this far apart")
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--collect", nargs="+", default=None)
    p.add_argument("--keep", type=Path, default=None,
                   help="keep valgrind's outputs here (callgrind.<rules>: for callgrind_annotate --inclusive=yes)")
    p.add_argument("--child", nargs=2, metavar=("RULES", "EVENTS"), help=argparse.SUPPRESS)
    p.add_argument("--live-child", nargs=2, metavar=("RULES", "EVENTS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    if args.live_child:
        _live_child(*args.live_child)
        return 0
    collect = args.collect or ([COLLECT, CATCH_UP] if args.live else [COLLECT])
    if shutil.which("valgrind") is None:
        p.error("valgrind is not installed (apt-get install valgrind)")
    if args.live:
        from .rules_live import stream

        evs = stream(args.events or 30_000, args.customers, args.seed, args.step_ms)
        passes = 1
    else:
        n = args.events or 20_000
        evs = events(n * 3, args.customers, args.seed)[:n]  # engine_only's generator and seed
        passes = 2
    rows: list[dict[str, object]] = []
    first: float | None = None
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        events_path = workdir / "events.pkl"
        events_path.write_bytes(pickle.dumps(evs))
        for rules in args.rules:
            per_event = count(rules, events_path, collect, workdir, live=args.live) / (passes * len(evs))
            rows.append({"rules": str(rules), "instructions_per_event": round(per_event)})
            first = per_event if first is None else first
            ratio = first / per_event
            print(f"{rules.name}: {per_event:,.0f} instructions per event "
                  f"({len(evs):,} customer events, {passes} pass{'es' if passes > 1 else ''}"
                  f"{', with their due runs' if args.live else ''}); first / this = {ratio:.1%}", flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
