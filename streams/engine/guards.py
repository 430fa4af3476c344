"""Guards: the comparisons a tag's condition cannot be true without, as the tag engine checks them.

A plain tag whose condition is an ``and`` has its comparisons with constants among the terms as
guards, and a linear comparison implies more (``CompiledExpr.guards``, tag_rules/expr_atoms.py and
expr_linear.py: ``store_purchases_30d >= 40 and spend_lifetime >= store_purchases_30d / 5`` has
``store_purchases_30d >= 40`` and implies ``spend_lifetime >= 8``). A customer who does not hold
such a tag can only come in when every guard holds, so the engine checks them before evaluating it
(``Flips.up_guarded``, ``Flips.guarded``; streams/engine/tag_index.py checks the ones on the value
that moved). With 1,000 selective tags a purchase puts ~10 tags up for that check and nearly all
fail (benchmarks/RULES.md).

``GuardChecks`` does the engine's part. Half of the failures are on a feature the customer has no
data for yet (a first visit crosses every ``since_last_visit < N and X >= c``, whose ``X`` has
none): a guard that fails at the value a feature has with no data fails while its state key is
absent, which a dictionary look-up tells without reading the value.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from streams.engine.feature_reads import UNREAD, FeatureReads
from streams.engine.features.runtime import Runtime
from streams.engine.features.state import CustomerState
from tag_rules.expr_atoms import Atom
from tag_rules.expr_values import HELPERS, PREFIX

NUMERIC: Final[dict[Any, tuple[Callable[[Any, Any], bool], Callable[[Any, Any], bool]]]] = {
    HELPERS[PREFIX + "lt"]: (operator.lt, operator.gt), HELPERS[PREFIX + "le"]: (operator.le, operator.ge),
    HELPERS[PREFIX + "gt"]: (operator.gt, operator.lt), HELPERS[PREFIX + "ge"]: (operator.ge, operator.le),
    operator.eq: (operator.eq, operator.eq), operator.ne: (operator.ne, operator.ne)}
"""An atom's test as a plain operator on finite numbers (where the rule helpers' None and type
guards never apply): (``value OP constant``, the same for ``constant OP value``)."""


def finite(v: Any) -> bool:
    """An int, or a float that is neither infinite nor nan. Compiled on a C double (``x - x`` is 0
    but for those): ``math.isfinite`` is a module attribute and a call, ~280 instructions, and the
    tag index asks ~5 times per event."""
    t = type(v)
    if t is int:
        return True
    if t is float:
        x: float = v
        return x - x == 0.0
    return False


GUARD_LT: Final = 0
GUARD_LE: Final = 1
GUARD_GT: Final = 2
GUARD_GE: Final = 3
GUARD_EQ: Final = 4
GUARD_NE: Final = 5
GUARD_OTHER: Final = 6
"""``Guard`` codes: ``value OP constant`` for a finite number, by operator; OTHER: ``holds`` only.
``Final``: compiled as constants (a module global is a dictionary look-up at every use)."""

_GUARD_CODES: Final[dict[Any, int]] = {operator.lt: GUARD_LT, operator.le: GUARD_LE, operator.gt: GUARD_GT,
                                       operator.ge: GUARD_GE, operator.eq: GUARD_EQ, operator.ne: GUARD_NE}

EXACT: Final = 9_007_199_254_740_992
"""Ints up to this (2 ** 53) are floats exactly."""


class Guard:
    """A guard (``CompiledExpr.guards``) as the engine checks it (``holds_for``): the feature it
    reads, and its comparison compared in place for a number, as floats (compiled: a comparison of
    two C doubles instead of two Python objects; the engine checks ~9 per event with 1,000 tags)."""

    def __init__(self, name: str, code: int, constant: Any, holds: Callable[[Any], bool]) -> None:
        self.name = name
        self.code = code
        """How a finite number compares (``GUARD_GE`` ...), or ``GUARD_OTHER``: ``holds`` always."""
        self.constant = constant
        self.number = float(constant) if code != GUARD_OTHER else 0.0
        """``constant`` as a float (exactly: else the code is ``GUARD_OTHER``)."""
        self.holds = holds
        """``Atom.holds``: the truth for any value (None, a string, a number out of the exact range)."""

    def holds_for(self, value: Any) -> bool:
        """``Atom.holds(value)``."""
        code = self.code
        t = type(value)
        if code == GUARD_OTHER:
            return bool(self.holds(value))
        x: float
        if t is float:
            x = value
            if x - x != 0.0:  # inf or nan
                return bool(self.holds(value))
        elif t is int:
            i: int = value
            if i > EXACT or i < -EXACT:
                return bool(self.holds(value))
            x = float(i)
        else:
            return bool(self.holds(value))
        c = self.number
        if code == GUARD_GE:
            return x >= c
        if code == GUARD_LT:
            return x < c
        if code == GUARD_GT:
            return x > c
        if code == GUARD_LE:
            return x <= c
        if code == GUARD_EQ:
            return x == c
        return x != c


def guard(atom: Atom) -> Guard:
    """``atom`` as a ``Guard``."""
    constant = atom.constant
    if atom.test not in NUMERIC or not finite(constant) or float(constant) != constant:
        return Guard(atom.name, GUARD_OTHER, constant, atom.holds)
    return Guard(atom.name, _GUARD_CODES[NUMERIC[atom.test][atom.constant_first]], constant, atom.holds)


def all_hold(conjunction: list[Guard], values: dict[str, Any]) -> bool:
    """A condition that is the ``and`` of ``conjunction`` (``CompiledExpr.conjunction``) for ``values``
    (a missing name reads as None, as in the expression): the comparisons tested here, compiled,
    instead of through the expression's function and its helpers (~2,700 instructions for a
    condition of the 1,000 selective tags, ~300 here)."""
    return all(g.holds_for(values.get(g.name)) for g in conjunction)  # mypyc compiles it to a loop


class GuardChecks:
    """The guards of every tag (by index, in rule order), checked against one customer's values."""

    def __init__(self, guards: Sequence[Sequence[Atom]], runtime_of: Mapping[str, Runtime],
                 blank: Mapping[str, Any], reads: FeatureReads) -> None:
        self._reads = reads
        self.of: list[list[Guard]] = [[guard(a) for a in atoms] for atoms in guards]
        """Per tag, its guards (``CompiledExpr.guards``: the terms of its ``and`` first)."""
        self.blank_fails: list[list[str]] = [
            sorted({runtime_of[g.name].key for g in of if not g.holds_for(blank[g.name])}) for of in self.of]
        """Per tag, the state keys of its guards that fail at the value with no data (``blank``)."""

    def hold(self, tag: int, state: CustomerState, values: dict[str, Any], now_ms: int) -> bool:
        """Whether every guard of ``tag`` holds for ``state`` at ``now_ms`` (it cannot come in while
        one does not). Reads the values it needs into ``values``; a key with no data is not read."""
        feats = state.features
        for key in self.blank_fails[tag]:
            if key not in feats:
                return False
        for g in self.of[tag]:
            v = values.get(g.name, UNREAD)
            if v is UNREAD:
                v = self._reads.read(g.name, state, values, now_ms)
            if not g.holds_for(v):
                return False
        return True
