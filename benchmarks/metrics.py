"""Scraping workers' /metrics: one scrape of several workers merged, slow scrapes recorded, and the
histogram samples accumulated between two scrapes."""

from __future__ import annotations

import time
import urllib.error

from streams.tools.prom import scrape, total

Samples = dict[str, list[tuple[dict[str, str], float]]]


def merge_samples(parts: list[Samples]) -> Samples:
    """Scrapes of several workers as one: values of equal name and labels summed."""
    acc: dict[str, dict[tuple[tuple[str, str], ...], tuple[dict[str, str], float]]] = {}
    for part in parts:
        for name, samples in part.items():
            d = acc.setdefault(name, {})
            for labels, v in samples:
                k = tuple(sorted(labels.items()))
                d[k] = (labels, d[k][1] + v if k in d else v)
    return {name: list(d.values()) for name, d in acc.items()}


SCRAPE_SLOW: list[float] = []
"""Scrapes of a worker's /metrics that took over 2 s in this run (seconds each): reported, not hidden."""


def scrape_all(urls: str | list[str], timeout_s: float = 30.0) -> Samples:
    """One scrape of every worker's /metrics, merged; raises if one is not answering within
    ``timeout_s`` (a worker busy with a million customers can answer slowly: ``SCRAPE_SLOW``)."""
    out = []
    for u in [urls] if isinstance(urls, str) else urls:
        started = time.monotonic()
        out.append(scrape(u, timeout_s))
        if (took := time.monotonic() - started) > 2.0:
            SCRAPE_SLOW.append(round(took, 1))
    return merge_samples(out)


def try_scrape(url: str | list[str]) -> Samples | None:
    try:
        return scrape_all(url)
    except (OSError, urllib.error.URLError):
        return None


def hist_delta_where(after: Samples, before: Samples, name: str, where: dict[str, str]) -> Samples:
    """``hist_delta`` of the one series of a labelled histogram whose labels include ``where``."""
    def pick(s: Samples) -> Samples:
        return {k: [(lb, v) for lb, v in s.get(k, []) if all(lb.get(a) == b for a, b in where.items())]
                for k in (f"{name}_bucket", f"{name}_count", f"{name}_sum")}
    return hist_delta(pick(after), pick(before), name)


def hist_delta(after: Samples, before: Samples, name: str) -> Samples:
    """The samples of histogram ``name`` accumulated between two scrapes."""
    prev = {lb.get("le"): v for lb, v in before.get(f"{name}_bucket", [])}
    out: Samples = {f"{name}_bucket": [(lb, v - prev.get(lb.get("le"), 0.0)) for lb, v in
                                       after.get(f"{name}_bucket", [])]}
    for suffix in ("_count", "_sum"):
        out[name + suffix] = [({}, total(after, name + suffix) - total(before, name + suffix))]
    return out
