"""Why a condition has the value it has: its sub-expressions, each with its value.

Used to report a failing rule test (``tagstream rules test``): for ``a >= 1 and (b < 2 or c)``
it lists the whole condition, ``a >= 1``, ``b < 2 or c``, ``b < 2`` and ``c`` with their values
for one customer. Each sub-expression is compiled and evaluated exactly like a rule (the same
safe compiler), so what is shown is what the engine computes. Not on the hot path.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass

from .expr import MAX_DEPTH, CompiledExpr, ExprError, compile_expr

_SHOWN = (ast.BoolOp, ast.Compare, ast.UnaryOp, ast.IfExp, ast.Call, ast.BinOp)


@dataclass(frozen=True)
class Part:
    """One sub-expression of a condition: its text, its value, and how deep it sits (0: the whole)."""

    text: str
    value: object
    depth: int


def explain(expr: CompiledExpr, values: Mapping[str, object]) -> list[Part]:
    """The sub-expressions of ``expr`` (pre-order: the whole first), evaluated with ``values``."""
    wrapped = "(\n" + expr.source + "\n)"  # multi-line rules parse inside parentheses
    try:
        tree = ast.parse(wrapped, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # compiled once, so not expected
        return [Part(expr.source, expr(values), 0)]
    parts: list[Part] = []
    _walk(tree.body, wrapped, expr, values, 0, parts)
    return parts or [Part(expr.source, expr(values), 0)]


def _walk(node: ast.expr, wrapped: str, expr: CompiledExpr, values: Mapping[str, object], depth: int,
          out: list[Part]) -> None:
    if depth > MAX_DEPTH:
        return
    child_depth = depth
    if isinstance(node, _SHOWN):
        text = ast.get_source_segment(wrapped, node)
        part = _compile(text, expr) if text else None
        if text and part is not None and part.names:  # constants (days(30)) explain nothing
            out.append(Part(" ".join(text.split()), part(values), depth))
            child_depth = depth + 1
    for child in _children(node):
        _walk(child, wrapped, expr, values, child_depth, out)


def _children(node: ast.expr) -> list[ast.expr]:
    """The operands worth showing: the parts of and/or/not, comparisons and conditionals (not
    names or constants, whose values the feature list already shows)."""
    if isinstance(node, ast.BoolOp):
        return list(node.values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return [node.operand]
    if isinstance(node, ast.IfExp):
        return [node.test, node.body, node.orelse]
    if isinstance(node, ast.Compare):
        return [n for n in (node.left, *node.comparators) if isinstance(n, ast.BinOp | ast.Call | ast.BoolOp)]
    return []


def _compile(text: str, expr: CompiledExpr) -> CompiledExpr | None:
    try:
        # Time-since features are plain names here: a part such as ``since_x * 2`` may be shown.
        return compile_expr(text, names=expr.names, kind="when")
    except ExprError:
        return None
