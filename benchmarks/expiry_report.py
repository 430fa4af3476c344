"""The expiry benchmark's report on stdout: lateness per phase, the worker's CPU per event (timer
cost), the engine micro-benchmark and completeness."""

from __future__ import annotations

from typing import Any

from .expiry_analysis import PhaseResult
from .expiry_groups import WINDOWS_MS


def fmt_ms(v: Any) -> str:
    return "-" if not isinstance(v, int | float) or v != v else f"{v:,.1f}"


def print_report(results: list[PhaseResult], overall: dict[str, Any], micro: dict[str, Any],
                 baseline: dict[str, float]) -> None:
    print("\nExpiry lateness = publish time - due time, cause=expiry, due during the load "
          "(wall-equivalent ms = clock ms / speed; target p99 <= 1000 ms)")
    hdr = (f"{'phase':<10}{'speed':>10}{'expiries':>10}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"
           f"{'  clock p99':>16}{'  all p99':>10}{'  worker hist p99 (clock)':>26}")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        if r.group not in WINDOWS_MS or r.name.endswith("@1x-nodue"):
            continue
        w = r.lateness_wall_ms_under_load
        c = r.lateness_clock_ms_under_load
        clock_p99 = c.get("p99", float("nan"))
        clock_txt = f"{clock_p99 / 1000:,.1f} s" if clock_p99 == clock_p99 else "-"
        print(f"{r.name:<10}{r.speed:>10,.0f}{r.expiries_under_load:>10,}{fmt_ms(w.get('p50')):>9}"
              f"{fmt_ms(w.get('p90')):>9}{fmt_ms(w.get('p99')):>9}{fmt_ms(w.get('max')):>9}{clock_txt:>16}"
              f"{fmt_ms(r.lateness_wall_ms_all.get('p99')):>10}{r.worker_histogram_clock_s.get('p99', ''):>26}")
    o = overall
    if o.get("n"):
        print(f"{'overall':<10}{'':>10}{o['n']:>10,}{fmt_ms(o['p50']):>9}{fmt_ms(o['p90']):>9}{fmt_ms(o['p99']):>9}"
              f"{fmt_ms(o['max']):>9}")
    print("\nWorker CPU per event under the same load (timer cost)")
    print(f"{'phase':<16}{'events':>9}{'ticks':>9}{'expiries':>10}{'ticks/ev':>9}{'cpu s':>8}{'us/event':>10}"
          f"{'share vs lifetime':>19}{'share vs no-due':>17}{'us/tick':>9}")
    for r in results:
        sl = 1 - baseline["lifetime"] / r.cpu_us_per_event if baseline.get("lifetime") else float("nan")
        sn = 1 - baseline["nodue"] / r.cpu_us_per_event if baseline.get("nodue") else float("nan")
        per_tick = ((r.cpu_us_per_event - baseline["nodue"]) * r.events_sent / r.ticks_during_load
                    if r.ticks_during_load and baseline.get("nodue") else float("nan"))
        tpe = r.ticks_during_load / r.events_sent if r.events_sent else 0.0
        print(f"{r.name:<16}{r.events_sent:>9,}{r.ticks_during_load:>9,}{r.expiries:>10,}{tpe:>9.2f}{r.worker_cpu_s_load:>8.1f}"
              f"{r.cpu_us_per_event:>10.0f}{sl:>18.1%} {sn:>16.1%} {fmt_ms(per_tick):>8}")
    print("\nEngine micro-benchmark (pure Python, no Kafka): "
          + ", ".join(f"{k} {v:.1f}" for k, v in micro.items()))
    print("\nCompleteness: expiry changes the in-process replay of the same events makes vs those on the tag "
          "topic (by change_id)")
    print(f"{'phase':<16}{'expected':>10}{'published':>11}{'missing':>9}{'extra':>7}  verdict")
    for r in results:
        verdict = "complete" if r.complete else f"INCOMPLETE {r.expiries_missing_by_tag}"
        print(f"{r.name:<16}{r.expiries_expected:>10,}{r.expiries_published:>11,}{r.expiries_missing:>9,}"
              f"{r.expiries_extra:>7,}  {verdict}")
