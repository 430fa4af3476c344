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

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streams.engine.feature_reads import UNREAD, FeatureReads
from streams.engine.features.runtime import Runtime
from streams.engine.features.state import CustomerState
from tag_rules.expr_atoms import Atom
from tag_rules.expr_values import HELPERS, PREFIX

NUMERIC: dict[Any, tuple[Callable[[Any, Any], bool], Callable[[Any, Any], bool]]] = {
    HELPERS[PREFIX + "lt"]: (operator.lt, operator.gt), HELPERS[PREFIX + "le"]: (operator.le, operator.ge),
    HELPERS[PREFIX + "gt"]: (operator.gt, operator.lt), HELPERS[PREFIX + "ge"]: (operator.ge, operator.le),
    operator.eq: (operator.eq, operator.eq), operator.ne: (operator.ne, operator.ne)}
"""An atom's test as a plain operator on finite numbers (where the rule helpers' None and type
guards never apply): (``value OP constant``, the same for ``constant OP value``)."""


def finite(v: Any) -> bool:
    t = type(v)
    return t is int or (t is float and math.isfinite(v))


GUARD_LT, GUARD_LE, GUARD_GT, GUARD_GE, GUARD_EQ, GUARD_NE, GUARD_OTHER = range(7)
"""``Guard`` codes: ``value OP constant`` for a finite number, by operator; OTHER: ``holds`` only."""

_GUARD_CODES: dict[Any, int] = {operator.lt: GUARD_LT, operator.le: GUARD_LE, operator.gt: GUARD_GT,
                                operator.ge: GUARD_GE, operator.eq: GUARD_EQ, operator.ne: GUARD_NE}

Guard = tuple[str, int, Any, Callable[[Any], bool]]
"""A guard (``CompiledExpr.guards``) as the engine checks it (``guard_holds``): feature name, the
comparison's code for a finite number, its constant, and ``Atom.holds`` for any other value."""


def guard(atom: Atom) -> Guard:
    """``atom`` as a ``Guard``."""
    if atom.test not in NUMERIC or not finite(atom.constant):
        return atom.name, GUARD_OTHER, atom.constant, atom.holds
    return atom.name, _GUARD_CODES[NUMERIC[atom.test][atom.constant_first]], atom.constant, atom.holds


def guard_holds(code: int, constant: Any, holds: Callable[[Any], bool], value: Any) -> bool:
    """A ``Guard``'s truth for ``value`` (``Atom.holds``): compared in place for a finite number (no
    call of the rule helpers' None and type guards; the engine checks ~9 per event with 1,000 tags)."""
    t = type(value)
    if code == GUARD_OTHER or not (t is int or (t is float and math.isfinite(value))):
        return bool(holds(value))
    if code == GUARD_GE:
        return bool(value >= constant)
    if code == GUARD_LT:
        return bool(value < constant)
    if code == GUARD_GT:
        return bool(value > constant)
    if code == GUARD_LE:
        return bool(value <= constant)
    if code == GUARD_EQ:
        return bool(value == constant)
    return bool(value != constant)


class GuardChecks:
    """The guards of every tag (by index, in rule order), checked against one customer's values."""

    def __init__(self, guards: Sequence[Sequence[Atom]], runtime_of: Mapping[str, Runtime],
                 blank: Mapping[str, Any], reads: FeatureReads) -> None:
        self._reads = reads
        self.of: list[list[Guard]] = [[guard(a) for a in atoms] for atoms in guards]
        """Per tag, its guards (``CompiledExpr.guards``: the terms of its ``and`` first)."""
        self.blank_fails: list[list[str]] = [
            sorted({runtime_of[name].key for name, code, constant, holds in of
                    if not guard_holds(code, constant, holds, blank[name])})
            for of in self.of]
        """Per tag, the state keys of its guards that fail at the value with no data (``blank``)."""

    def hold(self, tag: int, state: CustomerState, values: dict[str, Any], now_ms: int) -> bool:
        """Whether every guard of ``tag`` holds for ``state`` at ``now_ms`` (it cannot come in while
        one does not). Reads the values it needs into ``values``; a key with no data is not read."""
        feats = state.features
        for key in self.blank_fails[tag]:
            if key not in feats:
                return False
        for name, code, constant, holds in self.of[tag]:
            v = values.get(name, UNREAD)
            if v is UNREAD:
                v = self._reads.read(name, state, values, now_ms)
            if not guard_holds(code, constant, holds, v):
                return False
        return True
