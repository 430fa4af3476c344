"""Reading a worker's Prometheus endpoint: the demo and the benchmarks share these helpers."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]
"""Sample name -> [(labels, value)], as ``scrape`` returns them."""


def scrape(url: str, timeout_s: float = 2.0) -> Samples:
    """Reads a Prometheus text endpoint: sample name -> [(labels, value)]."""
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        text = resp.read().decode()
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def total(samples: Samples, name: str) -> float:
    return sum(v for _, v in samples.get(name, []))


PROGRESS_METRICS = ("tagstream_events_in_total", "tagstream_events_processed_total",
                    "tagstream_events_anonymous_total", "tagstream_events_invalid_total")
"""The series a progress poll needs (events read, and ``done_count``'s): ``/metrics?name[]=…``."""


def progress_url(metrics_url: str) -> str:
    """``metrics_url`` restricted to PROGRESS_METRICS (a cheap scrape, whatever the rule set)."""
    return metrics_url + "?" + "&".join(f"name[]={n}" for n in PROGRESS_METRICS)


def done_count(samples: Samples) -> float:
    """Source events the worker is completely done with: folded into state, or set aside."""
    return sum(total(samples, f"tagstream_events_{what}_total") for what in ("processed", "anonymous", "invalid"))


def histogram_quantile(samples: Samples, name: str, q: float) -> float | None:
    """Quantile of a Prometheus histogram, interpolated inside its bucket (like PromQL)."""
    buckets = sorted(((float(lb["le"]), v) for lb, v in samples.get(f"{name}_bucket", [])), key=lambda x: x[0])
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / max(count - prev_count, 1e-9)
        prev_le, prev_count = le, count
    return None
