"""A fixed-rate latency phase after a backlog drain (columns c, d, d2 of ``benchmarks.throughput``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from streams.tools.produce import ProduceStats
from streams.tools.prom import total

from .common import (
    Load,
    Proc,
    ProcGroup,
    Samples,
    hist_delta,
    hist_delta_where,
    log,
    produce_at_rate,
    scrape_all,
    watch_drain,
)
from .paced_producer import produce_paced


async def latency_phase(load: Load, proc: Proc | ProcGroup, url: str | list[str], changelog: str, rate: float,
                        seconds: float, customers: int, seed: int, *, label: str, counter: str,
                        done: Callable[[Samples], float], latency: str,
                        stages: Sequence[tuple[str, str, dict[str, str]]] = ()) -> dict[str, Any]:
    """One fixed-rate phase after the backlog: ``rate`` events/s for ``seconds``; the event->tag
    latency quantiles from the app's histogram ``latency`` (its delta over the phase) and whether
    the app kept up (caught up within 3 s of the producer's end). ``stages``: (label, histogram,
    labels) of the app's per-batch histograms whose count, mean and p99 over the phase are reported
    too (where the latency's tail is spent)."""
    from streams.tools.demo import histogram_quantile

    n = int(rate * seconds)
    log(f"{label} latency at {rate:,.0f} events/s: producing {n:,} events over ~{seconds:.0f}s")
    before = scrape_all(url)
    base, base_done = total(before, counter), done(before)
    prod = asyncio.create_task(_produce(load, n, rate, customers, seed))
    d = await watch_drain(proc, metrics_url=url, counter=counter, changelog=changelog, bootstrap=load.bootstrap,
                          events=n, done=done, base_seen=base, base_done=base_done, label=f"{label} @{rate:,.0f}/s",
                          timeout_s=max(600, seconds * 30))
    stats, sent_until = await prod
    after = scrape_all(url)
    delta = hist_delta(after, before, latency)
    q = {f"p{k}": histogram_quantile(delta, latency, v) for k, v in (("50", 0.5), ("99", 0.99), ("999", 0.999))}
    caught_up_s = max(0.0, d.t_last - sent_until)
    out: dict[str, Any] = {
        "target_rate": rate,
        "produced": stats.sent,
        "produced_rate": stats.rate,
        "load_producer": load.producer,
        "observations": total(delta, f"{latency}_count"),
        **{f"{k}_s": v for k, v in q.items()},
        "caught_up_s_after_producer": caught_up_s,
        "cpu_utilisation": d.cpu_utilisation,
        "kept_up": caught_up_s < 3.0,
    }
    if stages:
        out["stages"] = {stage: stage_figures(hist_delta_where(after, before, name, where), name)
                         for stage, name, where in stages}
        log(f"{label} at {rate:,.0f}/s: " + ", ".join(
            f"{k} mean {ms(v['mean_s'])} p99 {ms(v['p99_s'])} ({v['count']:,.0f})" for k, v in out["stages"].items()))
    log(f"{label} latency at {rate:,.0f}/s (produced at {stats.rate:,.0f}/s): p50 {ms(q['p50'])}, "
        f"p99 {ms(q['p99'])}, p999 {ms(q['p999'])} over {out['observations']:,.0f} tag changes; caught up "
        f"{caught_up_s:.1f}s after the producer finished")
    return out


async def _produce(load: Load, events: int, rate: float, customers: int, seed: int) -> tuple[ProduceStats, float]:
    """The phase's events at ``rate`` (``load.producer``); what the broker acknowledged and when the
    last was sent (wall clock)."""
    if load.producer == "records":
        stats = await produce_at_rate(load, events=events, rate=rate, customers=customers, seed=seed)
        return stats, time.time()
    return await produce_paced(load.bootstrap, load.topics, events=events, rate=rate, customers=customers, seed=seed)


def stage_figures(delta: Samples, name: str) -> dict[str, Any]:
    """Count, mean and p99 of one histogram's delta."""
    from streams.tools.demo import histogram_quantile

    n = total(delta, f"{name}_count")
    return {"count": n, "mean_s": total(delta, f"{name}_sum") / n if n else None,
            "p99_s": histogram_quantile(delta, name, 0.99)}


def stage_totals(s: Samples, stages: Sequence[tuple[str, str, dict[str, str]]], seconds: float) -> dict[str, Any]:
    """Where a drain's wall time went in the customer stage: each per-batch histogram's count, mean
    and total since the worker started (``s``: a scrape after the drain), and that total as a share
    of the drain's ``seconds``. Logged in one line."""
    out = {}
    for stage, name, where in stages:
        fig = stage_figures(hist_delta_where(s, {}, name, where), name)
        fig["total_s"] = (fig["mean_s"] or 0.0) * fig["count"]
        fig["share_of_drain"] = fig["total_s"] / seconds if seconds else None
        out[stage] = fig
    log("(c) drain: " + ", ".join(f"{k} {v['count']:,.0f} x {ms(v['mean_s'])} = {v['total_s']:.2f} s "
                                  f"({100 * (v['share_of_drain'] or 0):.0f} %)" for k, v in out.items() if v["count"]))
    return out


def ms(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v >= 60:
        return ">60 s"  # the histogram's last finite bucket
    return f"{v * 1000:.1f} ms"
