"""The pause of a hot rule deploy with N customers of state (issue 12: "hot deploy pauses
processing for at most a few seconds with 1M customers of state").

    python -m benchmarks.deploy_pause [--customers 1000000] [--rate 1000] [--phase-seconds 30]

1. N real customer states (the reference workload's, as benchmarks/recovery.py builds them) are
   written to a fresh worker's changelog; a worker starts on benchmarks/reference_rules.yaml and
   recovers them (`tagstream_ready` = 1).
2. Live events (the throughput benchmark's generator, event times on the wall clock) go to the
   worker's source topics at ``--rate`` events/s for the rest of the run.
3. After ``--phase-seconds`` ("before"), a changed rule set (three reference tags with a lower
   threshold and one tag added, a new version) is deployed with `tagstream rules deploy --wait`.
4. The run waits until `tagstream_reevaluation_pending` is 0 (every customer held re-evaluated
   under the new rules: "during"), then ``--phase-seconds`` more ("after").

Reported ("pause" = how long live events are held back by the deploy):
* **switch**: how long the worker held the customer stage's batch lock for the swap (from its log
  line "rules switched … in X s"): no event is processed meanwhile;
* **all workers on the new version**: `rules deploy` start → every live worker reports it
  (`rules status`, what `--wait` polls);
* **re-evaluation**: the switch → `tagstream_reevaluation_pending` = 0;
* **event→tag latency** (`tagstream_event_to_tag_latency_seconds`) p50/p99/max-bucket of live
  events before / during / after, and the worst p99 over 5-second windows during.

Results: benchmarks/results/deploy-pause-<run>.json; see benchmarks/RULES.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from streams.io.topics import ensure_topics
from streams.tools.demo import histogram_quantile, total

from . import common
from .audiences import cleanup_redis
from .common import REFERENCE_RULES, RESULTS, Load, free_port, hist_delta, log, machine_info, scrape_all
from .recovery import state_pool, write_changelog

LATENCY = "tagstream_event_to_tag_latency_seconds"
REPO = Path(__file__).resolve().parents[1]


def changed_rules(out_dir: Path, changed: int = 3) -> Path:
    """The reference rule set with the threshold of ``changed`` tags lowered by one, one tag
    added, and a new version (so every customer held is re-evaluated): a typical deploy."""
    spec = yaml.safe_load(REFERENCE_RULES.read_text())
    spec["version"] = f"{spec['version']}-deploy-{uuid.uuid4().hex[:6]}"
    left = changed
    for tag in spec["tags"]:
        m = re.search(r">= (\d+)\b", tag.get("when", ""))
        if left and m and int(m.group(1)) >= 2:
            tag["when"] = tag["when"].replace(m.group(0), f">= {int(m.group(1)) - 1}", 1)
            left -= 1
    spec["tags"].append({"name": "deploy_new_tag", "when": "views_24h >= 2 and carts_24h == 0"})
    path = out_dir / "deploy-rules.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def worker_env(app_id: str, args: argparse.Namespace, port: int, data_dir: Path) -> dict[str, str]:
    return {**os.environ, "TAGSTREAM_APP_ID": app_id, "TAGSTREAM_STORE": args.store,
            "TAGSTREAM_DATA_DIR": str(data_dir), "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": args.bootstrap,
            "TAGSTREAM_KAFKA__PARTITIONS": str(args.partitions), "TAGSTREAM_METRICS__PORT": str(port),
            "TAGSTREAM_API__ENABLED": "false", "TAGSTREAM_REDIS__URL": args.redis_url,
            "TAGSTREAM_KAFKA__CLICKSTREAM_TOPIC": f"{app_id}.clickstream",
            "TAGSTREAM_KAFKA__POS_TOPIC": f"{app_id}.pos", "TAGSTREAM_KAFKA__ORDERS_TOPIC": f"{app_id}.orders",
            "TAGSTREAM_KAFKA__DEADLETTER_TOPIC": f"{app_id}.deadletter",
            "TAGSTREAM_KAFKA__TAG_CHANGES_TOPIC": f"{app_id}.tags", "TAGSTREAM_REDIS__KEY_PREFIX": app_id,
            "TAGSTREAM_RULES_PATH": str(REFERENCE_RULES), "TAGSTREAM_LOGLEVEL": "warn"}


def latency(after: common.Samples, before: common.Samples) -> dict[str, Any]:
    d = hist_delta(after, before, LATENCY)
    out: dict[str, Any] = {f"p{k}_s": histogram_quantile(d, LATENCY, q) for k, q in (("50", 0.5), ("99", 0.99))}
    out["observations"] = total(d, f"{LATENCY}_count")
    return out


def fmt(lat: dict[str, Any]) -> str:
    def ms(v: float | None) -> str:
        return "n/a" if v is None else f"{v * 1000:,.0f} ms"
    return f"p50 {ms(lat['p50_s'])}, p99 {ms(lat['p99_s'])} over {lat['observations']:,.0f} tag changes"


async def wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> float:
    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"worker exited ({proc.returncode}); log: {log_path}")
        s = common.try_scrape(url)
        if s is not None and total(s, "tagstream_ready") == 1:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout_s:
            raise SystemExit(f"worker not ready after {timeout_s:.0f} s; log: {log_path}")
        await asyncio.sleep(0.5)


async def phase(seconds: float, url: str) -> dict[str, Any]:
    before = scrape_all(url)
    await asyncio.sleep(seconds)
    return latency(scrape_all(url), before)


async def reevaluation(url: str, timeout_s: float) -> tuple[float, float | None, list[dict[str, Any]]]:
    """Waits for the switch (pending > 0 or the version changed) and then for pending = 0; returns
    (seconds from now to pending = 0, the worst 5-second-window p99, the windows)."""
    t0 = time.monotonic()
    windows: list[dict[str, Any]] = []
    win_start, win_samples = time.monotonic(), scrape_all(url)
    seen_pending = False
    while True:
        await asyncio.sleep(0.5)
        s = scrape_all(url)
        pending = total(s, "tagstream_reevaluation_pending")
        seen_pending |= pending > 0
        if time.monotonic() - win_start >= 5.0:
            windows.append({"t_s": time.monotonic() - t0, "pending": pending, **latency(s, win_samples)})
            log(f"  re-evaluation: {pending:,.0f} customers pending; last 5 s: {fmt(windows[-1])}")
            win_start, win_samples = time.monotonic(), s
        if seen_pending and pending == 0:
            break
        if time.monotonic() - t0 > timeout_s:
            raise SystemExit(f"re-evaluation not done after {timeout_s:.0f} s ({pending:,.0f} pending)")
    worst = max((w["p99_s"] for w in windows if w["p99_s"] is not None), default=None)
    return time.monotonic() - t0, worst, windows


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as f:
        return subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=f,
                                stderr=subprocess.STDOUT, cwd=REPO)


def deploy(env: dict[str, str], path: Path, wait_s: float) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "streams.cli", "rules", "deploy", str(path), "--wait", str(wait_s)],
                   env=env, cwd=REPO, check=True)
    return time.monotonic() - t0


def switch_seconds(log_path: Path) -> tuple[float | None, int | None]:
    m = re.search(r"rules switched .* in ([0-9.]+) s; (\d+) customers", log_path.read_text(errors="replace"))
    return (float(m.group(1)), int(m.group(2))) if m else (None, None)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    app_id = f"deploy-{uuid.uuid4().hex[:6]}"
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="tagstream-deploy-"))
    env = worker_env(app_id, args, port, data_dir)
    url = f"http://127.0.0.1:{port}/metrics"
    load = Load(app_id, args.bootstrap, args.partitions)
    out: dict[str, Any] = {"run_id": app_id, "machine": machine_info(args.redis_url), "config": vars(args)}
    pool = state_pool(args.pool_events, args.seed)
    log(f"{app_id}: writing {args.customers:,} customer states ({len(pool):,} distinct real states)")
    out["state_bytes_mean"] = await write_changelog(args.bootstrap, f"{app_id}-customers-changelog",
                                                    args.customers, args.partitions, pool)
    await ensure_topics(args.bootstrap, load.topics.values(), args.partitions)
    log_path = data_dir / "worker.log"
    proc = start_worker(env, log_path)
    producer: asyncio.Task[Any] | None = None
    try:
        out["ready_s"] = await wait_ready(url, proc, log_path, 1800)
        held = total(scrape_all(url), "tagstream_customers_in_state")
        log(f"worker ready after {out['ready_s']:.1f} s with {held:,.0f} customers; live events at {args.rate:,.0f}/s")
        producer = asyncio.create_task(common.produce_at_rate(
            load, events=int(args.rate * args.max_seconds), rate=args.rate, customers=args.live_customers,
            seed=args.seed + 1))
        await asyncio.sleep(5)  # the producer and the worker's first live batches settle
        out["before"] = await phase(args.phase_seconds, url)
        log(f"before: {fmt(out['before'])}")
        rules = changed_rules(data_dir)
        before_deploy = scrape_all(url)
        reeval = asyncio.create_task(reevaluation(url, args.max_seconds))
        out["all_workers_new_version_s"] = await asyncio.to_thread(deploy, env, rules, args.max_seconds)
        out["reevaluation_s"], out["worst_5s_p99_during_s"], out["windows"] = await reeval
        out["during"] = latency(scrape_all(url), before_deploy)
        out["switch_lock_s"], out["customers_queued"] = switch_seconds(log_path)
        log(f"during: {fmt(out['during'])}")
        out["after"] = await phase(args.phase_seconds, url)
        log(f"after: {fmt(out['after'])}")
        rule_change = [v for lb, v in scrape_all(url).get("tagstream_tag_changes_total", [])
                       if lb.get("cause") == "rule_change"]
        out["rule_change_tag_changes"] = sum(rule_change)
    finally:
        if producer is not None:
            producer.cancel()
        proc.terminate()
        proc.wait(timeout=60)
        if not args.keep:
            await common.delete_topics(args.bootstrap, [app_id])
            cleanup_redis(args.redis_url, [app_id])
    out["worker_log"] = str(log_path)
    out["slow_metrics_scrapes_s"] = list(common.SCRAPE_SLOW)
    return out


def report(out: dict[str, Any]) -> str:
    def ms(v: float | None) -> str:
        return "n/a" if v is None else f"{v * 1000:,.0f} ms"
    return "\n".join([
        f"customers: {out['config']['customers']:,} ({out['state_bytes_mean']:.0f} B/state), live events at "
        f"{out['config']['rate']:,.0f}/s",
        f"switch (batch lock held): {ms(out['switch_lock_s'])}, {out['customers_queued'] or 0:,} customers queued",
        f"deploy -> every worker on the new version: {out['all_workers_new_version_s']:.1f} s",
        f"re-evaluation of every customer held: {out['reevaluation_s']:.1f} s "
        f"({out['rule_change_tag_changes']:,.0f} rule_change tag changes)",
        f"event->tag latency before: {fmt(out['before'])}",
        f"event->tag latency during: {fmt(out['during'])}; worst 5 s window p99 {ms(out['worst_5s_p99_during_s'])}",
        f"event->tag latency after:  {fmt(out['after'])}",
        f"/metrics scrapes slower than 2 s: {len(out.get('slow_metrics_scrapes_s', []))} "
        f"(longest {max(out.get('slow_metrics_scrapes_s') or [0]):.1f} s)",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--rate", type=float, default=1000.0, help="live events per second")
    p.add_argument("--live-customers", type=int, default=100_000, help="customers of the live events")
    p.add_argument("--phase-seconds", type=float, default=30.0, help="length of the before and after phases")
    p.add_argument("--max-seconds", type=float, default=900.0, help="give up on the re-evaluation after this")
    p.add_argument("--store", default="memory://")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--pool-events", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    out = asyncio.run(amain(args))
    path = RESULTS / f"deploy-pause-{out['run_id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str))
    print(report(out))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
