"""What the in-process harness (``benchmarks.rules_inprocess``) measures with: time per phase
(``Phases``), CPU time in the garbage collector (``GcTime``), the tag changes of a customer's first
event apart from later ones (``FirstEvents``), and a delegate whose methods can be wrapped
(``Replaceable``)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from streams.engine.features.state import CustomerState


class Phases:
    """Time per phase: wraps a bound method so each call adds its duration to ``spent[name]``
    (``perf_counter``: a cheap clock; nothing in the harness waits, so it is CPU time)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    def wrap(self, obj: Any, attr: str, name: str) -> None:
        inner = getattr(obj, attr)
        spent = self.spent
        clock = time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[name] += clock() - t0

        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return await inner(*args, **kwargs)
            finally:
                spent[name] += clock() - t0

        setattr(obj, attr, timed_async if asyncio.iscoroutinefunction(inner) else timed)


class GcTime:
    """CPU time in the cyclic garbage collector (inside whichever phase allocated when it ran)."""

    def __init__(self) -> None:
        self.spent_s = 0.0
        self.collections = Counter[int]()
        self.by_generation_s: dict[int, float] = defaultdict(float)
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.process_time()
        else:
            spent = time.process_time() - self._t0
            self.spent_s += spent
            self.collections[info["generation"]] += 1
            self.by_generation_s[info["generation"]] += spent

    def __enter__(self) -> GcTime:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


class Replaceable:
    """An object whose methods the phases can replace: the engine's (compiled by
    streams/engine/native.py, a class whose methods cannot be) behind a thin delegate."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class FirstEvents:
    """Counts the tag changes of a customer's first event apart from the later ones."""

    def __init__(self, process_event: Callable[..., Any]) -> None:
        self.inner = process_event
        self.events = Counter[str]()
        self.changes = Counter[str]()

    def __call__(self, state: CustomerState, event: Any, now_ms: int) -> Any:
        kind = "first" if not state.rule_version and state.is_empty() else "later"
        out = self.inner(state, event, now_ms)
        self.events[kind] += 1
        self.changes[kind] += len(out.changes)
        return out
