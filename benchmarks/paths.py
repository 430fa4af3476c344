"""Where the benchmarks' files are: the repository, the results directory, the reference rule set."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
REFERENCE_RULES = REPO / "benchmarks" / "reference_rules.yaml"
