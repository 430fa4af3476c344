"""The pure engine: tag evaluation, features (aggregations, windows, state), due times, clocks.

No Kafka, Redis, Faust or Prometheus here (tests/unit/test_layers.py holds that line); time
comes in as ``now_ms`` from the caller's clock, so tests and replays drive it directly.
Public API: ``TagEngine``, ``Outcome``, ``CustomerState``, ``DueIndex``, the clocks.
"""

from streams.engine import native  # noqa: F401  first: it chooses the compiled modules (TAGSTREAM_NATIVE)
from streams.engine.clock import Clock, ManualClock, ScaledClock, WallClock
from streams.engine.due import DueIndex
from streams.engine.features.state import CustomerState
from streams.engine.outcome import Outcome
from streams.engine.tag_engine import TagEngine

__all__ = ["Clock", "CustomerState", "DueIndex", "ManualClock", "Outcome", "ScaledClock", "TagEngine", "WallClock"]
