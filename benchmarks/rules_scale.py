"""Throughput with 50 tags vs 1,000 tags on the same input (issue 12: a rule set of 1,000 tags
over the reference features keeps >= 80 % of the 50-tag throughput).

    python -m benchmarks.rules_scale [--events 200000] [--customers 100000] [--repeat 1] [--rules1000 PATH]

One backlog (the throughput benchmark's load) is produced once; then column c of
benchmarks/throughput.py — a fresh `tagstream worker` draining it — runs with
benchmarks/reference_rules.yaml (33 features, 50 tags) and with benchmarks/rules_1000.yaml (the
same features, 1,000 tags), alternately ``--repeat`` times (ABBA: the 50 tags first in odd repeats,
the 1,000 first in even ones), each on its own app id (own state,
own Redis prefix). It reports per rule set the drain rate, CPU seconds per million events and
tag changes per event, and the ratio 1,000-tag / 50-tag of the drain rate (medians over the
repeats). ``--rules1000`` runs another 1,000-tag file in place of rules_1000.yaml, e.g.
benchmarks/rules_1000_selective.yaml (narrow segments: far fewer tag changes). Results:
benchmarks/results/rules-scale-<run>.json. See benchmarks/RULES.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from . import common
from .audiences import cleanup_redis
from .common import REFERENCE_RULES, RESULTS, Load, log, machine_info
from .rules_1000 import RULES_1000
from .throughput import run_tagstream

RULE_SETS = {"50": REFERENCE_RULES, "1000": RULES_1000}


def rule_sets(rules1000: Path = RULES_1000) -> dict[str, Path]:
    """The two columns: the reference's 50 tags and a 1,000-tag file (``--rules1000``)."""
    return {**RULE_SETS, "1000": rules1000}


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    run_id = f"rules-{time.strftime('%Y%m%d-%H%M%S')}"
    load = Load(run_id, args.bootstrap, args.partitions)
    logs = RESULTS / run_id
    logs.mkdir(parents=True, exist_ok=True)
    sets = rule_sets(args.rules1000)
    out: dict[str, Any] = {"run_id": run_id, "machine": machine_info(args.redis_url),
                           "config": vars(args) | {"rule_sets": {k: str(v) for k, v in sets.items()}},
                           "runs": []}
    log(f"run {run_id}: {args.events:,} events, {args.customers:,} customers; logs in {logs}")
    await common.produce_backlog(load, events=args.events, customers=args.customers, seed=args.seed)
    n_customers = common.input_customers(events=args.events, customers=args.customers,
                                         seed=args.seed)["distinct_customers"]
    prefixes: list[str] = []
    try:
        for i in range(args.repeat):
            # ABBA: the first worker of a run drains a backlog no worker read yet and was the slower one of
            # its pair in every run of session 31; alternating the order spreads that over both rule sets.
            for tags, rules in (list(sets.items()) if i % 2 == 0 else list(sets.items())[::-1]):
                column = f"t{tags}-{i + 1}"
                prefixes.append(f"{run_id}-{column}")
                res = await run_tagstream(load, args.events, rules, args.redis_url, logs, [], 0.0, args.customers,
                                          args.seed, n_customers, column=column)
                row = {"tags": int(tags), "repeat": i + 1, "events_per_s": res["events_per_s"],
                       "cpu_s_per_million": res["cpu_s_per_million"], "tag_changes": res["tag_changes"],
                       "changes_per_event": res["tag_changes"] / args.events,
                       "state_bytes_per_customer": res["state_bytes_per_customer"], "partial": res["partial"]}
                out["runs"].append(row)
                log(f"{tags:>4} tags (run {i + 1}): {row['events_per_s']:,.0f} events/s, "
                    f"{row['cpu_s_per_million']:.0f} CPU-s per M events, {row['changes_per_event']:.2f} tag changes "
                    f"per event, {row['state_bytes_per_customer']:.0f} B state per customer")
    finally:
        if not args.keep:
            await common.delete_topics(args.bootstrap, [run_id])
            cleanup_redis(args.redis_url, prefixes)
    out["summary"] = summary(out["runs"])
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    med = {t: {k: statistics.median(r[k] for r in runs if r["tags"] == t)
               for k in ("events_per_s", "cpu_s_per_million", "changes_per_event", "state_bytes_per_customer")}
           for t in (50, 1000)}
    rate = {(r["tags"], r["repeat"]): r["events_per_s"] for r in runs}
    repeats = sorted({r["repeat"] for r in runs})
    pairs = [rate[1000, i] / rate[50, i] for i in repeats if (50, i) in rate and (1000, i) in rate]
    return {"median": med, "ratio_events_per_s": med[1000]["events_per_s"] / med[50]["events_per_s"],
            "ratio_cpu_per_event": med[1000]["cpu_s_per_million"] / med[50]["cpu_s_per_million"],
            "pairs": pairs, "median_pair": statistics.median(pairs) if pairs else None}


def table(out: dict[str, Any]) -> str:
    s = out["summary"]
    lines = ["| tags | events/s | CPU-s per 1M events | tag changes per event | state B/customer |",
             "|---|---|---|---|---|"]
    for t in (50, 1000):
        m = s["median"][t]
        lines.append(f"| {t:,} | {m['events_per_s']:,.0f} | {m['cpu_s_per_million']:.0f} | "
                     f"{m['changes_per_event']:.2f} | {m['state_bytes_per_customer']:.0f} |")
    lines.append(f"\n1,000 tags ({out['config']['rule_sets']['1000']}) keep {s['ratio_events_per_s']:.0%} of the "
                 f"50-tag throughput (CPU per event x{s['ratio_cpu_per_event']:.2f}).")
    if s.get("pairs"):
        lines.append(f"Pairs (1,000 / 50, same repeat): {' / '.join(f'{p:.0%}' for p in s['pairs'])}; "
                     f"median pair {s['median_pair']:.0%}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=1, help="alternate the two rule sets this many times")
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--keep", action="store_true", help="keep the run's topics and Redis keys")
    p.add_argument("--rules1000", type=Path, default=RULES_1000,
                   help="the 1,000-tag rule file (e.g. benchmarks/rules_1000_selective.yaml)")
    args = p.parse_args(argv)
    out = asyncio.run(amain(args))
    path = RESULTS / f"rules-scale-{out['run_id']}.json"
    path.write_text(json.dumps(out, indent=1, default=str))
    print(table(out))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
