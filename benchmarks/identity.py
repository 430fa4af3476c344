"""Identity resolution's cost (issue 11): the reference workload drained by one worker with identity
resolution off and on, on the same backlog, alternating runs.

    python -m benchmarks.identity [--events 200000] [--customers 100000] [--link-share 0.05] [--rounds 2]
                                  [--drop-anonymous] [--together [--pin]] [--control] [--py-spy [--native]]

The backlog is the reference generator's (as benchmarks/throughput.py), with the ``anonymous_id`` of
logged-in clicks kept on a share of them only, so that about ``--link-share`` of all events carry two
ids (a link: a login, an order with a contact hash; the generator sends the device id on every
logged-in click, 61 % of events). Off: the worker drops anonymous events and ignores the device id, as
before identity resolution. On: typed keys, anonymous visitors kept, links through the identity
stage, merges. ``--control`` runs two identity-off workers instead (a null experiment: how far the
method alone spreads the ratio). ``--py-spy`` records a speedscope profile of each worker (results folder of the run).
Needs the local stack (``bash deploy/local/stack.sh up kafka redis``); run it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import statistics
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from schemas.decode import decode_event
from schemas.identity import event_ids
from streams.io.topics import ensure_topics
from streams.tools.generator import RetailGenerator
from streams.tools.prom import done_count, total

from . import common
from .common import REFERENCE_RULES, RESULTS, Load, Proc, free_port, log, tagstream_env, watch_drain
from .profile_worker import start_py_spy


def backlog(events: int, customers: int, seed: int, link_share: float,
            drop_anonymous: bool = False) -> tuple[list[tuple[str, bytes]], float]:
    """The reference events with device ids thinned out; returns them and the share that are links.
    ``drop_anonymous``: without the events that carry no customer id (anonymous browsing, walk-in
    tickets), which identity off drops and identity on keeps: the cost of the identity mechanics alone."""
    gen = RetailGenerator(seed=seed, customers=customers, start_ms=int(time.time() * 1000) - events, step_ms=1.0)
    rng = random.Random(seed)
    raw = [(e.source, e.value) for e in gen.take(events) if not (drop_anonymous and e.valid and e.key is None)]
    both = sum(1 for s, v in raw if s == "clickstream" and b'"user_id":"' in v and b'"anonymous_id"' in v)
    keep = max(0.0, min(1.0, link_share * len(raw) / both)) if both else 0.0
    out: list[tuple[str, bytes]] = []
    links = 0
    for source, value in raw:
        if source == "clickstream" and b'"user_id":"' in value and b'"anonymous_id"' in value and rng.random() > keep:
            obj = orjson.loads(value)
            obj.pop("anonymous_id", None)
            value = orjson.dumps(obj)
        out.append((source, value))
        with contextlib.suppress(Exception):  # a deliberately broken event: no link
            links += len(event_ids(decode_event(source, value))) >= 2
    return out, links / len(out)


async def produce(load: Load, records: list[tuple[str, bytes]]) -> None:
    await ensure_topics(load.bootstrap, [*load.topics.values(), load.topic("identity")], load.partitions)
    producer = AIOKafkaProducer(bootstrap_servers=load.bootstrap, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        for i in range(0, len(records), 5000):
            acks = [await producer.send(load.topic(s), v) for s, v in records[i:i + 5000]]
            await asyncio.gather(*acks)
    finally:
        await producer.stop()


async def drain(load: Load, events: int, column: str, identity: bool, logs: Path, redis_url: str,
                py_spy: bool = False, native: bool = False, cpu: int | None = None) -> dict[str, Any]:
    """One worker drains the backlog; ``cpu``: the worker runs on that core only (``taskset``)."""
    app_id = f"{load.run_id}-{column}"
    port = free_port()
    env = tagstream_env(load, app_id, port, logs / f"data-{app_id}", REFERENCE_RULES, redis_url)
    env["TAGSTREAM_KAFKA__IDENTITY_TOPIC"] = load.topic("identity")
    env["TAGSTREAM_IDENTITY__ENABLED"] = "true" if identity else "false"
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    proc = Proc(app_id, [*pin, sys.executable, "-m", "streams.cli", "worker"], env, logs / f"{app_id}.log",
                cwd=common.REPO).start()
    url = f"http://127.0.0.1:{port}/metrics"
    spy = (start_py_spy(proc.pid, logs / f"{app_id}.speedscope.json", logs / f"{app_id}.py-spy.log", native)
           if py_spy else None)
    try:
        d = await watch_drain(proc, metrics_url=url, counter="tagstream_events_in_total",
                              changelog=f"{app_id}-customers-changelog", bootstrap=load.bootstrap, events=events,
                              done=done_count, label=f"identity {'on' if identity else 'off'}", progress_only=True)
        s = common.scrape_all(url)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
            spy.wait(timeout=60)
        proc.stop()
    merges = sum(v for lb, v in s.get("tagstream_identity_merges_total", []) if lb.get("result") == "applied")
    t0 = d.t_first - d.startup_s  # the trace's times are from the watch's start
    progress = [(t0 + t, done) for t, _, done, _ in d.trace]
    return {"column": column, "identity": identity, "events_per_s": d.events_per_s,
            "cpu_s_per_million": d.cpu_s_per_million, "seconds": d.seconds, "partial": d.partial,
            "tag_changes": total(s, "tagstream_tag_changes_total"), "merges": merges,
            "links": {lb.get("result"): v for lb, v in s.get("tagstream_identity_links_total", [])},
            "forwarded": total(s, "tagstream_identity_forwarded_total"),
            "progress": progress, "stalled_s": stalled_seconds(progress, events),
            "customer_batches": total(s, "tagstream_batch_evaluation_seconds_count"),
            "gc_pause_s": {lb.get("generation"): v for lb, v in s.get("tagstream_gc_pause_seconds_sum", [])},
            "gc_collections": {lb.get("generation"): v for lb, v in s.get("tagstream_gc_pause_seconds_count", [])}}


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    run_id = f"bid{int(time.time()) % 10**6}"
    load = Load(run_id, args.bootstrap, args.partitions)
    logs = RESULTS / f"identity-{run_id}"
    logs.mkdir(parents=True, exist_ok=True)
    records, share = backlog(args.events, args.customers, args.seed, args.link_share, args.drop_anonymous)
    log(f"backlog: {len(records):,} events, {share:.1%} carry a link; producing to {run_id}.*")
    await produce(load, records)
    runs = []
    sides = ((False, "offA"), (False, "offB")) if args.control else ((False, "off"), (True, "on"))
    for r in range(args.rounds):
        if args.together:
            # --pin: each worker on a core of its own, swapped every round (Kafka and Redis run anywhere)
            cpus = [(side + r) % 2 if args.pin else None for side in range(2)]
            pair = await asyncio.gather(*(drain(load, len(records), f"{name}{r + 1}", identity,
                                                logs, args.redis_url, args.py_spy, args.native, cpu)
                                          for (identity, name), cpu in zip(sides, cpus, strict=True)))
            rates = overlap_rates([res["progress"] for res in pair], len(records))
            for second, (res, rate) in enumerate(zip(pair, rates, strict=True)):
                res["overlap_events_per_s"], res["second"] = rate, bool(second)
            log(f"together round {r + 1}: {sides[0][1]} {rates[0]:,.0f}, {sides[1][1]} {rates[1]:,.0f} events/s "
                f"while both ran ({rates[1] / rates[0]:.1%}); CPU-s per million {pair[0]['cpu_s_per_million']:,.0f}, "
                f"{pair[1]['cpu_s_per_million']:,.0f}; stalled {pair[0]['stalled_s']:.1f} s, "
                f"{pair[1]['stalled_s']:.1f} s")
            runs += pair
            continue
        for second, (identity, name) in enumerate(sides):
            res = await drain(load, len(records), f"{name}{r + 1}", identity, logs,
                              args.redis_url, args.py_spy, args.native)
            res["second"] = bool(second)
            log(f"{name:4} round {r + 1}: {res['events_per_s']:,.0f} events/s, "
                f"{res['cpu_s_per_million']:,.0f} CPU-s per million, merges {res['merges']:,.0f}, customer batches "
                f"{res['customer_batches']:,.0f}, stalled {res['stalled_s']:.1f} s, garbage "
                f"collector pauses {sum(res['gc_pause_s'].values()):.2f} s (generation 2: "
                f"{res['gc_pause_s'].get('2', 0.0):.2f} s)")
            runs.append(res)
    if not args.keep:
        await common.delete_topics(args.bootstrap, [run_id])
    return {"run_id": run_id, "events": len(records), "link_share": share, "runs": runs,
            "drop_anonymous": args.drop_anonymous, "together": args.together, "control": args.control,
            "pin": args.pin,
            "machine": common.machine_info(args.redis_url)}


def overlap_rates(progress: list[list[tuple[float, float]]], events: int) -> list[float]:
    """Each worker's events done per second over the seconds they ran together (``--together``):
    from the later one's first event to the first one's last, so both rates come from the same
    seconds of the same machine. ``progress``: (time, events done) per poll, one list per worker."""
    start = max(next((t for t, done in p if done > 0), p[-1][0]) for p in progress)
    end = min(next((t for t, done in p if done >= events), p[-1][0]) for p in progress)
    if end <= start:
        raise ValueError("the two drains did not overlap")
    return [(_done_at(p, end) - _done_at(p, start)) / (end - start) for p in progress]


def stalled_seconds(progress: list[tuple[float, float]], events: int) -> float:
    """Seconds between two polls (every ~0.5 s) in which no event was done although some were left,
    from the first event done on: the worker starved (a fetch waiting behind a long poll of idle
    partitions did that for 0.5-1.5 s per drain: docs/operations.md, ``FETCH_MAX_WAIT_MS``)."""
    return sum(t1 - t0 for (t0, d0), (t1, d1) in pairwise(progress)
               if d1 == d0 and 0 < d0 < events)


def _done_at(progress: list[tuple[float, float]], t: float) -> float:
    """Events done at time ``t``, linear between two polls."""
    before = (progress[0][0], 0.0)
    for point in progress:
        if point[0] >= t:
            (t0, d0), (t1, d1) = before, point
            return d1 if t1 <= t0 else d0 + (d1 - d0) * (t - t0) / (t1 - t0)
        before = point
    return progress[-1][1]


def summary(out: dict[str, Any]) -> str:
    """Best of each side, the median of the alternating pairs' ratios (robust to one run of either side
    landing in a slow stretch of the machine) and CPU seconds per million events (medians)."""
    off = [r for r in out["runs"] if not r.get("second", r["identity"])]
    on = [r for r in out["runs"] if r.get("second", r["identity"])]
    best_off = max(r["events_per_s"] for r in off)
    best_on = max(r["events_per_s"] for r in on)
    pairs = [b["events_per_s"] / a["events_per_s"] for a, b in zip(off, on, strict=False)]
    cpu_off = statistics.median(r["cpu_s_per_million"] for r in off)
    cpu_on = statistics.median(r["cpu_s_per_million"] for r in on)

    def rates(runs: list[dict[str, Any]]) -> str:
        return ", ".join(f"{r['events_per_s']:,.0f}" for r in runs)

    head = (f"{'CONTROL: identity off vs identity off' if out.get('control') else 'identity off vs on'}, "
            f"{out['events']:,} events ({out['link_share']:.1%} links"
            f"{', no anonymous events' if out.get('drop_anonymous') else ''})")
    cpu = f"  CPU-s per million events (medians): off {cpu_off:,.0f}, on {cpu_on:,.0f} (x{cpu_on / cpu_off:.2f})"
    if out.get("together"):  # a whole drain's rate mixes seconds shared with the other worker and alone
        both = [b["overlap_events_per_s"] / a["overlap_events_per_s"] for a, b in zip(off, on, strict=False)]
        rates_both = ", ".join(f"{a['overlap_events_per_s']:,.0f} / {b['overlap_events_per_s']:,.0f}"
                               for a, b in zip(off, on, strict=False))
        return "\n".join([
            f"{head}, both workers at once, {len(off)} rounds:",
            f"  events/s over the seconds both ran, off / on: {rates_both}",
            f"  on/off: {', '.join(f'{x:.1%}' for x in both)}; median {statistics.median(both):.1%} (target >= 90 %)",
            cpu])
    lines = [f"{head}, best of {len(off)} runs each:",
             f"  off: {best_off:,.0f} events/s   ({rates(off)})",
             f"  on:  {best_on:,.0f} events/s   ({rates(on)})",
             f"  on/off: {best_on / best_off:.1%} (target >= 90 %)",
             f"  pairs (on/off, run by run): {', '.join(f'{x:.1%}' for x in pairs)}; "
             f"median {statistics.median(pairs):.1%}",
             cpu]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--link-share", type=float, default=0.05)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--drop-anonymous", action="store_true",
                   help="leave out events with no customer id (identity off drops them, on keeps them)")
    p.add_argument("--together", action="store_true",
                   help="each round runs the off and the on worker at the same time (each its own consumer group) "
                        "and compares their rates over the seconds both ran: the machine's slow and fast "
                        "stretches fall on both")
    p.add_argument("--pin", action="store_true",
                   help="with --together: each worker pinned to a core of its own (taskset), the cores swapped "
                        "every round")
    p.add_argument("--control", action="store_true",
                   help="a null experiment: both workers with identity off (\"on\" reads as the second of them); "
                        "the ratios' spread is the method's own")
    p.add_argument("--py-spy", action="store_true",
                   help="record a py-spy profile of each worker (speedscope files in the run's results folder)")
    p.add_argument("--native", action="store_true", help="with --py-spy: sample the C frames too")
    args = p.parse_args(argv)
    out = asyncio.run(amain(args))
    text = summary(out)
    print("\n" + text, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"identity-{out['run_id']}.json").write_text(json.dumps(out, indent=2, default=str))
    (RESULTS / "identity-latest.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
