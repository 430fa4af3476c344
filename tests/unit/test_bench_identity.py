"""benchmarks/identity.py's summary: best of each side, the pairs' median, CPU per event."""

from __future__ import annotations

from benchmarks.identity import summary


def test_summary_gives_best_of_each_the_median_pair_and_the_cpu_ratio() -> None:
    runs = [{"identity": identity, "events_per_s": rate, "cpu_s_per_million": cpu}
            for rate_off, rate_on, cpu_off, cpu_on in [(10_000, 9_000, 60, 70), (12_000, 9_600, 55, 80),
                                                       (8_000, 8_800, 70, 66)]
            for identity, rate, cpu in [(False, rate_off, cpu_off), (True, rate_on, cpu_on)]]
    text = summary({"events": 1000, "link_share": 0.05, "runs": runs})
    assert "on/off: 80.0%" in text  # 9,600 / 12,000
    assert "pairs (on/off, run by run): 90.0%, 80.0%, 110.0%; median 90.0%" in text
    assert "off 60, on 70 (x1.17)" in text
