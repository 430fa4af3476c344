"""One side of the differential test of the compiled engine (tests/unit/test_native.py).

``TAGSTREAM_NATIVE=off|on python -m tests.native_harness < cases.json`` runs each case's rule
set over its events (the retail generator's, or the case's own), merges pairs of its customers
(identity resolution's state merge, ``merges``), drives every due time to the end,
and prints JSON: the engine it ran, and per case and customer a digest of every tag change (with its
``change_id``, cause, reason and instant) and of the state's bytes after each step. Both engines
must print the same digests.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from schemas.canonical import to_canonical
from schemas.decode import decode_event
from streams.engine import native
from streams.engine.features.state import CustomerState
from streams.engine.identity.merge import merge_customers
from streams.engine.tag_engine import TagEngine
from streams.tools.generator import RetailGenerator
from tag_rules import CompiledRuleSet, RuleSetError, load_rules

DAY_MS = 86_400_000


def generated(seed: int, customers: int, count: int, start_ms: int) -> list[dict[str, Any]]:
    out = []
    for g in islice(RetailGenerator(seed=seed, customers=customers, start_ms=start_ms, step_ms=50.0), count):
        if g.key is not None and g.valid:
            out.append(to_canonical(g.source, decode_event(g.source, g.value), start_ms))
    return out


def rules_of(case: dict[str, Any]) -> CompiledRuleSet | None:
    if "path" in case:
        return load_rules(case["path"])
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "rules.yaml"
        p.write_text(json.dumps(case["doc"]), encoding="utf-8")
        try:
            return load_rules(p)
        except RuleSetError:
            return None


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    rules = rules_of(case)
    if rules is None:
        return {"compiled": False}
    engine = TagEngine(rules, allowed_lateness_ms=case.get("lateness"))
    start = case.get("start_ms", 1_800_000_000_000)
    evs = case.get("events") or generated(case.get("seed", 1), case.get("customers", 200), case.get("count", 2000),
                                          start)
    states: dict[str, CustomerState] = {}
    digests: dict[str, Any] = {}

    def note(cid: str, changes: list[Any], state: CustomerState) -> None:
        h = digests.setdefault(cid, hashlib.sha256())
        for change in changes:
            h.update(orjson.dumps(change, option=orjson.OPT_SORT_KEYS))
        h.update(state.dumps())

    now = start
    for ev in evs:
        now = max(now, ev["ts_ms"])
        cid = ev["customer_id"]
        state = states.setdefault(cid, CustomerState())
        out = engine.process_event(state, ev, now)
        note(cid, out.changes, state)
        states[cid] = CustomerState.loads(state.dumps())  # as the changelog and a restart do
    ids = sorted(states)
    for i in range(min(case.get("merges", 0), len(ids) // 2)):  # identity merges: state bucket by bucket
        survivor, absorbed = ids[2 * i], ids[2 * i + 1]
        merged = merge_customers(engine, states[survivor], survivor, states[absorbed], absorbed, now, f"m{i}")
        note(survivor, merged.survivor_changes, states[survivor])
        note(absorbed, merged.absorbed_changes, states[absorbed])
    end = now + case.get("drive_days", 40) * DAY_MS
    for cid in sorted(states):
        state = states[cid]
        for _ in range(500):
            if state.due_ms is None or state.due_ms > end:
                break
            note(cid, engine.process_due(state, cid, state.due_ms, end), state)
    return {"compiled": True, "evaluated": engine.evaluated,
            "customers": {cid: h.hexdigest()[:20] for cid, h in sorted(digests.items())}}


def main() -> None:
    cases = json.load(sys.stdin)
    print(json.dumps({"engine": native.ENGINE, "reason": native.REASON, "cases": [run_case(c) for c in cases]}))


if __name__ == "__main__":
    main()
