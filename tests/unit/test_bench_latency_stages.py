"""The latency phase's per-stage figures (benchmarks/latency.py): one series of a labelled histogram,
its change over the phase."""

from __future__ import annotations

from benchmarks.common import Samples, hist_delta_where
from benchmarks.latency import stage_figures

NAME = "tagstream_batch_output_wait_seconds"


def scrape(redis: tuple[float, float, float], changelog: tuple[float, float, float]) -> Samples:
    """Cumulative buckets le=0.01, 0.1, +Inf per output (counts), and the sums."""
    out: Samples = {f"{NAME}_bucket": [], f"{NAME}_count": [], f"{NAME}_sum": []}
    for output, (a, b, total_) in (("redis", redis), ("changelog", changelog)):
        for le, v in (("0.01", a), ("0.1", b), ("+Inf", total_)):
            out[f"{NAME}_bucket"].append(({"output": output, "le": le}, v))
        out[f"{NAME}_count"].append(({"output": output}, total_))
        out[f"{NAME}_sum"].append(({"output": output}, total_ * (0.005 if output == "redis" else 0.05)))
    return out


def test_one_series_over_the_phase() -> None:
    before = scrape(redis=(10, 10, 10), changelog=(0, 5, 5))
    after = scrape(redis=(110, 110, 110), changelog=(0, 5, 105))  # 100 more each: redis fast, changelog > 0.1 s
    redis = stage_figures(hist_delta_where(after, before, NAME, {"output": "redis"}), NAME)
    changelog = stage_figures(hist_delta_where(after, before, NAME, {"output": "changelog"}), NAME)
    assert redis["count"] == changelog["count"] == 100
    assert redis["p99_s"] is not None and redis["p99_s"] <= 0.01
    assert changelog["p99_s"] == 0.1  # every new observation in the +Inf bucket: its lower bound
    assert abs(redis["mean_s"] - (110 * 0.005 - 10 * 0.005) / 100) < 1e-12


def test_no_observation_in_the_phase() -> None:
    same = scrape(redis=(1, 1, 1), changelog=(1, 1, 1))
    figures = stage_figures(hist_delta_where(same, same, NAME, {"output": "redis"}), NAME)
    assert figures == {"count": 0.0, "mean_s": None, "p99_s": None}
