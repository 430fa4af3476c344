"""Conditions the tag engine tests in compiled code instead of calling the rule's expression.

``guards.all_hold`` does it for an ``and`` of comparisons with constants (``CompiledExpr.conjunction``);
``RatioCondition`` for an ``and`` of such comparisons and ratio comparisons
(``CompiledExpr.ratio_conjunction``: ``purchases_30d >= 3 and spend_24h >= spend_30d / 2``, the
1,000 selective benchmark tags' most evaluated shape after the plain ``and``). Its answer is the
expression's for plain finite numbers: a quotient is the same IEEE division Python does (an int
within 2**53 is a float exactly, so ``int / int`` is that division too) and a comparison of an int
with a float is exact in both. Anything else (a value None, a string, an int beyond 2**53, a
quotient that overflows) answers ``UNKNOWN``, and the engine calls the expression.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Final

from streams.engine.guards import Guard, guard
from tag_rules.compiler import TagDef
from tag_rules.expr_atoms import Atom
from tag_rules.expr_ratio import Ratio

FALSE: Final = 0
TRUE: Final = 1
UNKNOWN: Final = -1
"""``RatioCondition.test``'s answers: UNKNOWN leaves it to the expression."""

_GE: Final = 0
_GT: Final = 1
_LE: Final = 2
_LT: Final = 3
_OPS: Final[dict[str, int]] = {"ge": _GE, "gt": _GT, "le": _LE, "lt": _LT}

EXACT: Final = 9_007_199_254_740_992
"""Ints up to this (2 ** 53) are floats exactly."""
_NAN: Final = math.nan


def exact_float(v: Any) -> float:
    """``v`` as a float when it is a plain finite number that a float holds exactly, else nan (a
    bool, None, a string, inf, an int beyond 2 ** 53: the expression decides those)."""
    if type(v) is float:
        f: float = v
        return f if f - f == 0.0 else _NAN
    if type(v) is int:
        i: int = v
        return float(i) if -EXACT <= i <= EXACT else _NAN
    return _NAN


class RatioTest:
    """``left OP right / divisor`` on plain finite numbers (``tag_rules.expr_ratio.Ratio``)."""

    def __init__(self, ratio: Ratio) -> None:
        self.left = ratio.left
        self.right = ratio.right
        self.op = _OPS[ratio.op]
        self.divisor = float(ratio.divisor)

    def test(self, values: dict[str, Any]) -> int:
        x = exact_float(values.get(self.left))
        q = exact_float(values.get(self.right)) / self.divisor
        if x - x != 0.0 or q - q != 0.0:  # not plain finite numbers, or the quotient overflowed
            return UNKNOWN
        op = self.op
        if op == _GE:
            holds = x >= q
        elif op == _GT:
            holds = x > q
        elif op == _LE:
            holds = x <= q
        else:
            holds = x < q
        return TRUE if holds else FALSE


class RatioCondition:
    """A condition that is the ``and`` of comparisons with constants and ratio comparisons."""

    def __init__(self, atoms: Sequence[Atom], ratios: Sequence[Ratio]) -> None:
        self.guards: list[Guard] = [guard(a) for a in atoms]
        self.ratios: list[RatioTest] = [RatioTest(r) for r in ratios]

    def test(self, values: dict[str, Any]) -> int:
        """TRUE, FALSE, or UNKNOWN (call the expression). A comparison with a constant that fails
        makes the ``and`` false whatever the ratios (``Guard.holds_for`` is the comparison's truth
        for any value)."""
        for g in self.guards:
            if not g.holds_for(values.get(g.name)):
                return FALSE
        answer = TRUE
        for r in self.ratios:
            t = r.test(values)
            if t == FALSE:
                return FALSE
            if t == UNKNOWN:
                answer = UNKNOWN
        return answer


def plain_conjunctions(tags: Iterable[TagDef]) -> dict[str, list[Guard]]:
    """Per plain tag (no hysteresis, no flap control) whose condition is an ``and`` of comparisons
    with constants (``CompiledExpr.conjunction``), those comparisons as guards (``guards.all_hold``)."""
    return {t.name: [guard(a) for a in t.when.conjunction] for t in tags
            if t.when.conjunction is not None and t.exit is None and not t.flap_controlled}


def ratio_conditions(tags: Iterable[TagDef]) -> dict[str, RatioCondition]:
    """Per plain tag whose condition is an ``and`` with ratio comparisons among its terms
    (``CompiledExpr.ratio_conjunction``), its ``RatioCondition``."""
    return {t.name: RatioCondition(*t.when.ratio_conjunction) for t in tags
            if t.when.ratio_conjunction is not None and t.exit is None and not t.flap_controlled}
