"""The rule groups of the expiry benchmark (``benchmarks/expiry_rules.yaml``, one per window W) and
the windows they measure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

RULES = Path(__file__).with_name("expiry_rules.yaml")

WINDOWS_MS: dict[str, int] = {
    "10s": 10_000,
    "1h": 3_600_000,
    "24h": 86_400_000,
    "7d": 7 * 86_400_000,
    "30d": 30 * 86_400_000,
}
STEPS_PER_WINDOW = 60  # streams.engine.features.windows.DEFAULT_STEPS_PER_WINDOW: resolution = W / 60


def group_rules(group: str) -> dict[str, Any]:
    """The features and tags of one group (names ending in ``_<group>``) of expiry_rules.yaml."""
    doc = yaml.safe_load(RULES.read_text())
    suffix = f"_{group}"
    doc["features"] = [f for f in doc["features"] if f["name"].endswith(suffix)]
    doc["tags"] = [t for t in doc["tags"] if t["name"].endswith(suffix)]
    doc["version"] = f"{doc['version']}-{group}"
    return doc
