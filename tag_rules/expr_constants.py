"""Compile-time constants of rule expressions: evaluating them, and the limits every constant keeps.

The compiler folds constant sub-expressions (``days(30)``, ``2 ** 10``). A constant that can never
work, or that would break the engine later, is a compile error; the functions here return the
message (or None when the constant is fine) and the compiler attaches the position.

* numbers are finite: ``1e400`` or ``1e308 * 10`` would be infinity;
* integers are at most :data:`MAX_INT` in absolute value (no giant integers to convert or print);
* time values (a time-since threshold, a constant ``seconds/minutes/hours/days(n)``) are at most
  :data:`MAX_TIME_S`, so every due time the engine derives from them stays far inside 64 bits.
"""

from __future__ import annotations

import ast
import math
from typing import Any

from .expr_values import HELPERS, MAX_EXPONENT, MAX_POW_BASE, is_num

MAX_INT = 10**20
"""Largest absolute value of an integer constant, written or folded (20 digits; 2**64 fits)."""
MAX_TIME_S = 100 * 365 * 86_400
"""Largest absolute time constant in seconds: 100 years, ``days(36500)``."""


def evaluate(node: ast.expr, filename: str) -> Any:
    """The value of a validated, name-free expression node."""
    if isinstance(node, ast.Constant):
        return node.value
    expr = ast.fix_missing_locations(ast.Expression(node))
    return eval(compile(expr, filename, "eval"), HELPERS, {})


def number_problem(value: object, written: bool = False) -> str | None:
    """Why ``value`` may not be a constant (not finite, or a giant integer), or None."""
    if type(value) is float and not math.isfinite(value):
        if written:
            return "this number is too large (it overflows to infinity; the largest is about 1.8e308)"
        return "this constant expression overflows (the result is not a finite number)"
    if type(value) is int and abs(value) > MAX_INT:
        what = "integer literal" if written else "integer constant"
        return (f"this {what} is too large (about {value.bit_length() * 0.30103:.0f} digits; the maximum is "
                "10**20); write a float such as 1e25 for a larger number")
    return None


def time_problem(seconds: float, head: str) -> str | None:
    """Why ``seconds`` is not a usable time constant, or None. ``head`` starts the message."""
    if abs(seconds) > MAX_TIME_S:
        return (f"{head} {seconds:.12g} seconds, more than 100 years; the limit is days(36500) = {MAX_TIME_S} "
                "seconds")
    return None


def bad_constant_problem(orig: ast.expr, new: ast.expr, filename: str) -> str | None:
    """Why the constant ``orig`` (rewritten as ``new``) evaluated to None, if it is a mistake."""
    args = [evaluate(a, filename) for a in new.args] if isinstance(new, ast.Call) else []
    if any(a is None for a in args):
        return None  # None in, None out: a documented rule, not a mistake we can be sure of
    if isinstance(orig, ast.Call):
        fname = orig.func.id if isinstance(orig.func, ast.Name) else "?"
        if fname == "coalesce":
            return None
        return f"{fname}() cannot be applied to {', '.join(_short_repr(a) for a in args)}"
    bad = [a for a in args if not is_num(a)]
    if bad:
        return f"arithmetic needs numbers, not {type(bad[0]).__name__} ({_short_repr(bad[0])})"
    if isinstance(orig, ast.BinOp) and isinstance(orig.op, ast.Pow):
        return f"this power is too large (exponent at most {MAX_EXPONENT}, base at most {MAX_POW_BASE:.0e})"
    if isinstance(orig, ast.BinOp) and isinstance(orig.op, ast.Div | ast.FloorDiv | ast.Mod):
        return "division by zero"
    return "this constant expression has no value (overflow)"


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
