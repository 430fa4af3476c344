"""Side-by-side throughput benchmark (GitHub issue 4): raw limit (a), a plain Faust baseline (b)
and the tagstream worker (c), one process each, on the same pre-produced topics.

    python -m benchmarks.throughput [--events 200000] [--customers 100000] [--only a,f,b,c]
                                    [--rates 1000,10000] [--rate-seconds 20]

See benchmarks/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from streams.tools.demo import histogram_quantile, total
from streams.tools.prom import done_count

from . import common, latency
from .audiences import audiences, cleanup_redis, compare_tags
from .common import (
    REFERENCE_RULES,
    RESULTS,
    Load,
    Proc,
    free_port,
    log,
    machine_info,
    state_size,
    tagstream_env,
    watch_drain,
)
from .throughput_report import chart, table

LATENCY = "tagstream_event_to_tag_latency_seconds"
STAGES = (("evaluation", "tagstream_batch_evaluation_seconds", {}),
          *((f"wait {o}", "tagstream_batch_output_wait_seconds", {"output": o})
            for o in ("redis", "tag_topic", "changelog")),
          *((f"gc pause {g}", "tagstream_gc_pause_seconds", {"generation": str(g)}) for g in (0, 1, 2)))
"""The worker's histograms reported beside each latency phase (where its tail is spent): per customer
batch, its evaluation and its waits for each output; per garbage collection, its pause."""


# -- (a) raw ---------------------------------------------------------------------------------------------


FLOORS = {"a": ("raw", "benchmarks.raw_consumer", "aiokafka getmany + orjson.loads"),
          "f": ("faust floor", "benchmarks.faust_floor", "Faust agent, take_events + orjson.loads, nothing else")}


def run_raw(load: Load, events: int, logs: Path, column: str = "a") -> dict[str, Any]:
    """Columns (a) and (f): a self-measuring consumer that decodes every value and does nothing else."""
    name, module, what = FLOORS[column]
    log(f"({column}) {name}: {what}, fresh process")
    argv = [sys.executable, "-m", module, "--bootstrap", load.bootstrap,
            "--topics", ",".join(load.topics.values()), "--expect", str(events)]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=common.REPO, timeout=900)
    (logs / f"{name.replace(' ', '-')}.log").write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"{name} consumer failed:\n{out.stdout}\n{out.stderr}")
    last = out.stdout.strip().splitlines()[-1]
    r = json.loads(last[last.index("{"):])  # after any terminal escapes Faust's spinner wrote
    secs = r["t_last"] - r["t_first"]
    res = {
        "events": r["events"],
        "seconds": secs,
        "events_per_s": r["events"] / secs,
        "cpu_s_per_million": (r["cpu_last"] - r["cpu_first"]) / r["events"] * 1e6,
        "cpu_utilisation": (r["cpu_last"] - r["cpu_first"]) / secs,
        "peak_rss_mib": r["vm_hwm_bytes"] / 2**20,
        "state_bytes_per_customer": None,
        "bytes_decoded": r["bytes"],
    }
    log(f"({column}) {name}: {res['events_per_s']:,.0f} events/s, {res['cpu_s_per_million']:.1f} CPU s per M events")
    return res


# -- (b) baseline ------------------------------------------------------------------------------------------


async def run_baseline(load: Load, events: int, rules: Path, redis_url: str, logs: Path,
                       budget_s: float, input_customers: int) -> dict[str, Any]:
    app_id = f"{load.run_id}-b"
    port = free_port()
    log(f"(b) baseline Faust app {app_id}: fresh process, metrics on :{port}")
    proc = Proc("baseline", [sys.executable, "-m", "benchmarks.baseline_app", "--app-id", app_id,
                             "--bootstrap", load.bootstrap, "--topics", ",".join(load.topics.values()),
                             "--tag-topic", f"{app_id}.tags", "--partitions", str(load.partitions),
                             "--rules", str(rules), "--redis-url", redis_url, "--redis-prefix", app_id,
                             "--metrics-port", str(port)],
                dict(os.environ), logs / "baseline.log").start()
    try:
        d = await watch_drain(proc, metrics_url=f"http://127.0.0.1:{port}/metrics", counter="baseline_events_in_total",
                              changelog=f"{app_id}-customers-changelog", bootstrap=load.bootstrap, events=events,
                              done=common.baseline_done, budget_s=budget_s, label="(b) baseline")
        log("(b) baseline: drained; reading its state changelog")
        st = await state_size(load.bootstrap, f"{app_id}-customers-changelog")
    finally:
        proc.stop()
    res = _drain_result(d, st, app_id)
    if not d.partial:  # a partial drain holds only the customers of the events it got to
        res["customers_check"] = common.check_customers("(b) baseline", st["customers"], input_customers)
        res["input_customers"] = input_customers
    return res


# -- (c) tagstream ----------------------------------------------------------------------------------------


async def run_tagstream(load: Load, events: int, rules: Path, redis_url: str, logs: Path, rates: list[float],
                        rate_seconds: float, customers: int, seed: int, input_customers: int,
                        compare_prefix: str | None = None, workers: int = 1,
                        worker_repo: Path | None = None, column: str = "c") -> dict[str, Any]:
    app_id = f"{load.run_id}-{column}"
    ports = [free_port() for _ in range(workers)]
    url: str | list[str] = [f"http://127.0.0.1:{port}/metrics" for port in ports]
    changelog = f"{app_id}-customers-changelog"
    log(f"(c) tagstream {app_id}: {workers} fresh worker process(es) (python -m streams.cli worker) in one "
        f"consumer group, metrics on :{','.join(map(str, ports))}")
    code = common.git_state(worker_repo)
    argv = [sys.executable, "-m", "streams.cli", "worker"]
    procs = [Proc("tagstream" if workers == 1 else f"tagstream-{i + 1}", argv,
                  tagstream_env(load, app_id, port, logs / f"data-{app_id}-{i + 1}", rules, redis_url),
                  logs / ("tagstream.log" if workers == 1 else f"tagstream-{i + 1}.log"),
                  cwd=worker_repo or common.REPO).start()
             for i, port in enumerate(ports)]
    proc: Proc | common.ProcGroup = procs[0] if workers == 1 else common.ProcGroup(procs)
    try:
        d = await watch_drain(proc, metrics_url=url, counter="tagstream_events_in_total", changelog=changelog,
                              bootstrap=load.bootstrap, events=events, label="(c) tagstream", progress_only=True)
        log("(c) tagstream: drained; reading its state changelog")
        st = await state_size(load.bootstrap, changelog)
        res = _drain_result(d, st, app_id)
        res["code"] = code
        if compare_prefix:
            res["tags_vs_b"] = compare_tags(redis_url, rules, compare_prefix, app_id)
        res["audiences_after_backlog"] = audiences(redis_url, rules, app_id)  # for (d); not in the JSON
        res["workers"] = workers
        s = common.scrape_all(url)
        res["tag_changes"] = total(s, "tagstream_tag_changes_total")
        res["counters_after_drain"] = {n: total(s, f"tagstream_{n}_total") for n in (
            "events_in", "events_processed", "events_duplicate", "events_anonymous", "events_invalid",
            "records_read_again")}
        res["counters_per_worker"] = [{n: total(common.scrape_all(u), f"tagstream_{n}_total") for n in (
            "events_in", "events_processed", "events_duplicate")} for u in (url if isinstance(url, list) else [url])]
        res["customers_in_state_metric"] = total(s, "tagstream_customers_in_state")
        res["customers_check"] = common.check_customers("(c) tagstream", st["customers"], input_customers)
        res["customers_check"]["customers_in_state_metric"] = res["customers_in_state_metric"]
        res["input_customers"] = input_customers
        res["backlog_latency_p50_s"] = histogram_quantile(s, LATENCY, 0.5)
        res["drain_stages"] = latency.stage_totals(s, STAGES, d.seconds)
        res["latency"] = []
        for i, rate in enumerate(rates):
            res["latency"].append(await _latency_phase(load, proc, url, changelog, rate, rate_seconds, customers,
                                                       seed + 1000 + i))
        res["peak_rss_mib_after_latency_phases"] = proc.vm_hwm_bytes() / 2**20
    finally:
        proc.stop()
    return res


async def _latency_phase(load: Load, proc: Proc | common.ProcGroup, url: str | list[str], changelog: str,
                         rate: float, seconds: float, customers: int, seed: int) -> dict[str, Any]:
    return await latency.latency_phase(load, proc, url, changelog, rate, seconds, customers, seed, label="(c)",
                                      counter="tagstream_events_in_total", done=done_count, latency=LATENCY,
                                      stages=STAGES)


def _drain_result(d: common.Drain, st: dict[str, float], app_id: str) -> dict[str, Any]:
    return {
        "app_id": app_id,
        "events": d.events,
        "partial": d.partial,
        "seconds": d.seconds,
        "events_per_s": d.events_per_s,
        "cpu_s_per_million": d.cpu_s_per_million,
        "cpu_utilisation": d.cpu_utilisation,
        "peak_rss_mib": d.vm_hwm_bytes / 2**20,
        "state_bytes_per_customer": st["bytes_per_customer"],
        "state_customers": st["customers"],
        "state_bytes_total": st["bytes"],
        "changelog_records": st["changelog_records"],
        "startup_s": d.startup_s,
        "ingest_done_s_before_end": d.t_last - d.t_ingest_done if d.t_ingest_done else None,
        "done_s_before_end": d.t_last - d.t_done if d.t_done else None,
        "drain_rule": "second stage done with every event (processed + anonymous + invalid >= events) "
                      "and the state changelog quiet for 2.5 s after that",
        "trace": d.trace,
    }


# -- main ----------------------------------------------------------------------------------------------------------


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    only = set(args.only.split(","))
    rates = [float(r) for r in args.rates.split(",") if r] if only & {"c", "d", "d2"} else []
    run_id = f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    load = Load(run_id, args.bootstrap, args.partitions, args.load)
    logs = RESULTS / run_id
    logs.mkdir(parents=True, exist_ok=True)
    rules = Path(args.rules)
    out: dict[str, Any] = {
        "run_id": run_id,
        "machine": machine_info(args.redis_url),
        "config": {"events": args.events, "customers": args.customers, "seed": args.seed,
                   "partitions": args.partitions, "rules": str(rules.relative_to(common.REPO))
                   if rules.is_relative_to(common.REPO) else str(rules), "rates": rates,
                   "rate_seconds": args.rate_seconds, "only": sorted(only)},
        "results": {},
    }
    log(f"run {run_id}: {args.events:,} events, {args.customers:,} customers, topics {run_id}.*, "
        f"{args.partitions} partitions; logs in {logs}")
    log("producing the backlog (RetailGenerator, deterministic seed)")
    ps = await common.produce_backlog(load, events=args.events, customers=args.customers, seed=args.seed)
    out["produce"] = {"events": ps.sent, "bad": ps.bad, "per_source": ps.per_source, "seconds": ps.elapsed_s,
                      "rate": ps.rate}
    out["input"] = common.input_customers(events=args.events, customers=args.customers, seed=args.seed)
    if ps.sent != args.events or ps.bad != out["input"]["invalid"]:
        raise RuntimeError(f"the backlog is not what the generator replay says: produced {ps.sent:,} "
                           f"({ps.bad:,} bad), expected {args.events:,} ({out['input']['invalid']:,} invalid)")
    log(f"backlog: {out['input']['customer_events']:,} customer events, {out['input']['anonymous']:,} anonymous, "
        f"{out['input']['invalid']:,} invalid; {out['input']['distinct_customers']:,} distinct customers")
    n_customers = out["input"]["distinct_customers"]
    res = out["results"]
    prefixes = []
    try:
        if "a" in only:
            res["a"] = run_raw(load, args.events, logs)
        if "f" in only:
            res["f"] = run_raw(load, args.events, logs, "f")
        if "b" in only:
            prefixes.append(f"{run_id}-b")
            res["b"] = await run_baseline(load, args.events, rules, args.redis_url, logs, args.baseline_budget,
                                          n_customers)
            log(f"(b) baseline: {res['b']['events_per_s']:,.0f} events/s, "
                f"{res['b']['cpu_s_per_million']:.1f} CPU s per M events")
        if "c" in only:
            prefixes.append(f"{run_id}-c")
            res["c"] = await run_tagstream(load, args.events, rules, args.redis_url, logs, rates,
                                           args.rate_seconds, args.customers, args.seed, n_customers,
                                           compare_prefix=f"{run_id}-b" if "b" in res and not res["b"]["partial"]
                                           else None, workers=args.workers, worker_repo=args.worker_repo)
        if "b" in only and "c" in only:
            out["tags_b_vs_c"] = res["c"].get("tags_vs_b")
        reference = res.get("c", {}).pop("audiences_after_backlog", None)
        for column, engine in (("d", "naive"), ("d2", "tagstream")):
            if column not in only:
                continue
            from .quix_column import run_quix

            prefixes.append(f"{run_id}-{column}")
            # its own copy of the backlog (the same generator and seed): (c)'s latency phases added
            # events to the shared topics
            load_d = Load(f"{run_id}-q{column}", args.bootstrap, args.partitions, args.load)
            log(f"({column}) producing the same backlog to topics of its own")
            await common.produce_backlog(load_d, events=args.events, customers=args.customers, seed=args.seed)
            res[column] = await run_quix(load_d, args.events, rules, args.redis_url, logs, rates,
                                         args.rate_seconds, args.customers, args.seed, n_customers,
                                         app_id=f"{run_id}-{column}", reference=reference, engine=engine,
                                         column=column, budget_s=args.baseline_budget if engine == "naive" else None)
            out[f"tags_c_vs_{column}"] = res[column].get("tags_vs_c")
    finally:
        if not args.keep:
            deleted = await common.delete_topics(args.bootstrap, [run_id])
            keys = cleanup_redis(args.redis_url, prefixes)
            log(f"cleaned up {len(deleted)} topics and {keys:,} Redis keys of {run_id} (--keep to keep them)")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=200_000, help="backlog size, the same for a, b and c")
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--only", default="a,f,b,c",
                   help="which columns to run, e.g. a,c (f: the Faust consume-only floor; d: the Quix Streams app, "
                        "not in the default set: it makes its own environment on first use)")
    p.add_argument("--rates", default="1000,10000", help="(c) fixed input rates for the latency phases")
    p.add_argument("--rate-seconds", type=float, default=10.0, help="(c) length of each latency phase")
    p.add_argument("--load", choices=("records", "paced"), default="records",
                   help="how the latency phases send: made and sent record by record (records, as "
                        "`tagstream produce`), or made before the phase and sent in record batches at a third "
                        "of the CPU (paced, benchmarks/paced_producer.py)")
    p.add_argument("--baseline-budget", type=float, default=300.0,
                   help="(b, d) stop the naive apps after this many seconds of draining and report the events "
                        "they read so far (their per-event cost grows with each customer's history)")
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--workers", type=int, default=1,
                   help="(c) worker processes in one consumer group (e.g. one per core); figures are for the "
                        "group: events/s of all together, CPU summed, peak RSS of the largest")
    p.add_argument("--rules", default=str(REFERENCE_RULES))
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--keep", action="store_true", help="keep the run's topics and Redis keys")
    p.add_argument("--guarantee", choices=("at_least_once", "exactly_once"), default=None,
                   help="(c) TAGSTREAM_PROCESSING_GUARANTEE of the worker (default: the worker's default)")
    p.add_argument("--worker-repo", type=Path, default=None,
                   help="(c) run the worker of another checkout of tagstream (e.g. a git worktree of an older "
                        "commit) with this harness: before/after comparisons on one harness")
    args = p.parse_args(argv)
    args.rules = str(Path(args.rules).resolve())
    if args.guarantee:
        os.environ["TAGSTREAM_PROCESSING_GUARANTEE"] = args.guarantee  # tagstream_env passes it on
    out = asyncio.run(amain(args))
    text = table(out["results"])
    print("\n" + text + "\n", flush=True)
    if out.get("tags_b_vs_c"):
        t = out["tags_b_vs_c"]
        print(f"tags b vs c after the backlog: {t['identical']}/{t['tags']} audiences identical "
              f"({t['members_b']:,} vs {t['members_c']:,} memberships)"
              + (f"; differences: {t['diff']}" if t["diff"] else ""), flush=True)
    for q in ("d", "d2"):
        t = out.get(f"tags_c_vs_{q}")
        if not t:
            continue
        print(f"tags c vs {q} after the backlog: {t['identical']}/{t['tags']} audiences identical "
              f"({t['members_b']:,} vs {t['members_c']:,} memberships)"
              + (f"; differences (only_b: only in c): {t['diff']}" if t["diff"] else ""), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    js = RESULTS / f"throughput-{out['run_id']}.json"
    js.write_text(json.dumps(out, indent=2, default=str))
    png = RESULTS / f"throughput-{out['run_id']}.png"
    try:
        chart(out["results"], png)
    except ImportError:
        print("matplotlib missing: pip install -e '.[bench]' for the chart", file=sys.stderr)
        png = None  # type: ignore[assignment]
    (RESULTS / "throughput-latest.txt").write_text(text + "\n")
    print(f"results: {js}" + (f"\nchart:   {png}" if png else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
