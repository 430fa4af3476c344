"""The tag engine alone: CPU µs per customer event and tags evaluated per event (issues 9 and 12).

    python -m benchmarks.engine_only [--rules benchmarks/reference_rules.yaml] [--events 60000]
                                     [--customers 100000] [--passes 6] [--native [--warm] | --batches N]

No Kafka, no Redis, no stage: the generator's events (``benchmarks.rules_scale``'s seed and
customers, event times 1 ms apart ending "now"), validated and made canonical up front, then
``TagEngine.process_event`` on fresh in-memory states, ``--passes`` times; the best pass is
reported (``time.process_time``), with the tag changes and the tags evaluated per event (counted
in one more pass). Quick to alternate between two checkouts (a worktree each) to compare engine
changes; the machine varies by a few percent between runs, so alternate and read the ratio.

``--native`` also runs the tag engine of the Rust core (``streams/engine/native_engine.py``, issue 9;
the worker runs it by default since session 41) on the same events, alternating pass by pass with the Python engine:
``run_fresh`` (the events as the internal topic's JSON, fresh native states kept in the core: its own
cost, parsing included) and one call per event from Python (``process_event``: with the crossing),
checking that it makes as many tag changes.

``--batches N`` times the core the way the worker's customer stage calls it instead (session 42):
the events in customer batches of N, each customer's events of a batch folded in one
``fold_events`` call into a copy of its state (``CoreTagEngine.state_for``), the new state dumped and
put in place of the old one (which is freed). Without Python's engine; ``--passes`` as above.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from schemas.canonical import to_canonical
from schemas.decode import decode_event
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from streams.tools.generator import RetailGenerator
from tag_rules import load_rules

REPO = Path(__file__).resolve().parents[1]


def events(n: int, customers: int, seed: int) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    gen = RetailGenerator(seed=seed, customers=customers, start_ms=now - n, step_ms=1.0)
    out = []
    for g in islice(gen, n):
        if g.key is not None and g.valid:
            out.append(to_canonical(g.source, decode_event(g.source, g.value), now))
    return out


def one_pass(engine: TagEngine, evs: list[dict[str, Any]]) -> tuple[float, int]:
    states: dict[str, CustomerState] = {}
    changes = 0
    start = time.process_time()
    for ev in evs:
        changes += len(engine.process_event(states.setdefault(ev["customer_id"], CustomerState()), ev,
                                            ev["ts_ms"]).changes)
    return time.process_time() - start, changes


def evaluated_per_event(engine: TagEngine, evs: list[dict[str, Any]]) -> float:
    """Tags handed to the evaluation per event, in one pass (``TagEngine.evaluated``)."""
    before = engine.evaluated
    one_pass(engine, evs)
    return (engine.evaluated - before) / len(evs)


def native_passes(engine: TagEngine, evs: list[dict[str, Any]], passes: int, warm: bool = False) -> None:
    """The Python engine and the Rust core's, alternating pass by pass (``--native``). ``warm``:
    each pass first folds the first half of the events, untimed, and times the second half, so most
    customers have state and the engines' caches are warm (a long-running worker's case)."""
    from streams.engine.native_engine import native_engine

    native = native_engine(engine)
    items = [(ev["customer_id"], orjson.dumps(ev), ev["ts_ms"]) for ev in evs]
    if warm:
        warm_passes(engine, native, evs, items, passes)
        return

    def in_core() -> tuple[float, int]:
        start = time.process_time()
        changes = native.run_fresh(items)
        return time.process_time() - start, changes

    def per_call() -> tuple[float, int]:
        states: dict[str, Any] = {}
        changes = 0
        start = time.process_time()
        for cid, raw, now in items:
            state = states.get(cid)
            if state is None:
                state = states[cid] = native.state()
            changes += len(native.process_event(state, raw, now)[0])
        return time.process_time() - start, changes

    runs: dict[str, Callable[[], tuple[float, int]]] = {
        "python": lambda: one_pass(engine, evs), "core, run_fresh": in_core, "core, a call per event": per_call}
    best: dict[str, float] = {}
    made: dict[str, int] = {}
    for _ in range(max(1, passes)):
        for name, run in runs.items():
            took, changes = run()
            best[name] = min(best.get(name, took), took)
            made[name] = changes
    if len(set(made.values())) != 1:
        raise SystemExit(f"the engines made different numbers of tag changes: {made}")
    for name, took in best.items():
        print(f"  {name:24} {took / len(evs) * 1e6:6.2f} µs per event (best of {passes}), "
              f"{best['python'] / took:.2f}x the Python engine")


def warm_passes(engine: TagEngine, native: Any, evs: list[dict[str, Any]], items: list[tuple[str, bytes, int]],
                passes: int) -> None:
    half = len(evs) // 2

    def python() -> tuple[float, int]:
        states: dict[str, CustomerState] = {}
        for ev in evs[:half]:
            engine.process_event(states.setdefault(ev["customer_id"], CustomerState()), ev, ev["ts_ms"])
        changes = 0
        start = time.process_time()
        for ev in evs[half:]:
            changes += len(engine.process_event(states.setdefault(ev["customer_id"], CustomerState()), ev,
                                                ev["ts_ms"]).changes)
        return time.process_time() - start, changes

    def core() -> tuple[float, int]:
        states: dict[str, Any] = {}

        def run(part: list[tuple[str, bytes, int]]) -> int:
            changes = 0
            for cid, raw, now in part:
                state = states.get(cid)
                if state is None:
                    state = states[cid] = native.state()
                changes += len(native.process_event(state, raw, now)[0])
            return changes

        run(items[:half])
        start = time.process_time()
        changes = run(items[half:])
        return time.process_time() - start, changes

    best: dict[str, float] = {}
    made: dict[str, int] = {}
    for _ in range(max(1, passes)):
        for name, fn in (("python, warm", python), ("core, a call per event, warm", core)):
            took, changes = fn()
            best[name] = min(best.get(name, took), took)
            made[name] = changes
    if len(set(made.values())) != 1:
        raise SystemExit(f"the engines made different numbers of tag changes: {made}")
    timed = len(evs) - half
    for name, took in best.items():
        print(f"  {name:30} {took / timed * 1e6:6.2f} µs per event (the second {timed:,} events, best of "
              f"{passes}), {best['python, warm'] / took:.2f}x the Python engine")


def batch_passes(engine: TagEngine, evs: list[dict[str, Any]], batch: int, passes: int) -> None:
    """The core as the customer stage calls it (``--batches``): a copy, a fold, a dump per customer per batch."""
    from streams.engine.native_engine import native_engine

    native = native_engine(engine)
    now = evs[-1]["ts_ms"] if evs else 0
    batches: list[list[tuple[str, list[bytes]]]] = []
    for i in range(0, len(evs), batch):
        grouped: dict[str, list[bytes]] = {}
        for ev in evs[i:i + batch]:
            grouped.setdefault(ev["customer_id"], []).append(orjson.dumps(ev))
        batches.append(list(grouped.items()))

    def one() -> tuple[float, int]:
        states: dict[str, Any] = {}
        changes = 0
        start = time.process_time()
        for customers in batches:
            for cid, items in customers:
                old = states.get(cid)
                state = old.copy() if old is not None else native.state()
                changes += len(native.fold_events(state, items, now, True)[0])
                state.dumps()
                states[cid] = state
        return time.process_time() - start, changes

    took, changes = min(one() for _ in range(max(1, passes)))
    print(f"  core, customer batches of {batch:,} events: {took / len(evs) * 1e6:6.2f} µs per event (best of "
          f"{passes}; {sum(map(len, batches)) / len(evs):.2f} customer folds per event, {changes:,} tag changes)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rules", default=str(REPO / "benchmarks" / "reference_rules.yaml"))
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--passes", type=int, default=6)
    p.add_argument("--native", action="store_true", help="also the Rust core's engine, alternating (issue 9)")
    p.add_argument("--warm", action="store_true", help="with --native: time the second half of the events, the "
                   "first half folded first (states and caches warm)")
    p.add_argument("--batches", type=int, metavar="N", help="only the Rust core, as the worker calls it: customer "
                   "batches of N events (session 42)")
    args = p.parse_args()
    engine = TagEngine(load_rules(args.rules))
    evs = events(args.events, args.customers, args.seed)
    gc.freeze()  # the inputs are long-lived, as a worker's code and rules are
    if args.batches:
        batch_passes(engine, evs, args.batches, args.passes)
        return
    best, changes = min(one_pass(engine, evs) for _ in range(max(1, args.passes)))
    print(f"{Path(args.rules).name}: {len(engine.tags)} tags, {len(evs):,} customer events, best of {args.passes} "
          f"passes: {best / len(evs) * 1e6:.1f} µs per event, {changes / len(evs):.2f} tag changes per event, "
          f"{evaluated_per_event(engine, evs):.2f} tags evaluated per event")
    if args.native:
        native_passes(engine, evs, args.passes, warm=args.warm)


if __name__ == "__main__":
    main()
