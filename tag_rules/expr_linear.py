"""Comparisons of linear forms of features, and which way each feature moves their truth.

``purchases_30d >= page_views_24h / 3`` is not a comparison with a constant (:mod:`tag_rules.expr_atoms`
gives the condition no atoms), but it is a comparison of two *linear forms*: sums of features
times constants, plus constants (``+``, ``-``, unary ``-``, ``*`` and ``/`` by a constant). Its
truth is monotone in each feature it reads: for finite numbers, ``left - right`` rises with
``purchases_30d`` (coefficient 1) and falls with ``page_views_24h`` (coefficient -1/3), so the
comparison can only move *toward true* when ``purchases_30d`` rises, *toward false* when it falls,
and the other way round for ``page_views_24h``. Correctly rounded float arithmetic keeps this
(``x / 3`` never decreases when ``x`` rises) as long as nothing overflows; ``Linear.limit`` bounds
the values for which every intermediate result stays finite.

The engine (streams/engine/tag_index.py) uses the direction the way it uses a comparison with a
constant that flipped: a plain tag that does not hold is evaluated only when one of its
comparisons moved toward true. It cannot tell that the comparison *did* flip (that needs the
other features' values), so such a tag is evaluated on every move its way, which with the
``purchases_30d >= page_views_24h / 3`` segments of a 1,000-tag set is a fraction of the moves
either way (benchmarks/RULES.md).

``==`` and ``!=`` of linear forms have no direction (slope 0: either way). A value that is not a
finite number (None, a string, a bool) or beyond ``limit`` moves it either way too: the rule
helpers make such a comparison false, and it may become true with the next value.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .expr_function import as_function
from .expr_values import HELPERS, PREFIX

MAX_PEAK = 1e290
"""A form whose intermediate results may exceed this many times its largest input is left opaque."""


@dataclass(frozen=True)
class Linear:
    """A comparison of two linear forms: per feature it reads, ``slope`` +1 when its truth can only
    rise with the feature, -1 when it can only fall, 0 either way (``==``, a cancelled coefficient)."""

    slopes: tuple[tuple[str, int], ...]
    limit: float
    """Feature values within ``±limit`` keep every intermediate result finite (the slopes hold)."""
    negated: bool = False
    """Under an odd number of ``not``, as ``Atom.negated``."""


@dataclass(frozen=True)
class _Form:
    coefs: dict[str, Fraction]
    scale: Fraction
    """A bound on ``|value| / max(1, largest |input|)``."""
    peak: Fraction
    """The largest ``scale`` of the form and its sub-forms (bounds every intermediate result)."""


_DIRECTION: dict[Any, int | None] = {
    HELPERS[PREFIX + "ge"]: 1, HELPERS[PREFIX + "gt"]: 1, HELPERS[PREFIX + "le"]: -1, HELPERS[PREFIX + "lt"]: -1,
    operator.eq: None, operator.ne: None,
}
"""How a comparison's truth moves with ``left - right``: +1 rises, -1 falls, None either way."""


def linear_comparison(fn: Any, left: ast.expr, right: ast.expr, features: frozenset[str],
                      negated: bool) -> Linear | None:
    """The rewritten comparison ``fn(left, right)`` as a ``Linear``, or None when a side is not a
    linear form of ``features`` (or reads none of them)."""
    if fn not in _DIRECTION:
        return None
    lf, rf = _form(left, features), _form(right, features)
    if lf is None or rf is None:
        return None
    coefs = dict(lf.coefs)
    for name, c in rf.coefs.items():
        coefs[name] = coefs.get(name, Fraction(0)) - c
    peak = max(lf.peak, rf.peak)
    if not coefs or peak > MAX_PEAK:
        return None
    direction = _DIRECTION[fn]
    slopes = tuple((name, 0 if direction is None or not c else direction * (1 if c > 0 else -1))
                   for name, c in sorted(coefs.items()))
    return Linear(slopes, 1e300 / float(max(peak, Fraction(1))), negated)


def _number(node: ast.expr) -> Fraction | None:
    value = node.value if isinstance(node, ast.Constant) else None
    if (type(value) is int or type(value) is float) and math.isfinite(value):
        return Fraction(value)
    return None


