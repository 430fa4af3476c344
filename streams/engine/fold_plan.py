"""Which features an event can feed, decided once per (source, type) instead of once per event.

Most ``where`` filters read only the event's ``source`` and ``type`` (``type == "product_view"``,
``(source == "pos" and type == "sale") or …``): for a given pair their answer never changes. A plan
lists, per pair, the features of the source whose filter is true for it (no evaluation left) or
reads other fields (still evaluated per event, shared by features with the same filter text: the
*slot*); features whose filter is false for the pair are left out. The engine folds an event
through its pair's plan in the same order as through every feature of the source, so the result is
the same (tests/unit/test_fold_plan.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeAlias

from streams.engine.features.runtime import Runtime

Step: TypeAlias = tuple[Runtime, int]
"""A feature and the slot of its per-event filter (-1: nothing to evaluate)."""

_STATIC_NAMES: Final = frozenset(("source", "type"))
_MAX_PLANS: Final = 4096
"""Types are validated enums (a few dozen pairs); a bound all the same, should an event path ever
bring free text."""


class FoldPlans:
    """Per (source, type): the steps of the features an event of that pair can feed."""

    def __init__(self, by_source: Mapping[str, Sequence[Step]]) -> None:
        """``by_source``: per source, every feature it may feed with its filter slot, in fold order."""
        self._by_source = by_source
        self._plans: dict[tuple[str, Any], list[Step]] = {}

    @staticmethod
    def of(runtimes: Sequence[Runtime], sources: Iterable[str]) -> FoldPlans:
        """Per source, the features it can feed in ``runtimes``' order, each with the slot of its
        ``where`` filter: features with the same filter text (count/sum over 1h/24h/7d of one event
        kind) share one evaluation."""
        slots: dict[str, int] = {}
        return FoldPlans({src: [(rt, -1 if rt.filter_key is None else slots.setdefault(rt.filter_key, len(slots)))
                                for rt in runtimes if src in rt.sources]
                          for src in sources})

    def steps(self, event: Mapping[str, Any]) -> list[Step]:
        source = event["source"]
        pair = (source, event.get("type"))
        plan = self._plans.get(pair)
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            plan = self._plans[pair] = self._plan(source, pair[1])
        return plan

    def _plan(self, source: str, type_: Any) -> list[Step]:
        probe = {"source": source, "type": type_}
        plan: list[Step] = []
        for rt, slot in self._by_source.get(source, ()):
            if slot < 0 or not rt.filter_names <= _STATIC_NAMES:
                plan.append((rt, slot))
            elif rt.matches(probe):
                plan.append((rt, -1))
        return plan
