"""The comparisons a condition is made of, so the engine can tell which tags an event may flip.

A condition such as ``spend_30d >= 500 and (purchases_7d == 0 or 2 <= views_24h < 10)`` is a
boolean combination (``and``/``or``/``not``) of *atoms*, each a feature compared with a constant
(or a bare feature, read for its truthiness). Its truth can only change when the truth of one
of its atoms changes, and ``spend_30d >= 500`` only changes when the value crosses 500. With
1,000 tags over 33 features, most tags an event's features feed are not crossed by it, so the
engine (streams/engine/tag_index.py) evaluates only the tags an atom of which flipped.

``atoms_of`` works on the compiler's rewritten tree (constants folded, ordering comparisons as
``__ts_<op>(a, b)`` calls, ``==``/``!=`` native), so an atom's truth is computed by the very
functions the compiled expression calls. Anything else (arithmetic on features, two features
compared, ``in``, function calls on features, ``if``/``else``) makes the condition opaque: None.
``monotone_of`` also accepts comparisons of linear forms (``buys >= views_24h / 3``: a direction
per feature, :mod:`tag_rules.expr_linear`) among the atoms.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from .expr_linear import Linear, implied_guards, linear_comparison
from .expr_values import HELPERS, PREFIX

_NATIVE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {ast.Eq: operator.eq, ast.NotEq: operator.ne}


@dataclass(frozen=True)
class Atom:
    """``name OP constant`` (or ``constant OP name`` when ``constant_first``), or with ``test``
    None the truthiness of the bare feature ``name``."""

    name: str
    test: Callable[[Any, Any], Any] | None
    constant: Any = None
    constant_first: bool = False
    negated: bool = False
    """Under an odd number of ``not``: the condition's truth moves *against* the atom's. With
    ``and``/``or`` the only other operators, a condition is monotone in its atoms' truth taken with
    this sign, which tells the engine which way a flip can move it (streams/engine/tag_index.py)."""

    def holds(self, value: Any) -> bool:
        """The atom's truth for the feature value ``value`` (what the condition sees)."""
        if self.test is None:
            return bool(value)
        return bool(self.test(self.constant, value) if self.constant_first else self.test(value, self.constant))


def atoms_of(body: ast.expr, features: Collection[str]) -> tuple[Atom, ...] | None:
    """The atoms of the rewritten condition ``body`` over ``features``, or None when it is not a
    boolean combination of atoms. A condition with no feature at all (``true``) has none."""
    out: list[Atom] = []
    return tuple(out) if _collect(body, frozenset(features), out, False) else None


@dataclass(frozen=True)
class Monotone:
    """A condition made of comparisons with constants (``atoms``) and of linear forms (``linear``:
    :mod:`tag_rules.expr_linear`) with ``and``/``or``/``not``, at least one of them linear."""

    atoms: tuple[Atom, ...]
    linear: tuple[Linear, ...]


def monotone_of(body: ast.expr, features: Collection[str]) -> Monotone | None:
    """``body`` as a ``Monotone`` condition (``views_24h >= 20 and buys >= views_24h / 3``), or None
    when it is not one (opaque, or only comparisons with constants: ``atoms_of``)."""
    out: list[Atom] = []
    linear: list[Linear] = []
    if not _collect(body, frozenset(features), out, False, linear) or not linear:
        return None
    return Monotone(tuple(out), tuple(linear))


def guards_of(body: ast.expr, features: Collection[str]) -> tuple[Atom, ...]:
    """The terms of a top-level ``and`` that are one comparison (or bare feature) each: the
    condition is false whenever one of them is. ``b >= 40 and a >= b / 4`` is not a combination of
    comparisons (``atoms_of`` gives None) but has the guard ``b >= 40``: the engine skips it for a
    customer who does not hold it while ``b`` is under 40. The comparisons its linear terms imply
    come after them (``a >= 10`` here: ``expr_linear.implied_guards``): they are on the features whose
    rise puts such a tag up for evaluation, and the tag index has checked those already
    (``flip_moves.LinearMoves``), so the terms of the ``and`` are the ones that still fail: with 1,000 narrow
    tags a tested guard failed at the second test in 7.3 of 9.2 checks per event."""
    out: list[Atom] = []
    known = frozenset(features)
    _guards(body, known, out)
    implied = [Atom(name, test, constant) for name, test, constant in implied_guards(body, tuple(out), known)]
    return (*out, *implied)