def _form(node: ast.expr, features: frozenset[str]) -> _Form | None:
    if isinstance(node, ast.Name):
        return _Form({node.id: Fraction(1)}, Fraction(1), Fraction(1)) if node.id in features else None
    constant = _number(node)
    if constant is not None:
        return _Form({}, abs(constant), abs(constant))
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords
            and node.func.id.startswith(PREFIX)):
        return None
    op, args = node.func.id[len(PREFIX):], node.args
    if op in ("neg", "pos") and len(args) == 1:
        inner = _form(args[0], features)
        if inner is None or op == "pos":
            return inner
        return _Form({k: -c for k, c in inner.coefs.items()}, inner.scale, inner.peak)
    if len(args) != 2:
        return None
    if op in ("add", "sub"):
        a, b = _form(args[0], features), _form(args[1], features)
        if a is None or b is None:
            return None
        sign = 1 if op == "add" else -1
        coefs = dict(a.coefs)
        for k, c in b.coefs.items():
            coefs[k] = coefs.get(k, Fraction(0)) + sign * c
        scale = a.scale + b.scale
        return _Form(coefs, scale, max(a.peak, b.peak, scale))
    if op == "mul":
        factor, inner = _number(args[0]), _form(args[1], features)
        if factor is None:
            factor, inner = _number(args[1]), _form(args[0], features)
        return None if factor is None or inner is None else _scaled(inner, factor)
    if op == "div":
        divisor, inner = _number(args[1]), _form(args[0], features)
        return None if not divisor or inner is None else _scaled(inner, Fraction(1) / divisor)
    return None


def _scaled(form: _Form, k: Fraction) -> _Form:
    scale = form.scale * abs(k)
    return _Form({n: c * k for n, c in form.coefs.items()}, scale, max(form.peak, scale))


_LOWER = {HELPERS[PREFIX + "ge"], HELPERS[PREFIX + "gt"]}
"""``x >= c`` / ``x > c``: a lower bound c (or, constant first, an upper one)."""
_UPPER = {HELPERS[PREFIX + "le"], HELPERS[PREFIX + "lt"]}


def implied_guards(body: ast.expr, guards: tuple[Any, ...], features: frozenset[str]) -> list[tuple[str, Any, float]]:
    """Comparisons with a constant that a top-level ``and`` implies through one of its terms
    ``x OP linear form of other features``, given bounds its guards put on those features, as
    (feature, test, constant): ``spend_30d >= 1000 and views_1h >= spend_30d / 4`` implies
    ``views_1h >= 250``. The bound is the form evaluated by the rule helpers at the guards'
    constants: each feature appears once in it, so every step is monotone in it and the form's
    value is at least (at most) that whenever the guards hold, floats included."""
    lower: dict[str, float] = {}
    upper: dict[str, float] = {}
    for g in guards:
        if g.test is None or g.negated or type(g.constant) not in (int, float) or not math.isfinite(g.constant):
            continue
        is_lower = (g.test in _LOWER) != g.constant_first if g.test in _LOWER | _UPPER else None
        if is_lower is None:
            if g.test is operator.eq:
                lower[g.name] = max(lower.get(g.name, -math.inf), g.constant)
                upper[g.name] = min(upper.get(g.name, math.inf), g.constant)
        elif is_lower:
            lower[g.name] = max(lower.get(g.name, -math.inf), g.constant)
        else:
            upper[g.name] = min(upper.get(g.name, math.inf), g.constant)
    out: list[tuple[str, Any, float]] = []
    terms = body.values if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And) else [body]
    for term in terms:
        if not (isinstance(term, ast.Call) and isinstance(term.func, ast.Name) and len(term.args) == 2):
            continue
        fn = HELPERS.get(term.func.id) if term.func.id.startswith(PREFIX) else None
        if fn not in _LOWER | _UPPER:
            continue
        for x, other, x_is_left in ((term.args[0], term.args[1], True), (term.args[1], term.args[0], False)):
            if not (isinstance(x, ast.Name) and x.id in features):
                continue
            # x >= other (x on the left of >=, or on the right of <=) needs other's lowest value
            wants_lower = (fn in _LOWER) == x_is_left
            bound = _bound(other, features, x.id, lower, upper, wants_lower)
            if bound is not None:
                out.append((x.id, HELPERS[PREFIX + ("ge" if wants_lower else "le")], bound))
    return out


def _bound(node: ast.expr, features: frozenset[str], x: str, lower: dict[str, float], upper: dict[str, float],
           wants_lower: bool) -> float | None:
    """The lowest (highest) value of the linear form ``node`` given the bounds, or None."""
    form = _form(node, features)
    names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in features]
    if form is None or not names or x in names or len(names) != len(set(names)) or form.peak > MAX_PEAK:
        return None
    env: dict[str, float] = {}
    for name in names:
        if not form.coefs[name]:
            return None
        rising = form.coefs[name] > 0
        side = lower if rising == wants_lower else upper
        if name not in side:
            return None
        env[name] = side[name]
    value = as_function(node, features, "<bound>")(env)
    if type(value) not in (int, float) or not math.isfinite(value):
        return None
    return float(value)
