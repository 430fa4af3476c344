"""ScaledClock: real time running faster (benchmarks of long windows), and how the app picks a clock."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streams.engine.clock import ScaledClock, WallClock
from streams.settings import EngineSettings


def test_scaled_clock_reads_origin_at_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: 5_000 * 1_000_000)
    assert ScaledClock(1000.0, 5_000).now_ms() == 5_000


def test_scaled_clock_runs_speed_times_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    wall = {"ms": 1_000_000}
    monkeypatch.setattr(time, "time_ns", lambda: wall["ms"] * 1_000_000)
    clock = ScaledClock(86_400.0, 1_000_000)  # one wall second = one clock day
    wall["ms"] += 1_000
    assert clock.now_ms() == 1_000_000 + 86_400_000
    wall["ms"] += 30_000
    assert clock.now_ms() == 1_000_000 + 31 * 86_400_000


def test_scaled_clock_fractional_speed_and_before_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: 2_000 * 1_000_000)
    assert ScaledClock(0.5, 1_000).now_ms() == 1_500
    assert ScaledClock(10.0, 3_000).now_ms() == 3_000 - 10_000  # wall before origin: clock behind too


def test_scaled_clock_speed_one_is_wall_clock() -> None:
    a = WallClock().now_ms()
    b = ScaledClock(1.0, 0).now_ms()
    assert 0 <= b - a < 1_000


@pytest.mark.parametrize("speed", [0.0, -1.0])
def test_scaled_clock_rejects_non_positive_speed(speed: float) -> None:
    with pytest.raises(ValueError):
        ScaledClock(speed, 0)


def test_engine_settings_clock_fields() -> None:
    s = EngineSettings()
    assert s.clock_speed == 1.0 and s.clock_origin_ms is None
    assert EngineSettings(clock_speed=3600, clock_origin_ms=1).clock_speed == 3600
    with pytest.raises(ValueError):
        EngineSettings(clock_speed=0)


def test_create_app_uses_a_scaled_clock_when_told(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from streams.app.topology import create_app
    from streams.io.metrics import Metrics
    from streams.settings import Settings

    settings = Settings(app_id="unit-clock", data_dir=tmp_path,
                        engine=EngineSettings(clock_speed=60.0, clock_origin_ms=1_000))
    _, rt = create_app(settings, settings.load_rules(), Metrics.create(CollectorRegistry()))
    assert isinstance(rt.clock, ScaledClock)
    assert rt.clock.speed == 60.0 and rt.clock.origin_ms == 1_000
    _, rt = create_app(Settings(app_id="unit-clock2", data_dir=tmp_path), settings.load_rules(),
                       Metrics.create(CollectorRegistry()))
    assert isinstance(rt.clock, WallClock)
