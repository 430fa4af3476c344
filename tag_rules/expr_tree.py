"""A compiled expression as plain nested tuples, for evaluators outside Python (the Rust core's:
``native/src/expr/``). The tree is the checked, rewritten one ``CompiledExpr.function`` runs, so
both evaluate the same operations in the same order:

==========================================  ==================================================
``("const", value)``                        None, bool, int, float or str
``("name", name)``                          a field or feature (missing: None)
``("tuple", [items])``, ``("list", [items])`` a literal (``in`` and ``min``/``max`` take them)
``("and", [items])``, ``("or", [items])``   Python's: the deciding operand, not a bool
``("not", item)``                           a bool
``("if", test, then, else)``                ``then if test else else``
``("eq", a, b)``, ``("ne", a, b)``          Python's ``==``/``!=``
``("call", helper, [args])``                a helper of :mod:`tag_rules.expr_values` by its name
                                            without ``__ts_``: ``lt le gt ge in not_in add sub mul
                                            div floordiv mod pow neg pos`` and ``f_min f_max f_abs
                                            f_round f_len f_coalesce f_seconds f_minutes f_hours
                                            f_days``
==========================================  ==================================================
"""

from __future__ import annotations

import ast
from typing import Any

from .expr import CompiledExpr
from .expr_values import PREFIX

Tree = tuple[Any, ...]


def tree_of(expr: CompiledExpr) -> Tree:
    """``expr``'s tree (see the module docstring)."""
    assert expr.body is not None, "a CompiledExpr made by compile_expr keeps its tree"
    return _node(expr.body)


def _node(node: ast.expr) -> Tree:
    if isinstance(node, ast.Constant):
        return ("const", node.value)
    if isinstance(node, ast.Name):
        return ("name", node.id)
    if isinstance(node, ast.Tuple | ast.List):
        return ("tuple" if isinstance(node, ast.Tuple) else "list", [_node(e) for e in node.elts])
    if isinstance(node, ast.BoolOp):
        return ("and" if isinstance(node.op, ast.And) else "or", [_node(v) for v in node.values])
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ("not", _node(node.operand))
    if isinstance(node, ast.IfExp):
        return ("if", _node(node.test), _node(node.body), _node(node.orelse))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq | ast.NotEq):
        return ("eq" if isinstance(node.ops[0], ast.Eq) else "ne", _node(node.left), _node(node.comparators[0]))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith(PREFIX):
        return ("call", node.func.id[len(PREFIX):], [_node(a) for a in node.args])
    raise ValueError(f"not a node of a checked expression: {ast.dump(node)}")  # pragma: no cover - compiler's
