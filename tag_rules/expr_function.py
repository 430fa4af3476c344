"""The checked, rewritten tree of an expression as a Python function of its environment.

``eval(code, HELPERS, env)`` set up a frame with ``env`` as its locals at every call: ~0.43 µs
for ``spend_30d >= 1000 and views_1h >= spend_30d / 4``, where calling a function that reads
``env["spend_30d"]`` takes ~0.28 µs. With 1,000 tags an event evaluates ~8 conditions
(benchmarks/RULES.md), so the expression is compiled once as ``lambda __ts_env: <body>`` with
every name it reads turned into ``__ts_env["name"]``. A name missing from ``env`` raises
KeyError there; ``CompiledExpr`` then calls it again with a mapping that gives None for it,
which is what the language says a missing name is (the expression has no side effects).
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Collection, Mapping
from typing import Any

from .expr_values import HELPERS, PREFIX

ENV = PREFIX + "env"
"""The function's one parameter (user names cannot start with "_")."""

Function = Callable[[Mapping[str, Any]], Any]


class _Reads(ast.NodeTransformer):
    def __init__(self, names: Collection[str]) -> None:
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id not in self.names:
            return node  # a helper (__ts_ge)
        read = ast.Subscript(ast.Name(ENV, ast.Load()), ast.Constant(node.id), ast.Load())
        return ast.copy_location(read, node)


def as_function(body: ast.expr, names: Collection[str], filename: str) -> Function:
    """``body`` (left untouched) as ``lambda __ts_env: body`` reading ``names`` from ``__ts_env``,
    with the rule helpers as its only globals (no builtins)."""
    reads = _Reads(names).visit(copy.deepcopy(body))
    args = ast.arguments(posonlyargs=[], args=[ast.arg(ENV)], kwonlyargs=[], kw_defaults=[], defaults=[])
    expr = ast.Expression(ast.Lambda(args, reads))
    ast.fix_missing_locations(expr)
    fn: Function = eval(compile(expr, filename, "eval"), HELPERS)
    return fn


class Defaults(dict[str, Any]):
    """An environment in which a missing name reads as None."""

    def __missing__(self, key: str) -> None:
        return None