def conjunction_of(body: ast.expr, features: Collection[str]) -> tuple[Atom, ...] | None:
    """The comparisons with constants ``body`` is the ``and`` of (or the one it is), or None when it is
    anything else: its outcome is True exactly when each holds (``Atom.holds``), so the engine can
    test them itself (streams/engine/guards.py) instead of calling the expression. A bare feature
    term is left out (its value, not a bool, would be the outcome), so is a negated comparison."""
    known = frozenset(features)
    terms = and_terms(body) if isinstance(body, ast.BoolOp) else [body]
    out: list[Atom] = []
    for term in terms:
        atom = single_atom(term, known)
        if atom is None:
            return None
        out.append(atom)
    return tuple(out) if out else None


def single_atom(term: ast.expr, features: frozenset[str]) -> Atom | None:
    """``term`` as one comparison with a constant (not a bare feature, not negated), or None."""
    if not isinstance(term, ast.Call | ast.Compare):
        return None
    one: list[Atom] = []
    if not _collect(term, features, one, False) or len(one) != 1 or one[0].test is None:
        return None
    return one[0]


def and_terms(node: ast.expr) -> list[ast.expr]:
    """The terms of nested ``and``s (``(a and b) and c``); a node that is not an ``and`` is not one."""
    if not (isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And)):
        return [ast.Constant(None)]  # an ``or``: not a conjunction (a Constant is no term of one)
    out: list[ast.expr] = []
    for term in node.values:
        out.extend(and_terms(term) if isinstance(term, ast.BoolOp) else [term])
    return out


def _guards(node: ast.expr, features: frozenset[str], out: list[Atom]) -> None:
    if not (isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And)):
        return
    for term in node.values:
        if isinstance(term, ast.BoolOp):
            _guards(term, features, out)  # (a and b) and c
        elif isinstance(term, ast.Name | ast.Call | ast.Compare):
            one: list[Atom] = []
            if _collect(term, features, one, False) and len(one) == 1:
                out.append(one[0])


def _collect(node: ast.expr, features: frozenset[str], out: list[Atom], negated: bool,
             linear: list[Linear] | None = None) -> bool:
    """Whether ``node`` is a boolean combination of comparisons with constants (into ``out``) and,
    when ``linear`` is given, of linear forms (into ``linear``)."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.BoolOp):
        return all(_collect(v, features, out, negated, linear) for v in node.values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return _collect(node.operand, features, out, not negated, linear)
    if isinstance(node, ast.Name):
        if node.id not in features:
            return False
        out.append(Atom(node.id, None, negated=negated))
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 2 and not node.keywords:
        fn = HELPERS.get(node.func.id) if node.func.id.startswith(PREFIX) else None
        return fn is not None and _comparison(fn, node.args[0], node.args[1], features, out, negated, linear)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _NATIVE:
        return _comparison(_NATIVE[type(node.ops[0])], node.left, node.comparators[0], features, out, negated,
                           linear)
    return False


def _comparison(fn: Callable[[Any, Any], Any], left: ast.expr, right: ast.expr, features: frozenset[str],
                out: list[Atom], negated: bool, linear: list[Linear] | None) -> bool:
    if fn not in _COMPARISONS:
        return False  # an arithmetic helper: opaque
    if isinstance(left, ast.Name) and left.id in features and isinstance(right, ast.Constant):
        out.append(Atom(left.id, fn, right.value, negated=negated))
        return True
    if isinstance(right, ast.Name) and right.id in features and isinstance(left, ast.Constant):
        out.append(Atom(right.id, fn, left.value, constant_first=True, negated=negated))
        return True
    if linear is not None:
        form = linear_comparison(fn, left, right, features, negated)
        if form is not None:
            linear.append(form)
            return True
    return False


_COMPARISONS = frozenset({*_NATIVE.values(), *(HELPERS[PREFIX + op] for op in ("lt", "le", "gt", "ge"))})
