"""The worker's garbage-collector policy (streams/app/gc_policy.py): TAGSTREAM_ENGINE__GC_YOUNG_THRESHOLD
and TAGSTREAM_ENGINE__GC_FREEZE."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from streams.app import gc_policy
from streams.app.gc_policy import tune_gc
from streams.io.metrics import Metrics
from streams.settings import EngineSettings


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    try:
        yield before
    finally:
        gc_policy.uninstall()
        gc.set_threshold(*before)


def test_sets_the_young_threshold_only(thresholds: tuple[int, int, int]) -> None:
    tune_gc(12_345)
    assert gc.get_threshold() == (12_345, *thresholds[1:])


def test_zero_leaves_python_alone(thresholds: tuple[int, int, int]) -> None:
    tune_gc(0)
    assert gc.get_threshold() == thresholds


def test_defaults() -> None:
    assert EngineSettings().gc_young_threshold == 50_000
    assert EngineSettings().gc_freeze is True


def _in_generation(obj: object, generation: int) -> bool:
    return any(o is obj for o in gc.get_objects(generation=generation))


def _states(n: int) -> list[dict[str, list[int]]]:
    return [{"f": [i, i + 1], "g": [i]} for i in range(n)]


def test_a_full_collection_freezes_what_survived_it(thresholds: tuple[int, int, int]) -> None:
    gc_policy.install(10_000, freeze=True)
    kept = _states(1_000)
    gc.collect()
    frozen = gc.get_freeze_count()
    assert frozen >= 3_000  # the states (dicts and their lists) among them
    assert not _in_generation(kept[0], 2)  # frozen: a full collection no longer walks it
    later = _states(10)
    gc.collect(1)  # a younger collection freezes nothing
    assert gc.get_freeze_count() == frozen
    del later, kept


def test_without_freeze_nothing_is_frozen(thresholds: tuple[int, int, int]) -> None:
    gc_policy.install(10_000, freeze=False)
    kept = _states(1_000)
    gc.collect()
    assert gc.get_freeze_count() == 0
    assert gc_policy.after_recovery() == 0
    del kept


def test_recovery_freezes_the_loaded_state(thresholds: tuple[int, int, int]) -> None:
    gc_policy.install(10_000, freeze=True)
    loaded = _states(1_000)
    assert gc_policy.after_recovery() >= 3_000
    assert not _in_generation(loaded[0], 2) and not _in_generation(loaded[0], 0)
    gc_policy.uninstall()
    assert gc.get_freeze_count() == 0  # unfrozen again
    del loaded


def test_pauses_are_reported(thresholds: tuple[int, int, int]) -> None:
    registry = CollectorRegistry()
    metrics = Metrics.create(registry)
    gc_policy.install(10_000, freeze=True)
    gc_policy.instrument(metrics)
    gc.collect()
    assert (registry.get_sample_value("tagstream_gc_pause_seconds_count", {"generation": "2"}) or 0) >= 1
    assert (registry.get_sample_value("tagstream_gc_pause_seconds_sum", {"generation": "2"}) or 0) > 0
    assert registry.get_sample_value("tagstream_gc_frozen_objects") is None  # not exported: see gc_policy
