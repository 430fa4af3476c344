"""The tag engine alone: CPU µs per customer event and tags evaluated per event (issues 9 and 12).

    python -m benchmarks.engine_only [--rules benchmarks/reference_rules.yaml] [--events 60000]
                                     [--customers 100000] [--passes 6]

No Kafka, no Redis, no stage: the generator's events (``benchmarks.rules_scale``'s seed and
customers, event times 1 ms apart ending "now"), validated and made canonical up front, then
``TagEngine.process_event`` on fresh in-memory states, ``--passes`` times; the best pass is
reported (``time.process_time``), with the tag changes and the tags evaluated per event (counted
in one more pass). Quick to alternate between two checkouts (a worktree each) to compare engine
changes; the machine varies by a few percent between runs, so alternate and read the ratio.
"""

from __future__ import annotations

import argparse
import gc
import time
from itertools import islice
from pathlib import Path
from typing import Any

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rules", default=str(REPO / "benchmarks" / "reference_rules.yaml"))
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--passes", type=int, default=6)
    args = p.parse_args()
    engine = TagEngine(load_rules(args.rules))
    evs = events(args.events, args.customers, args.seed)
    gc.freeze()  # the inputs are long-lived, as a worker's code and rules are
    best, changes = min(one_pass(engine, evs) for _ in range(max(1, args.passes)))
    print(f"{Path(args.rules).name}: {len(engine.tags)} tags, {len(evs):,} customer events, best of {args.passes} "
          f"passes: {best / len(evs) * 1e6:.1f} µs per event, {changes / len(evs):.2f} tag changes per event, "
          f"{evaluated_per_event(engine, evs):.2f} tags evaluated per event")


if __name__ == "__main__":
    main()
