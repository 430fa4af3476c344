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
                           "python": ".".join(map(str, sys.version_info[:3])), "engine": "native"}
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


def test_observe_many_equals_observing_one_at_a_time() -> None:
    from prometheus_client import Histogram

    from streams.io.metrics import LATENCY_BUCKETS_S, observe_many

    one, many = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("h", "h", buckets=LATENCY_BUCKETS_S, registry=one)
    hn = Histogram("h", "h", buckets=LATENCY_BUCKETS_S, registry=many)
    for amount, n in ((0.0, 3), (0.001, 2), (0.0011, 5), (0.5, 1), (30.0, 4), (61.0, 7), (1e9, 2), (0.25, 0)):
        for _ in range(n):
            h1.observe(amount)
        observe_many(hn, amount, n)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        return {(s.name, s.labels.get("le", "")): s.value for m in registry.collect() for s in m.samples}

    got, want = samples(many), samples(one)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert abs(got[key] - value) <= 1e-9 * max(1.0, abs(value)), key


def test_a_tally_adds_a_batch_per_label_once_flushed() -> None:
    from streams.io.metrics import Tally

    m = Metrics.create(CollectorRegistry())
    tally = Tally(m.events_in)
    for source in ("pos", "clickstream", "pos"):
        tally.add(source)
    tally.add("orders", 5)
    assert m.events_in.labels("pos")._value.get() == 0  # nothing until the batch ends
    tally.flush()
    tally.flush()  # a second flush adds nothing
    assert {s: m.events_in.labels(s)._value.get() for s in ("pos", "clickstream", "orders")} == {
        "pos": 2, "clickstream": 1, "orders": 5}
