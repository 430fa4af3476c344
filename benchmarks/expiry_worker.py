"""The worker of an expiry phase as the benchmark sees it from outside: the command-line flag it
runs under, its (wall) clock, a metrics port, its CPU time (/proc) and the metrics it reports."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
WORKER_FLAG = "--as-tagstream-worker"
"""``python -m benchmarks.expiry --as-tagstream-worker``: ``tagstream worker`` (see ``Phase.start_worker``)."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def scrape(port: int) -> dict[str, Any]:
    """The worker's tagstream_* metrics we use (events in, tag changes by cause, expiry lateness histogram)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out: dict[str, Any] = {"events_in": 0.0, "tag_changes": {}, "expiry_lateness_buckets": {}}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "tagstream_events_in_total":
                out["events_in"] += s.value
            elif s.name == "tagstream_tag_changes_total":
                cause = s.labels.get("cause", "?")
                out["tag_changes"][cause] = out["tag_changes"].get(cause, 0.0) + s.value
            elif s.name == "tagstream_expiry_lateness_seconds_bucket":
                out["expiry_lateness_buckets"][s.labels["le"]] = s.value
    return out

