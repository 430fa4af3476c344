"""Conditions that are an ``and`` of comparisons with constants and *ratio* comparisons, so the
engine can test them in compiled code instead of calling the expression.

A ratio comparison compares a feature with another divided by a constant: ``spend_24h >= spend_30d
/ 2``, ``buys > views_24h / 3`` (or the quotient first: ``views_24h / 3 < buys``). Half of the
1,000 selective benchmark tags that are not a plain ``and`` of comparisons with constants
(``CompiledExpr.conjunction``) are ``purchases_30d >= 3 and spend_24h >= spend_30d / 2``, and
calling the expression (its helpers, ~4,000 instructions) was most of their evaluation
(benchmarks/RULES.md). ``ratio_conjunction_of`` finds the shape on the compiler's rewritten tree
(``__ts_ge(a, __ts_div(b, 2))``); streams/engine/conditions.py tests it for plain finite numbers
and leaves anything else (None, a string, an int beyond 2**53) to the expression.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Collection
from dataclasses import dataclass

from .expr_atoms import Atom, and_terms, single_atom
from .expr_values import PREFIX

EXACT = 9_007_199_254_740_992
"""Ints up to this (2 ** 53) are floats exactly."""

_FLIPPED = {"ge": "le", "gt": "lt", "le": "ge", "lt": "gt"}
"""``a OP b`` is ``b FLIPPED[OP] a``."""


@dataclass(frozen=True)
class Ratio:
    """``left OP right / divisor``, ``OP`` one of ``ge``, ``gt``, ``le``, ``lt``; ``divisor`` a
    finite, non-zero number (an int within ``±EXACT``)."""

    left: str
    op: str
    right: str
    divisor: float


def ratio_conjunction_of(body: ast.expr, features: Collection[str]) -> tuple[tuple[Atom, ...],
                                                                            tuple[Ratio, ...]] | None:
    """The comparisons with constants and the ratio comparisons ``body`` is exactly the ``and`` of,
    when there is at least one ratio among them (else None: ``conjunction_of`` or opaque)."""
    known = frozenset(features)
    terms = and_terms(body) if isinstance(body, ast.BoolOp) else [body]
    atoms: list[Atom] = []
    ratios: list[Ratio] = []
    for term in terms:
        atom = single_atom(term, known)
        if atom is not None:
            atoms.append(atom)
            continue
        ratio = _ratio(term, known)
        if ratio is None:
            return None
        ratios.append(ratio)
    return (tuple(atoms), tuple(ratios)) if ratios else None


def _ratio(node: ast.expr, features: frozenset[str]) -> Ratio | None:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 2
            and not node.keywords and node.func.id.startswith(PREFIX)):
        return None
    op = node.func.id[len(PREFIX):]
    if op not in _FLIPPED:
        return None
    a, b = node.args
    if isinstance(a, ast.Name) and a.id in features:
        quotient = _quotient(b, features)
        return None if quotient is None else Ratio(a.id, op, *quotient)
    if isinstance(b, ast.Name) and b.id in features:
        quotient = _quotient(a, features)
        return None if quotient is None else Ratio(b.id, _FLIPPED[op], *quotient)
    return None


def _quotient(node: ast.expr, features: frozenset[str]) -> tuple[str, float] | None:
    """``(name, divisor)`` for ``__ts_div(name, constant)`` with a usable divisor."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == PREFIX + "div"
            and len(node.args) == 2 and not node.keywords):
        return None
    name, constant = node.args
    if not (isinstance(name, ast.Name) and name.id in features and isinstance(constant, ast.Constant)):
        return None
    k = constant.value
    if type(k) is int and 0 < abs(k) <= EXACT:
        return name.id, float(k)
    if type(k) is float and math.isfinite(k) and k != 0.0:
        return name.id, k
    return None
