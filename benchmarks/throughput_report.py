"""The table and the chart of ``benchmarks.throughput``'s results (columns a, f, b, c, d, d2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import latency


def table(results: dict[str, Any]) -> str:
    cols = [c for c in ("a", "f", "b", "c", "d", "d2") if c in results]
    names = {"a": "(a) raw aiokafka+orjson", "f": "(f) Faust consume floor", "b": "(b) plain Faust baseline",
             "d": "(d) Quix Streams app", "d2": "(d2) Quix + tag engine",
             "c": "(c) tagstream worker" if results.get("c", {}).get("workers", 1) == 1
             else f"(c) tagstream x{results['c']['workers']} workers"}
    rows = [
        ("events/s per process", "events_per_s", "{:,.0f}"),
        ("CPU s per 1M events", "cpu_s_per_million", "{:,.1f}"),
        ("CPU utilisation (cores)", "cpu_utilisation", "{:.2f}"),
        ("peak RSS (VmHWM) MiB", "peak_rss_mib", "{:,.0f}"),
        ("state bytes / customer", "state_bytes_per_customer", "{:,.0f}"),
        ("active customers", "state_customers", "{:,.0f}"),
        ("input customers", "input_customers", "{:,.0f}"),
        ("events measured", "events", "{:,.0f}"),
        ("drain seconds", "seconds", "{:,.1f}"),
    ]
    w0 = 26
    w = 26
    lines = ["".join([f"{'':<{w0}}", *[f"{names[c]:>{w}}" for c in cols]])
             + ("".join(f"{'c/' + o:>8}" for o in ("a", "f", "b", "d", "d2") if o in results and "c" in results))]
    for label, key, fmt in rows:
        cells = []
        for c in cols:
            v = results[c].get(key)
            cells.append(f"{(fmt.format(v) if v is not None else 'n/a'):>{w}}")
        ratios = ""
        if "c" in results:
            for o in ("a", "f", "b", "d", "d2"):
                if o in results:
                    cv, ov = results["c"].get(key), results[o].get(key)
                    ratios += f"{(f'{cv / ov:.3g}' if cv is not None and ov else 'n/a'):>8}"
        lines.append(f"{label:<{w0}}" + "".join(cells) + ratios)
    if results.get("c", {}).get("workers", 1) > 1:
        lines.append(f"(c) is a group of {results['c']['workers']} worker processes: events/s of all together, CPU "
                     f"summed over them, peak RSS of the largest.")
    for c in cols:
        if results[c].get("partial"):
            lines.append(f"{names[c]}: did not drain the backlog within its budget; figures cover the first "
                         f"{results[c]['events']:,} events (its per-event cost still growing when stopped).")
    if "c" in results and results["c"].get("latency"):
        lines.append("")
        lines.append("(c) event->tag latency (Kafka timestamp of the source record -> tag in Redis and on the "
                     "tag topic), from tagstream_event_to_tag_latency_seconds:")
        lines.append(f"{'input rate':>14}{'produced at':>14}{'p50':>12}{'p99':>12}{'p999':>12}{'tag changes':>14}"
                     f"{'kept up':>10}")
        for ph in results["c"]["latency"]:
            lines.append(f"{ph['target_rate']:>14,.0f}{ph['produced_rate']:>14,.0f}{latency.ms(ph['p50_s']):>12}"
                         f"{latency.ms(ph['p99_s']):>12}{latency.ms(ph['p999_s']):>12}{ph['observations']:>14,.0f}"
                         f"{('yes' if ph['kept_up'] else 'NO'):>10}")
        lines.append(f"(c) maximum sustainable rate (backlog drain): {results['c']['events_per_s']:,.0f} events/s")
    for q in ("d", "d2"):
        if not results.get(q, {}).get("latency"):
            continue
        lines.append("")
        lines.append(f"({q}) event->tag latency (Kafka timestamp -> tag change written to Redis by its sink), "
                     "from quix_event_to_tag_latency_seconds:")
        for ph in results[q]["latency"]:
            lines.append(f"{ph['target_rate']:>14,.0f}{ph['produced_rate']:>14,.0f}{latency.ms(ph['p50_s']):>12}"
                         f"{latency.ms(ph['p99_s']):>12}{latency.ms(ph['p999_s']):>12}{ph['observations']:>14,.0f}"
                         f"{('yes' if ph['kept_up'] else 'NO'):>10}")
    return "\n".join(lines)


COLORS = {"a": "#999999", "f": "#c8b88a", "b": "#d08c60", "c": "#4c72b0", "d": "#8172b2", "d2": "#b3a2d6"}


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in ("a", "f", "b", "c", "d", "d2") if c in results]
    labels = {"a": "raw\naiokafka+orjson", "f": "Faust floor\n(consume only)", "b": "plain Faust\nbaseline",
              "c": "tagstream\nworker", "d": "Quix Streams\napp", "d2": "Quix Streams +\ntag engine"}
    lat = results.get("c", {}).get("latency") or []
    fig, axes = plt.subplots(1, 3 if lat else 2, figsize=(15 if lat else 10, 4.8))
    for ax, key, title, ylabel in ((axes[0], "events_per_s", "Backlog drain throughput (events/s, 1 process)",
                                    "events/s (log scale)"),
                                   (axes[1], "cpu_s_per_million", "CPU seconds per million events",
                                    "CPU s (log scale)")):
        vals = [results[c][key] for c in cols]
        bars = ax.bar([labels[c] for c in cols], vals, color=[COLORS[c] for c in cols])
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in vals])
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.set_yscale("log")
    if lat:
        ax = axes[2]
        import numpy as np

        x = np.arange(len(lat))
        width = 0.26
        for i, (q, color) in enumerate((("p50", "#55a868"), ("p99", "#dd8452"), ("p999", "#c44e52"))):
            v = [(ph[f"{q}_s"] or 0) * 1000 for ph in lat]
            b = ax.bar(x + (i - 1) * width, v, width, label=q, color=color)
            ax.bar_label(b, labels=[f"{y:.0f}" if y >= 10 else f"{y:.1f}" for y in v], fontsize=8)
        ax.set_xticks(x, [f"{ph['target_rate']:,.0f}/s" + ("" if ph["kept_up"] else "\n(fell behind)")
                          for ph in lat])
        ax.set_yscale("log")
        ax.set_ylabel("ms")
        ax.set_title("tagstream event->tag latency at fixed input rates")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
