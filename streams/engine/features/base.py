"""What the engine asks of a feature at run time (``Runtime``): the base class of ``FeatureRuntime``
(runtime.py) and of the sequence and absence runtimes (sequences.py).

A compiled base class rather than a ``Protocol``: through a protocol each call the engine makes
(``fold``, ``value``, ``next_change_ms`` ... several per fed feature and event) and each attribute
it reads (``key``, ``window_ms``) is a generic Python look-up and call; through a native base class
they are direct calls and field reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tag_rules import FeatureDef


class Runtime:
    """A feature's run-time object (``runtime.runtime_for``). Subclasses set every attribute below."""

    defn: FeatureDef
    name: str
    key: str
    sources: frozenset[str]
    window_ms: int | None
    """None: nothing leaves with time by window (``prune`` is not needed)."""
    takes_thresholds: bool
    filter_key: str | None
    filter_names: frozenset[str]
    """The event fields its filter reads besides the source (empty: none; streams/engine/fold_plan.py)."""

    def matches(self, event: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def fold(self, data: Any, event: Mapping[str, Any], now_ms: int) -> tuple[Any, bool]:
        raise NotImplementedError

    def value(self, data: Any, now_ms: int) -> Any:
        raise NotImplementedError

    def prune(self, data: Any, now_ms: int) -> Any:
        raise NotImplementedError

    def next_change_ms(self, data: Any, now_ms: int) -> float:
        raise NotImplementedError

    def merge(self, a: Any, b: Any, now_ms: int) -> Any:
        raise NotImplementedError
