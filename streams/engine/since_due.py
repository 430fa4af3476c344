"""Which thresholds of a time-since feature can change a tag of this customer: its due times.

A time-since value (``since_last_visit``) grows with the clock, so each constant a tag compares it
with is an instant at which that comparison flips (``FeatureRuntime.thresholds_ms``), and every
one of them used to be a due time of every customer with the feature. Most cannot change
anything: ``since_last_visit < hours(1) and carts_24h >= 3`` moves toward *false* when the hour
passes, and a plain tag that is not held stays out (the engine keeps such a tag held exactly when
its condition holds: streams/engine/tag_index.py); ``since_last_purchase >= days(60) and ...``
moves toward *true*, and one already held stays in. So per threshold ``SinceDue`` keeps the tags
whose comparisons flip there, each with what it needs to matter: held (a move toward false), not
held (toward true), or anything (hysteresis, flap control, a condition that is not a boolean
combination of comparisons, ``==``). The next due time of the feature is the first threshold
after now that matters for the tags the customer holds (``next_ms``), and when a tag of that list
is added or removed the engine computes it again (``keys_of``).

Why skipping is exact: between two evaluations a customer's held tags do not change, and a
comparison crossed where it does not matter leaves its tag's outcome as it was; the next event
or due time evaluates the tags with the values of then (not with what the skipped instant would
have flipped). With 1,000 selective tags, 14 thresholds on ``since_last_visit`` and 15 on
``since_last_purchase`` made 47 % more due runs than the 50 tags' (benchmarks/RULES.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

from streams.engine.features.runtime import NEVER, FeatureRuntime, Runtime
from streams.engine.tag_index import condition_atoms
from tag_rules.compiler import TagDef
from tag_rules.expr_atoms import Atom

_ANY: Final = 0
_IF_HELD: Final = 1
_IF_NOT_HELD: Final = 2


class _Plan:
    """One time-since state key: its thresholds (ms after the newest event) and, for each, whether
    it always matters, or the tags for which it does when held and when not held."""

    def __init__(self, thresholds_ms: Sequence[int]) -> None:
        self.thresholds: list[int] = list(thresholds_ms)
        self.always: list[bool] = [False] * len(self.thresholds)
        self.if_held: list[list[str]] = [[] for _ in self.thresholds]
        self.if_not_held: list[list[str]] = [[] for _ in self.thresholds]
        self.covered: list[bool] = [False] * len(self.thresholds)
        """A comparison of a tag maps to it (a threshold no comparison maps to always matters)."""

    def add(self, seconds: float, tag: str, need: int) -> None:
        """The comparison of ``tag`` with ``seconds`` flips at that threshold's instants."""
        c = math.ceil(seconds * 1000)
        for i, t in enumerate(self.thresholds):
            if t == c or t == c + 1:  # ``FeatureRuntime.thresholds_ms``: both, for ``>=`` and ``>``
                self.covered[i] = True
                if need == _IF_HELD:
                    self.if_held[i].append(tag)
                elif need == _IF_NOT_HELD:
                    self.if_not_held[i].append(tag)
                else:
                    self.always[i] = True

    def add_everywhere(self) -> None:
        for i in range(len(self.thresholds)):
            self.always[i] = True
            self.covered[i] = True

    def freeze(self) -> None:
        for i, covered in enumerate(self.covered):
            if not covered:
                self.always[i] = True

    def next_ms(self, data: int, now_ms: int, held: dict[str, int]) -> float:
        for i, t in enumerate(self.thresholds):
            at = data + t
            if at > now_ms and self._matters(i, held):
                return at
        return NEVER

    def _matters(self, i: int, held: dict[str, int]) -> bool:
        if self.always[i]:
            return True
        if any(name in held for name in self.if_held[i]):  # mypyc compiles these to loops
            return True
        return any(name not in held for name in self.if_not_held[i])


def _need(atom: Atom) -> int:
    """What a plain tag needs for this comparison (with a finite number) flipping, as time passes,
    to matter."""
    c = float(atom.constant)
    before, after = atom.holds(c - 1.0), atom.holds(c + 1.0)
    if before == after:  # ``==``, ``!=``: flips twice
        return _ANY
    toward_true = after != atom.negated
    return _IF_NOT_HELD if toward_true else _IF_HELD


class SinceDue:
    """Per time-since state key, which of its thresholds matter for which held tags."""

    def __init__(self, tags: Sequence[TagDef], runtime_of: Mapping[str, Runtime]) -> None:
        plans: dict[str, _Plan] = {}
        for rt in runtime_of.values():
            if isinstance(rt, FeatureRuntime) and rt.takes_thresholds and rt.key not in plans:
                plans[rt.key] = _Plan(rt.thresholds_ms)
        self._plans = plans
        keys_of: dict[str, list[str]] = {}
        for tag in tags:
            keys = sorted({runtime_of[n].key for n in tag.features if runtime_of[n].key in plans})
            if not keys:
                continue
            plain = tag.exit is None and not tag.flap_controlled
            atoms = condition_atoms(tag)
            if atoms is None and plain and tag.when.monotone is not None:
                atoms = tag.when.monotone.atoms  # with linear terms, which never read a time-since value
            for key in keys:
                names = [n for n in tag.features if runtime_of[n].key == key]
                on_key = [a for a in atoms or () if a.name in names]
                if atoms is None or not on_key:  # not a combination of comparisons: any crossing
                    plans[key].add_everywhere()
                    continue
                for atom in on_key:
                    c = atom.constant
                    if atom.test is None or type(c) not in (int, float) or not math.isfinite(c):
                        plans[key].add_everywhere()  # a bare value, a comparison with no number
                        continue
                    need = _need(atom) if plain else _ANY  # hysteresis, flap control: its crossings
                    plans[key].add(float(c), tag.name, need)
                    if need != _ANY and key not in keys_of.setdefault(tag.name, []):
                        keys_of[tag.name].append(key)
        for plan in plans.values():
            plan.freeze()
        self.keys_of = keys_of
        """Per tag, the time-since keys whose due times depend on whether it is held."""

    def next_ms(self, key: str, data: int, now_ms: int, held: dict[str, int]) -> float:
        """The first instant after ``now_ms`` at which the time-since ``key`` (newest event at
        ``data``) crosses a threshold that can change a tag, given the ``held`` ones."""
        return self._plans[key].next_ms(data, now_ms, held)
