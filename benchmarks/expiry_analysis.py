"""What an expiry phase measured (``PhaseResult``) and how its tag-change records become it: the
lateness of the expiries (publish time - due time, in the worker's clock and wall-equivalent) and
their completeness against the in-process replay of the same events."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import orjson


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of sorted ``values``."""
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, math.ceil(q / 100 * len(values)) - 1))
    return values[k]


def summary(values: list[float]) -> dict[str, Any]:
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {"n": len(v), "min": v[0], "p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99),
            "max": v[-1], "mean": statistics.fmean(v)}


def histogram_quantile(buckets: dict[str, float], q: float) -> str:
    """Upper bound of the bucket holding quantile ``q`` (0..1) of a cumulative Prometheus histogram."""
    items = sorted(((float(le), n) for le, n in buckets.items()), key=lambda x: x[0])
    if not items or items[-1][1] == 0:
        return "n/a"
    target = q * items[-1][1]
    for le, n in items:
        if n >= target:
            return f"<= {le:g} s" if le != float("inf") else f"> {items[-2][0]:g} s"
    return "n/a"


@dataclass
class PhaseResult:
    name: str
    group: str
    speed: float
    rate: float
    duration_s: float
    customers: int
    events_sent: int = 0
    load_wall_s: float = 0.0
    worker_idle_cpu_share: float = 0.0
    worker_cpu_s_load: float = 0.0
    cpu_us_per_event: float = 0.0
    worker_events_in_at_load_end: float = 0.0
    ticks: int = 0
    ticks_during_load: int = 0
    customer_records: int = 0
    tag_changes: dict[str, int] = field(default_factory=dict)
    expiries: int = 0
    expiries_under_load: int = 0
    lateness_clock_ms_under_load: dict[str, Any] = field(default_factory=dict)
    lateness_wall_ms_under_load: dict[str, Any] = field(default_factory=dict)
    lateness_wall_ms_all: dict[str, Any] = field(default_factory=dict)
    lateness_wall_ms_by_tag: dict[str, Any] = field(default_factory=dict)
    worker_histogram_clock_s: dict[str, str] = field(default_factory=dict)
    metrics_end: dict[str, Any] = field(default_factory=dict)
    expiry_check_cut_clock_ms: int = 0
    """Expiries with ``at_ms`` up to this instant (worker clock) are compared."""
    expiries_expected: int = 0
    """Distinct expiry changes the in-process replay of the same events makes (see ``replay_expiries``)."""
    expiries_published: int = 0
    """Distinct expiry changes (by change_id) on the tag topic."""
    expiries_missing: int = 0
    """Expected change_ids not published: must be 0."""
    expiries_extra: int = 0
    """Published but not in the replay: a due time that fell between an event's send and its processing."""
    expiries_missing_by_tag: dict[str, int] = field(default_factory=dict)
    expiries_missing_sample: list[str] = field(default_factory=list)
    complete: bool = True



def analyze(res: PhaseResult, records: list[tuple[int, bytes]], *, speed: float, origin_ms: int,
            cut_clock_ms: int, expected: dict[str, str], t0_wall: int, t1_wall: int) -> list[float]:
    """Fills ``res`` from the tag topic's ``records`` ((Kafka create time ms, value)) of a phase whose
    worker clock ran ``speed`` times from ``origin_ms``, its load during [``t0_wall``, ``t1_wall``];
    returns the wall-equivalent lateness (ms) of the expiries due during the load."""
    published, wall_under = _lateness(res, records, speed=speed, origin_ms=origin_ms, cut_clock_ms=cut_clock_ms,
                                      t0_wall=t0_wall, t1_wall=t1_wall)
    buckets = res.metrics_end.get("expiry_lateness_buckets", {})
    res.worker_histogram_clock_s = {"p50": histogram_quantile(buckets, 0.5),
                                    "p99": histogram_quantile(buckets, 0.99),
                                    "count": f"{buckets.get('+Inf', 0):.0f}"}
    _completeness(res, expected, published, cut_clock_ms)
    return wall_under


def _lateness(res: PhaseResult, records: list[tuple[int, bytes]], *, speed: float, origin_ms: int,
              cut_clock_ms: int, t0_wall: int, t1_wall: int) -> tuple[set[str], list[float]]:
    """Tag changes by cause and the lateness summaries of the expiries into ``res``; returns the
    change_ids of the expiries due up to ``cut_clock_ms`` and the wall-equivalent lateness of those
    due during the load."""
    s, origin = speed, origin_ms
    clock_under: list[float] = []
    wall_under: list[float] = []
    wall_all: list[float] = []
    by_tag: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    published: set[str] = set()
    for create_ms, value in records:
        c = orjson.loads(value)
        if c["customer_id"] == "warmup":
            continue
        counts[c["cause"]] = counts.get(c["cause"], 0) + 1
        if c["cause"] != "expiry":
            continue
        if c["at_ms"] <= cut_clock_ms:
            published.add(c["change_id"])
        due = c["at_ms"]
        publish_clock = origin + (create_ms - origin) * s
        late_clock = publish_clock - due
        late_wall = late_clock / s
        wall_all.append(late_wall)
        by_tag.setdefault(f"{c['tag']} {c['op']}", []).append(late_wall)
        due_wall = origin + (due - origin) / s
        if t0_wall <= due_wall <= t1_wall:
            clock_under.append(late_clock)
            wall_under.append(late_wall)
    res.tag_changes = counts
    res.expiries = len(wall_all)
    res.expiries_under_load = len(wall_under)
    res.lateness_clock_ms_under_load = summary(clock_under)
    res.lateness_wall_ms_under_load = summary(wall_under)
    res.lateness_wall_ms_all = summary(wall_all)
    res.lateness_wall_ms_by_tag = {k: summary(v) for k, v in sorted(by_tag.items())}
    return published, wall_under


def _completeness(res: PhaseResult, expected: dict[str, str], published: set[str], cut_clock_ms: int) -> None:
    """The replay's ``expected`` expiry changes (change_id -> "tag op") vs those ``published``."""
    missing = sorted(set(expected) - published)
    res.expiry_check_cut_clock_ms = cut_clock_ms
    res.expiries_expected = len(expected)
    res.expiries_published = len(published)
    res.expiries_missing = len(missing)
    res.expiries_extra = len(published - set(expected))
    for cid in missing:
        res.expiries_missing_by_tag[expected[cid]] = res.expiries_missing_by_tag.get(expected[cid], 0) + 1
    res.expiries_missing_sample = missing[:20]
    res.complete = not missing and res.expiries_published >= res.expiries_expected
