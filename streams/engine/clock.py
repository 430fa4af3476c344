"""The one source of "now" for the engine: wall clock in live mode, a manual clock in tests/replays,
a scaled clock (real time running faster) for benchmarks of long windows."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class WallClock:
    """Live mode: the machine's clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ScaledClock:
    """Real time running ``speed`` times faster from ``origin_ms`` (benchmarks: 30 d in seconds).

    ``now_ms() = origin_ms + (wall_ms - origin_ms) * speed``: it reads ``origin_ms`` at the wall
    instant ``origin_ms`` and then advances ``speed`` clock-ms per wall-ms.
    """

    def __init__(self, speed: float, origin_ms: int) -> None:
        if not speed > 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self.origin_ms = origin_ms

    def now_ms(self) -> int:
        return self.origin_ms + int((time.time_ns() // 1_000_000 - self.origin_ms) * self.speed)


class ManualClock:
    """A clock that moves only when told to; for unit tests and replays."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now_ms = start_ms

    def now_ms(self) -> int:
        return self._now_ms

    def set(self, now_ms: int) -> None:
        self._now_ms = now_ms

    def advance(self, delta_ms: int) -> int:
        self._now_ms += delta_ms
        return self._now_ms
