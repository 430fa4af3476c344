"""The metrics bundle: build info, series that exist before the first event, no ``_created``."""

from __future__ import annotations

import sys

from prometheus_client import CollectorRegistry, generate_latest

from schemas import REASONS, SOURCES
from streams.io.metrics import Metrics
from streams.version import package_version


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_build_info_names_every_version() -> None:
    registry = CollectorRegistry()
    Metrics.create(registry).set_build_info("rules-abc")
    info = next(s for m in registry.collect() for s in m.samples if s.name == "tagstream_build_info")
    assert info.value == 1
    assert info.labels == {"version": package_version("tagstream"), "rules_version": "rules-abc",
                           "faust": package_version("faust-streaming"),
                           "python": ".".join(map(str, sys.version_info[:3]))}
    assert info.labels["version"] != "unknown" and info.labels["faust"] != "unknown"


def test_precreated_series_are_zero_before_the_first_event() -> None:
    registry = CollectorRegistry()
    Metrics.create(registry).precreate(tags=["high_value", "churn_risk"])
    samples = [s for m in registry.collect() for s in m.samples]

    def series(name: str) -> set[tuple[str, ...]]:
        return {tuple(s.labels.values()) for s in samples if s.name == name and s.value == 0}

    assert series("tagstream_events_in_total") == {(s,) for s in SOURCES}
    assert series("tagstream_events_processed_total") == {(s,) for s in SOURCES}
    assert {(s, r) for s in SOURCES for r in REASONS} < series("tagstream_events_invalid_total")
    assert ("customers", "internal_error") in series("tagstream_deadletter_total")
    assert series("tagstream_tag_changes_total") == {
        (t, op, cause) for t in ("high_value", "churn_risk") for op in ("add", "remove")
        for cause in ("event", "expiry", "rule_change", "merge", "erasure")}
    assert series("tagstream_producer_buffer_full_total") == {()}


def test_no_created_series() -> None:
    registry = CollectorRegistry()
    m = Metrics.create(registry)
    m.precreate(tags=["t"])
    m.events_in.labels("pos").inc()
    m.batch_evaluation.observe(0.01)
    text = exposition(registry)
    assert "tagstream_events_in_total" in text and "tagstream_batch_evaluation_seconds_bucket" in text
    assert "_created" not in text
