"""Comparisons of a number with constants, found by bisection on where their truth changes.

A numeric comparison ``value OP constant`` is true on one side of its constant, or only at it, or
everywhere but at it (``sides``). So for one feature's comparisons sorted by constant, the ones a
change of the value from ``old`` to ``new`` flips are a range of each family (``Crossings``: the tag
index's comparisons with constants), and the ones a value passes are a prefix or a suffix
(``Thresholds``: the guards a tag's linear comparison checks on the value that moved). No comparison
outside the answer is visited. Bisection is on floats, compiled (``_right``, ``_left``); an int a
float would round (beyond 2**53) takes the plain comparisons instead.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Container, Sequence
from typing import Any, Final

from streams.engine.flips import Flips, destination


def sides(op: Callable[[Any, Any], bool], constant: float) -> tuple[bool, bool, bool]:
    """A numeric comparison ``op(value, constant)``'s truth just below, at and just above its
    constant: (False, True, True) is ``>=``, (False, False, True) ``>``, (False, True, False) ``==``..."""
    return (bool(op(math.nextafter(constant, -math.inf), constant)), bool(op(constant, constant)),
            bool(op(math.nextafter(constant, math.inf), constant)))


class Crossings:
    """One feature's numeric comparisons, split by where their truth changes, so that a finite
    value going from ``old`` to ``new`` finds exactly the ones it flips by bisection, with no test
    of the others: a comparison whose truth changes just below its constant (``>=``, ``<``) flips
    when ``min < constant <= max``, one whose truth changes just above it (``>``, ``<=``) when
    ``min <= constant < max``, an equality when one of the two values is its constant. A value
    crossing the constant of ``views_24h >= 5`` from 4 to 5 no longer visits ``views_24h > 5`` and
    ``views_24h >= 4`` to find them unmoved. Per family, each comparison's tag and where a rise and
    a fall put it (``destination``), by ascending constant."""

    __slots__ = ("entries", "lower", "lower_fall", "lower_rise", "lower_tags", "point_bounds", "points", "upper",
                 "upper_fall", "upper_rise", "upper_tags")

    def __init__(self, entries: Sequence[tuple[Callable[[Any, Any], bool], Any, int, int]],
                 with_guards: Container[int]) -> None:
        self.entries = list(entries)
        upper: list[tuple[float, int, int, int]] = []
        lower: list[tuple[float, int, int, int]] = []
        points: list[tuple[float, tuple[Callable[[Any, Any], bool], Any, int, int]]] = []
        for entry in entries:
            op, constant, tag, sign = entry
            c = float(constant)
            below, at, above = sides(op, c)
            rise, fall = destination(tag, sign, above, with_guards), destination(tag, sign, below, with_guards)
            if below != at and at == above:
                upper.append((c, tag, rise, fall))
            elif below == at and at != above:
                lower.append((c, tag, rise, fall))
            else:  # == and !=: both sides of the constant agree, the constant itself does not
                points.append((c, entry))
        upper.sort(key=lambda e: e[0])
        lower.sort(key=lambda e: e[0])
        points.sort(key=lambda e: e[0])
        self.upper = [e[0] for e in upper]
        self.upper_tags = [e[1] for e in upper]
        self.upper_rise = [e[2] for e in upper]
        self.upper_fall = [e[3] for e in upper]
        self.lower = [e[0] for e in lower]
        self.lower_tags = [e[1] for e in lower]
        self.lower_rise = [e[2] for e in lower]
        self.lower_fall = [e[3] for e in lower]
        self.point_bounds = [e[0] for e in points]
        self.points = [e[1] for e in points]

    def flipped(self, old: Any, new: Any, out: Flips) -> None:
        """Adds to ``out`` the comparisons finite ``old`` going to finite ``new`` flips."""
        if (type(old) is int and not -_EXACT <= old <= _EXACT) or (type(new) is int and not -_EXACT <= new <= _EXACT):
            self._exact(old, new, out)  # an int a float would round: the comparisons themselves
            return
        o = float(old)
        n = float(new)
        if n > o:
            lo, hi = o, n
            upper_where, lower_where = self.upper_rise, self.lower_rise
        elif n < o:
            lo, hi = n, o
            upper_where, lower_where = self.upper_fall, self.lower_fall
        else:
            return
        bounds = self.upper
        if bounds:
            tags = self.upper_tags
            for i in range(_right(bounds, lo), _right(bounds, hi)):
                out.put(tags[i], upper_where[i])
        bounds = self.lower
        if bounds:
            tags = self.lower_tags
            for i in range(_left(bounds, lo), _left(bounds, hi)):
                out.put(tags[i], lower_where[i])
        if self.points:
            bounds = self.point_bounds
            for i in range(_left(bounds, lo), _right(bounds, hi)):
                if bounds[i] == lo or bounds[i] == hi:
                    op, constant, tag, sign = self.points[i]
                    now_true = op(new, constant)
                    if op(old, constant) != now_true:
                        out.add(tag, sign, now_true)

    def _exact(self, old: Any, new: Any, out: Flips) -> None:
        for op, constant, tag, sign in self.entries:
            now_true = op(new, constant)
            if op(old, constant) != now_true:
                out.add(tag, sign, now_true)


_EXACT: Final = 9_007_199_254_740_992  # 2 ** 53; Final: a compiled constant, not a global look-up
"""Ints up to this are floats exactly: ``Crossings`` bisects floats."""


def _right(a: list[float], x: float) -> int:
    """``bisect.bisect_right`` on floats, compiled (the library's is a Python call from native code)."""
    lo = 0
    hi = len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _left(a: list[float], x: float) -> int:
    """``bisect.bisect_left`` on floats, compiled."""
    lo = 0
    hi = len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


_THRESHOLD_SIDES: Final = {(False, True, True): 0, (False, False, True): 1, (True, True, False): 2,
                           (True, False, False): 3}
"""``Thresholds``' families by a comparison's ``sides``: ``>=``, ``>``, ``<=``, ``<``."""


class Thresholds:
    """Tags each with one numeric comparison of a finite value with a constant (``views_1h >= 250``):
    the ones a value passes, by bisection. Four families by which side of the constant is true:
    ``>=`` passes for the constants up to the value, ``>`` below it, ``<=`` from it, ``<`` above it."""

    __slots__ = ("bounds", "families", "live", "tags")

    def __init__(self) -> None:
        self.families: list[list[tuple[float, int]]] = [[], [], [], []]
        self.bounds: list[list[float]] = [[], [], [], []]
        self.tags: list[list[int]] = [[], [], [], []]
        self.live = False
        """Whether it has any tag."""

    def add(self, tag: int, op: Callable[[Any, Any], bool], constant: float) -> bool:
        """Takes ``tag`` with its one guard ``op(value, constant)`` if it is an order comparison (else False)."""
        family = _THRESHOLD_SIDES.get(sides(op, constant))
        if family is None:
            return False
        self.families[family].append((constant, tag))
        return True

    def freeze(self) -> None:
        for f, entries in enumerate(self.families):
            entries.sort()
            self.bounds[f] = [c for c, _ in entries]
            self.tags[f] = [t for _, t in entries]
        self.live = any(self.tags)

    def passing(self, value: Any, out: set[int]) -> None:
        """Adds to ``out`` the tags whose comparison the finite number ``value`` passes."""
        bounds, tags = self.bounds, self.tags
        if type(value) is int and not -_EXACT <= value <= _EXACT:  # a float would round it: compare each
            for f, passes in enumerate((operator.ge, operator.gt, operator.le, operator.lt)):
                out.update(t for c, t in zip(bounds[f], tags[f], strict=True) if passes(value, c))
            return
        v = float(value)
        if tags[0]:
            family = tags[0]
            for i in range(_right(bounds[0], v)):
                out.add(family[i])
        if tags[1]:
            family = tags[1]
            for i in range(_left(bounds[1], v)):
                out.add(family[i])
        if tags[2]:
            family = tags[2]
            for i in range(_left(bounds[2], v), len(family)):
                out.add(family[i])
        if tags[3]:
            family = tags[3]
            for i in range(_right(bounds[3], v), len(family)):
                out.add(family[i])
