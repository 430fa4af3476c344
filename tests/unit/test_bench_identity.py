"""benchmarks/identity.py's summary: best of each side, the pairs' median, CPU per event."""

from __future__ import annotations

import pytest

from benchmarks.identity import overlap_rates, stalled_seconds, summary


def test_summary_gives_best_of_each_the_median_pair_and_the_cpu_ratio() -> None:
    runs = [{"identity": identity, "events_per_s": rate, "cpu_s_per_million": cpu}
            for rate_off, rate_on, cpu_off, cpu_on in [(10_000, 9_000, 60, 70), (12_000, 9_600, 55, 80),
                                                       (8_000, 8_800, 70, 66)]
            for identity, rate, cpu in [(False, rate_off, cpu_off), (True, rate_on, cpu_on)]]
    text = summary({"events": 1000, "link_share": 0.05, "runs": runs})
    assert "on/off: 80.0%" in text  # 9,600 / 12,000
    assert "pairs (on/off, run by run): 90.0%, 80.0%, 110.0%; median 90.0%" in text
    assert "off 60, on 70 (x1.17)" in text


def test_overlap_rates_count_only_the_seconds_both_workers_ran() -> None:
    # off reads from t=10 at 1,000/s and is done (10,000) at t=20; on starts at t=12 at 500/s
    off = [(float(t), max(0.0, min(10_000.0, 1000.0 * (t - 10)))) for t in range(8, 30)]
    on = [(float(t), max(0.0, 500.0 * (t - 12))) for t in range(8, 30)]
    rates = overlap_rates([off, on], 10_000)
    assert rates == [1000.0, 500.0]  # from t=13 (on's first poll with one done) to t=20, not on's alone time
    with pytest.raises(ValueError, match="did not overlap"):
        overlap_rates([[(1.0, 10_000.0)], [(5.0, 1.0), (6.0, 10_000.0)]], 10_000)


def test_summary_of_together_rounds_gives_the_overlapped_ratios() -> None:
    runs = [{"identity": identity, "events_per_s": 1.0, "cpu_s_per_million": 1.0, "overlap_events_per_s": rate}
            for rate_off, rate_on in [(5_000, 4_600), (4_000, 3_800), (6_000, 5_100)]
            for identity, rate in [(False, rate_off), (True, rate_on)]]
    text = summary({"events": 1000, "link_share": 0.05, "runs": runs, "together": True})
    assert "off / on: 5,000 / 4,600, 4,000 / 3,800, 6,000 / 5,100" in text
    assert "on/off: 92.0%, 95.0%, 85.0%; median 92.0% (target >= 90 %)" in text
    assert "best of" not in text  # a whole drain's rate is not comparable in this mode


def test_stalled_seconds_count_polls_without_progress_while_events_are_left() -> None:
    progress = [(0.0, 0.0), (0.5, 0.0), (1.0, 100.0), (1.5, 100.0), (2.0, 100.0), (2.5, 900.0), (3.0, 1_000.0),
                (3.5, 1_000.0)]
    assert stalled_seconds(progress, 1_000) == 1.0  # not before the first event, not after the last
    assert stalled_seconds([(0.0, 5.0), (0.5, 10.0)], 1_000) == 0.0


def test_a_control_run_splits_its_two_identity_off_workers_by_side() -> None:
    runs = [{"identity": False, "second": second, "events_per_s": 1.0, "cpu_s_per_million": 1.0,
             "overlap_events_per_s": rate}
            for rate_a, rate_b in [(5_000, 4_500), (4_000, 4_400)]
            for second, rate in [(False, rate_a), (True, rate_b)]]
    text = summary({"events": 1000, "link_share": 0.05, "runs": runs, "together": True, "control": True})
    assert text.startswith("CONTROL: identity off vs identity off")
    assert "on/off: 90.0%, 110.0%; median 100.0%" in text
