"""Shared by the tests of the alert rules and the dashboard: the metric names the worker really
exports (read from streams/io/metrics.py, not a hand-kept list), and promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from streams.io.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
METRIC_RE = re.compile(r"(?<![A-Za-z0-9_:$\"])(?:tagstream_[a-z_]+|up)(?![A-Za-z0-9_])")

# Being added in parallel (issue 13 item 5: build info and audience sizes). Panels may show them
# before the worker exports them (they stay empty until then); alerts may not use them.
PENDING: frozenset[str] = frozenset()

_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "info": ("_info",), "histogram": ("_bucket", "_sum", "_count"),
             "summary": ("", "_sum", "_count"), "stateset": ("",), "enum": ("",)}


def exported_series() -> frozenset[str]:
    """Every series name a worker's /metrics can show (plus Prometheus' own `up`)."""
    registry = CollectorRegistry()
    Metrics.create(registry)
    names = {"up"}
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return frozenset(names)


def metric_names(expr: str) -> set[str]:
    """The metric names (tagstream_* and up) an expression selects."""
    return set(METRIC_RE.findall(expr))


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found on PATH: Debian's `prometheus` package ships it "
                    "(deploy/local/test.sh installs it).")
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


def check_exprs_parse(exprs: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on the expressions wrapped as recording rules: parses each one."""
    rules = {"groups": [{"name": "exprs", "rules": [{"record": f"check:expr_{i}", "expr": e}
                                                     for i, e in enumerate(exprs)]}]}
    path = tmp_path / "exprs.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return run_promtool("check", "rules", str(path))
