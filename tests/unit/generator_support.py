"""Shared by the synthetic retail event generator tests (tests/unit/test_generator_*.py): the start
instant, and reading an event back (its JSON, its business time in epoch ms)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from streams.tools.generator import GeneratedEvent

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _must_ts_ms(ts: Any) -> int:
    ms = _ts_ms(ts)
    assert ms is not None, ts
    return ms


def _ts_ms(ts: Any) -> int | None:
    """Business time in epoch ms, or None if ``ts`` breaks the contract."""
    if isinstance(ts, int) and not isinstance(ts, bool):
        return ts
    if isinstance(ts, str):
        try:
            dt = datetime.fromisoformat(ts)
        except ValueError:
            return None
        if dt.tzinfo is None:  # RFC 3339 requires an offset
            return None
        return round(dt.timestamp() * 1000)
    return None


def _decode(ev: GeneratedEvent) -> Any:
    return orjson.loads(ev.value)
