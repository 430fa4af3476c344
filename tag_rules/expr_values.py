"""Run-time values of rule expressions: the helpers a compiled expression calls, and their table.

Semantics. Feature values come from rolling windows and events, so "no value" is normal: ``None`` means
no value (e.g. the average of an empty window, an event without an amount). Evaluation never raises for
env values of type str/int/float/bool/None/list[str]; instead:

* ``< <= > >=`` with ``None`` on either side, or between incomparable types (``"a" < 1``), are False.
  ``==``/``!=`` behave as in Python (``x == null`` tests for no value).
* Arithmetic needs numbers (int/float; bools are not numbers here). Any other operand - ``None``, a str,
  a list, a bool - gives ``None``, as do division/modulo by zero and overflow. ``**`` gives ``None`` when
  ``|exponent| > 64`` or ``|base| > 1e12`` (no giant integers, no hangs) or the result would be complex.
  ``None`` then propagates: ``avg_basket * 2 > 100`` is False for an empty window.
* ``x in y`` is False when ``y`` is None or the test is not possible (``1 in "abc"``); ``not in`` is its
  negation (so True in those cases). ``"sho" in "shoes"`` is a substring test, as in Python.
* ``and``/``or``/``not``/``if-else`` use Python truthiness and return what Python returns.
* ``min``/``max`` take one list/tuple argument or several arguments; ``None`` items are skipped, and the
  result is None when nothing is left or the items cannot be compared. ``abs``, ``round(x[, ndigits])``
  (``|ndigits| <= 64``) and ``seconds/minutes/hours/days(n)`` (return seconds: ``minutes(5) == 300``)
  give None for non-numbers; ``len`` gives None for anything but str/list/tuple; ``coalesce(a, b, ...)``
  returns the first argument that is not None.
* A name missing from the env reads as None.

See :mod:`tag_rules.expr` for the language and its compiler.

A compiled expression calls ``__ts_<op>`` names (``PREFIX``); ``HELPERS`` maps them to the functions
here and is the only global namespace expressions are evaluated in (no builtins).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

__all__ = ["BINOPS", "DURATION_FUNCTIONS", "FUNCTIONS", "HELPERS", "MAX_EXPONENT", "MAX_POW_BASE",
           "MAX_ROUND_DIGITS", "ORDER_OPS", "PREFIX", "UNARY", "is_num"]

MAX_EXPONENT = 64
"""``**`` gives None for a larger absolute exponent."""
MAX_POW_BASE = 1e12
"""``**`` gives None for a larger absolute base."""
MAX_ROUND_DIGITS = 64
"""``round(x, n)`` gives None for a larger ``|n|``."""

def is_num(v: object) -> bool:
    # type() and not isinstance(): bools are ints in Python, but "true + 1" is a rule bug, not arithmetic.
    t = type(v)
    return t is int or t is float


def _lt(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    try:
        return bool(a < b)
    except TypeError:
        return False


def _le(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    try:
        return bool(a <= b)
    except TypeError:
        return False


def _gt(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    try:
        return bool(a > b)
    except TypeError:
        return False


def _ge(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    try:
        return bool(a >= b)
    except TypeError:
        return False


def _in(a: Any, b: Any) -> bool:
    if b is None:
        return False
    try:
        return a in b
    except TypeError:
        return False


def _not_in(a: Any, b: Any) -> bool:
    return not _in(a, b)


def _add(a: Any, b: Any) -> Any:
    if is_num(a) and is_num(b):
        try:
            return a + b
        except ArithmeticError:
            return None
    return None


def _sub(a: Any, b: Any) -> Any:
    if is_num(a) and is_num(b):
        try:
            return a - b
        except ArithmeticError:
            return None
    return None


def _mul(a: Any, b: Any) -> Any:
    if is_num(a) and is_num(b):
        try:
            return a * b
        except ArithmeticError:
            return None
    return None


def _div(a: Any, b: Any) -> Any:
    if is_num(a) and is_num(b) and b:
        try:
            return a / b
        except ArithmeticError:
            return None
    return None


def _floordiv(a: Any, b: Any) -> Any:
    if is_num(a) and is_num(b) and b:
        try:
            return a // b
        except (ArithmeticError, ValueError):
            return None
    return None


def _mod(a: Any, b: Any) -> Any:
    if is_num(a) and is_num(b) and b:
        try:
            return a % b
        except (ArithmeticError, ValueError):
            return None
    return None


def _pow(a: Any, b: Any) -> Any:
    if not (is_num(a) and is_num(b)):
        return None
    try:
        if not (abs(b) <= MAX_EXPONENT and abs(a) <= MAX_POW_BASE):  # also rejects nan
            return None
        r = a**b
    except (ArithmeticError, ValueError):
        return None
    return None if type(r) is complex else r


def _neg(a: Any) -> Any:
    return -a if is_num(a) else None


def _pos(a: Any) -> Any:
    return a if is_num(a) else None


def _minmax(pick: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    if len(args) == 1 and isinstance(args[0], list | tuple):
        args = tuple(args[0])
    items = [a for a in args if a is not None]
    if not items:
        return None
    try:
        return pick(items)
    except (TypeError, ValueError):
        return None


def _min(*args: Any) -> Any:
    return _minmax(min, args)


def _max(*args: Any) -> Any:
    return _minmax(max, args)


def _abs(a: Any) -> Any:
    return abs(a) if is_num(a) else None


def _round(a: Any, ndigits: Any = None) -> Any:
    if not is_num(a):
        return None
    try:
        if ndigits is None:
            return round(a)
        if type(ndigits) is not int or abs(ndigits) > MAX_ROUND_DIGITS:
            return None
        return round(a, ndigits)
    except (ArithmeticError, ValueError):  # round(inf) / round(nan)
        return None


def _len(a: Any) -> Any:
    return len(a) if isinstance(a, str | list | tuple) else None


def _coalesce(*args: Any) -> Any:
    for a in args:
        if a is not None:
            return a
    return None


def _scale(factor: int) -> Callable[[Any], Any]:
    def to_seconds(n: Any) -> Any:
        return n * factor if is_num(n) else None

    return to_seconds


# name -> (helper, min args, max args or None for unlimited)
FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "min": (_min, 1, None),
    "max": (_max, 1, None),
    "abs": (_abs, 1, 1),
    "round": (_round, 1, 2),
    "len": (_len, 1, 1),
    "coalesce": (_coalesce, 1, None),
    "seconds": (_scale(1), 1, 1),
    "minutes": (_scale(60), 1, 1),
    "hours": (_scale(3600), 1, 1),
    "days": (_scale(86400), 1, 1),
}
"""Functions an expression may call."""

DURATION_FUNCTIONS = frozenset({"seconds", "minutes", "hours", "days"})
"""Functions that turn a number into seconds: a constant result is a time value (bounded)."""

PREFIX = "__ts_"  # user names cannot start with "_", so these can never be shadowed or read by a rule
BINOPS: dict[type[ast.operator], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("add", _add), ast.Sub: ("sub", _sub), ast.Mult: ("mul", _mul), ast.Div: ("div", _div),
    ast.FloorDiv: ("floordiv", _floordiv), ast.Mod: ("mod", _mod), ast.Pow: ("pow", _pow),
}
ORDER_OPS: dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], bool]]] = {
    ast.Lt: ("lt", _lt), ast.LtE: ("le", _le), ast.Gt: ("gt", _gt), ast.GtE: ("ge", _ge),
    ast.In: ("in", _in), ast.NotIn: ("not_in", _not_in),
}
UNARY: dict[type[ast.unaryop], tuple[str, Callable[[Any], Any]]] = {
    ast.USub: ("neg", _neg), ast.UAdd: ("pos", _pos),
}

HELPERS: dict[str, Any] = {
    "__builtins__": {},
    **{PREFIX + name: fn for name, fn in [*BINOPS.values(), *ORDER_OPS.values(), *UNARY.values()]},
    **{PREFIX + "f_" + name: spec[0] for name, spec in FUNCTIONS.items()},
}
"""The globals of every evaluation: the helpers under their ``__ts_`` names, and no builtins."""
