"""The worker's garbage collector threshold (TAGSTREAM_ENGINE__GC_YOUNG_THRESHOLD)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.app.worker import tune_gc
from streams.settings import EngineSettings


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    try:
        yield before
    finally:
        gc.set_threshold(*before)


def test_sets_the_young_threshold_only(thresholds: tuple[int, int, int]) -> None:
    tune_gc(12_345)
    assert gc.get_threshold() == (12_345, *thresholds[1:])


def test_zero_leaves_python_alone(thresholds: tuple[int, int, int]) -> None:
    tune_gc(0)
    assert gc.get_threshold() == thresholds


def test_default_is_above_pythons() -> None:
    assert EngineSettings().gc_young_threshold == 10_000
