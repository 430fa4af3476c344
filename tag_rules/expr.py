"""Safe, fast expressions for rule files: a tag's ``when`` and a feature's ``where``.

Expressions are a small, side-effect free subset of Python expression syntax::

    spend_30d >= 500 and orders_30d >= 3
    since_last_purchase >= days(30)
    "electronics" in top_categories
    amount > 100 and channel in ("web", "app")

Allowed: ``and``/``or``/``not``, ``+ - * / // % **`` (and unary ``-``/``+``), comparisons
``== != < <= > >= in``/``not in`` (chained like Python: ``days(1) <= x < days(7)``), ``a if c else b``,
names of known fields/features (written in ASCII), literals (str up to 256 characters, int up to 10**20,
finite float, ``true``/``false``/``null`` and ``True``/``False``/``None``), tuple/list literals, and calls of
``min max abs round len coalesce seconds minutes hours days`` with positional arguments. Everything else
(attributes, subscripts, lambdas, comprehensions, f-strings, ``:=``, ``is``, bit operators, other functions,
names starting with ``_``, non-ASCII names) is rejected at compile time with an :class:`ExprError` that
carries a 1-based line and column.

Semantics ("no value" is None; evaluation never raises for data values): see :mod:`tag_rules.expr_values`.

Constant sub-expressions (``days(30)``, ``2 ** 10``) are folded at compile time; a constant that could never
work (``10 ** 10 ** 10``, ``1 / 0``, ``"a" * 3``, ``days("x")``, ``1e308 * 10``) is a compile-time error, as is
one beyond the limits of :mod:`tag_rules.expr_constants` (integers up to 10**20, time values up to 100 years).

Time-since features (``threshold_names``, values in seconds) may only be compared directly with constants
(``since_last_purchase >= days(30)``), each at most 100 years; :attr:`CompiledExpr.thresholds` then lists
those constants so the runtime can schedule re-evaluation exactly when the tag can change with time alone.

Implementation: the source is parsed by :mod:`tag_rules.expr_syntax`; the validated AST is rewritten so that
ordering comparisons, arithmetic, ``in`` and calls become calls of the helpers in :mod:`tag_rules.expr_values`
(``__ts_lt(a, b)``...), compiled once with ``compile()`` and evaluated with
``eval(code, {"__builtins__": {}, **helpers}, env)``. User names can never start with ``_``, so they cannot
reach the helpers, and only whitelisted nodes and known names remain in the code.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .expr_atoms import Atom, Monotone, atoms_of, conjunction_of, guards_of, monotone_of
from .expr_constants import MAX_INT, MAX_TIME_S, bad_constant_problem, evaluate, number_problem, time_problem
from .expr_function import Defaults, Function, as_function
from .expr_ratio import Ratio, ratio_conjunction_of
from .expr_syntax import FORBIDDEN, OP_SYMBOL, ParseFailure, char_col, parse, shape_problem, source_text
from .expr_values import (
    BINOPS,
    DURATION_FUNCTIONS,
    FUNCTIONS,
    ORDER_OPS,
    PREFIX,
    UNARY,
    is_num,
)
from .names import describe_non_ascii, unknown_message

__all__ = ["FUNCTIONS", "MAX_DEPTH", "MAX_INT", "MAX_LENGTH", "MAX_NODES", "MAX_TIME_S", "CompiledExpr",
           "ExprError", "compile_expr"]

MAX_LENGTH = 2000
"""Maximum expression length in characters."""
MAX_DEPTH = 40
"""Maximum nesting depth of the expression tree."""
MAX_NODES = 500
"""Maximum number of expression nodes."""
MAX_STR = 256
"""Maximum length of a string literal."""

_CONSTANT_NAMES: dict[str, Any] = {"true": True, "false": False, "null": None}


class ExprError(Exception):
    """An expression that cannot be compiled. ``line``/``col`` are 1-based within the expression."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None, expr: str = "",
                 filename: str = "<rule>") -> None:
        self.message = message
        self.line = line
        self.col = col
        self.expr = expr
        self.filename = filename
        super().__init__(message)

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        if self.col is None:
            return f"line {self.line}: {self.message}"
        return f"line {self.line} col {self.col}: {self.message}"


@dataclass(frozen=True)
class CompiledExpr:
    """A compiled expression; call it with a mapping of names to values."""

    source: str
    names: frozenset[str]
    """Free names the expression reads."""
    thresholds: dict[str, tuple[float, ...]] = field(default_factory=dict, hash=False)
    """For each time-since name used: the sorted, distinct constants (seconds) it is compared with."""
    _fn: Function | None = field(default=None, repr=False, compare=False)
    """The expression as a function of its environment (:mod:`tag_rules.expr_function`)."""
    atoms: tuple[Atom, ...] | None = field(default=None, repr=False, compare=False, hash=False)
    """The comparisons of names with constants the expression is a boolean combination of
    (:mod:`tag_rules.expr_atoms`); None when it is not one."""
    guards: tuple[Atom, ...] = field(default=(), repr=False, compare=False, hash=False)
    """Comparisons the expression is an ``and`` of, with other terms: false when one of them is."""
    monotone: Monotone | None = field(default=None, repr=False, compare=False, hash=False)
    """When ``atoms`` is None: the comparisons with constants and of linear forms the expression is a
    boolean combination of (:mod:`tag_rules.expr_linear`), if it is one."""
    conjunction: tuple[Atom, ...] | None = field(default=None, repr=False, compare=False, hash=False)
    """The comparisons with constants the expression is exactly the ``and`` of (or the one it is), if it
    is one (``expr_atoms.conjunction_of``): true exactly when each holds."""
    ratio_conjunction: tuple[tuple[Atom, ...], tuple[Ratio, ...]] | None = field(
        default=None, repr=False, compare=False, hash=False)
    """The comparisons with constants and the ratio comparisons (``spend_24h >= spend_30d / 2``) the
    expression is exactly the ``and`` of, with at least one ratio (``expr_ratio.ratio_conjunction_of``)."""
    body: ast.expr | None = field(default=None, repr=False, compare=False, hash=False)
    """The checked, rewritten tree ``function`` was compiled from (helper calls ``__ts_<op>``, constants
    folded): what :mod:`tag_rules.expr_tree` hands to other evaluators (the Rust core's)."""

    @property
    def function(self) -> Function:
        """The expression as a plain function of an environment that has every name in ``names``
        (one raises KeyError on a missing one: ``__call__`` reads those as None). The tag engine
        calls it directly, its environments hold every feature a tag reads."""
        assert self._fn is not None
        return self._fn

    def __call__(self, env: Mapping[str, object]) -> object:
        """Evaluate against ``env``; names missing from it read as None. Never raises for data values."""
        fn: Any = self._fn  # validated AST, compiled once
        try:
            return fn(env)
        except KeyError:
            # Rare path: keep the hot path a plain lookup and only pay for defaults when a name is missing.
            return fn(Defaults(env))


def compile_expr(source: str, *, names: Mapping[str, str] | Collection[str], kind: str = "expression",
                 threshold_names: Collection[str] = (), filename: str = "<rule>") -> CompiledExpr:
    """Validate and compile ``source``.

    ``names`` are the names the expression may read (a mapping's keys are used). ``threshold_names`` are
    time-since features (also readable) that may only be compared directly with constants; see
    :attr:`CompiledExpr.thresholds`. ``kind`` ("when", "where") only appears in error messages.
    Raises :class:`ExprError` for anything that is not a valid, allowed expression.
    """
    return _Compiler(source, names, kind, threshold_names, filename).run()


class _Compiler:
    def __init__(self, source: Any, names: Mapping[str, str] | Collection[str], kind: str,
                 threshold_names: Collection[str], filename: str) -> None:
        self.source = source
        self.kind = kind
        self.what = "expression" if kind == "expression" else f"{kind} expression"
        self.filename = filename
        self.threshold_names = frozenset(threshold_names)
        self.known = frozenset(names.keys() if isinstance(names, Mapping) else names) | self.threshold_names
        self.lines: list[str] = []
        self.line_shift = 0  # 1 when the source was parsed wrapped in parentheses (multi-line expressions)
        self.used: set[str] = set()
        self.threshold_uses: list[ast.Name] = []
        self.sanctioned: set[int] = set()
        self.thresholds: dict[str, set[float]] = {}

    # -- errors

    def error(self, message: str, node: ast.AST | None = None) -> ExprError:
        line = col = None
        if node is not None and hasattr(node, "lineno"):
            line = max(1, min(node.lineno - self.line_shift, len(self.lines) or 1))
            text = self.lines[line - 1] if line - 1 < len(self.lines) else ""
            col = char_col(text, getattr(node, "col_offset", 0))
        src = self.source if isinstance(self.source, str) else ""
        return ExprError(message, line, col, src, self.filename)

    # -- pipeline

    def run(self) -> CompiledExpr:
        src = self.source
        if not isinstance(src, str):
            raise ExprError(f"the {self.what} must be a string, got {type(src).__name__}",
                            filename=self.filename)
        if not src.strip():
            raise ExprError(f"the {self.what} is empty", filename=self.filename)
        if len(src) > MAX_LENGTH:
            raise ExprError(f"the {self.what} is too long ({len(src)} characters; the maximum "
                            f"is {MAX_LENGTH})", expr=src, filename=self.filename)
        self.lines = re.split(r"\r\n|\r|\n", src)
        try:
            tree, self.line_shift = parse(src, self.lines, self.filename, MAX_DEPTH)
        except ParseFailure as exc:
            msg = (f"the {self.what} is nested too deeply (maximum depth {MAX_DEPTH})" if exc.too_deep
                   else f"invalid {self.what}: {exc.message}")
            raise ExprError(msg, exc.line, exc.col, src, self.filename) from None
        too_big = shape_problem(tree, MAX_DEPTH, MAX_NODES)
        if too_big:
            raise self.error(f"the {self.what} {too_big[1]}", too_big[0])
        body = self.rewrite(tree.body)
        for name in self.threshold_uses:
            if id(name) not in self.sanctioned:
                raise self.error(
                    f"'{name.id}' is a time-since feature: compare it directly with a constant (for example "
                    f"{name.id} >= days(30)) so tagstream can compute when the tag changes", name)
        ast.fix_missing_locations(body)
        try:
            fn = as_function(body, self.known, self.filename)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:  # pragma: no cover - defensive
            raise ExprError(f"cannot compile the {self.what}: {exc}", expr=src,
                            filename=self.filename) from None
        return CompiledExpr(src, frozenset(self.used),
                            {k: tuple(sorted(v)) for k, v in self.thresholds.items()}, fn,
                            atoms_of(body, self.known), guards_of(body, self.known),
                            monotone_of(body, self.known), conjunction_of(body, self.known),
                            ratio_conjunction_of(body, self.known), body)

    # -- rewrite: validation, constant folding, threshold checks and helper calls in one recursive pass
    # (depth is bounded by shape_problem, so recursion is safe)

    def rewrite(self, node: ast.expr) -> ast.expr:
        new = self._rewrite(node)
        return ast.copy_location(new, node)

    def _rewrite(self, node: ast.expr) -> ast.expr:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BoolOp):
            if not isinstance(node.op, ast.And | ast.Or):  # pragma: no cover - Python has only these two
                raise self.error("this boolean operator is not allowed", node)
            return self.fold(ast.BoolOp(node.op, [self.rewrite(v) for v in node.values]), node)
        if isinstance(node, ast.UnaryOp):
            operand = self.rewrite(node.operand)
            if isinstance(node.op, ast.Not):
                return self.fold(ast.UnaryOp(ast.Not(), operand), node)
            if type(node.op) in UNARY:
                return self.fold(self.helper(UNARY[type(node.op)][0], [operand]), node)
            raise self.error("the operator '~' is not allowed; use 'not' for negation", node)
        if isinstance(node, ast.BinOp):
            op = type(node.op)
            if op not in BINOPS:
                sym = OP_SYMBOL.get(op, op.__name__)
                hint = {ast.BitOr: "; use 'or'", ast.BitAnd: "; use 'and'"}.get(op, "")
                raise self.error(f"the operator '{sym}' is not allowed{hint}", node)
            left, right = self.rewrite(node.left), self.rewrite(node.right)
            return self.fold(self.helper(BINOPS[op][0], [left, right]), node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.IfExp):
            parts = [self.rewrite(node.test), self.rewrite(node.body), self.rewrite(node.orelse)]
            return self.fold(ast.IfExp(parts[0], parts[1], parts[2]), node)
        if isinstance(node, ast.Tuple | ast.List):
            elts = [self.rewrite(e) for e in node.elts]
            return ast.Tuple(elts, ast.Load()) if isinstance(node, ast.Tuple) else ast.List(elts, ast.Load())
        if isinstance(node, ast.Call):
            return self.call(node)
        msg = FORBIDDEN.get(type(node), f"{type(node).__name__} expressions are not allowed")
        raise self.error(msg, node)

    def constant(self, node: ast.Constant) -> ast.expr:
        v = node.value
        if isinstance(v, str):
            if len(v) > MAX_STR:
                raise self.error(f"string literal is too long ({len(v)} characters; the maximum is "
                                 f"{MAX_STR})", node)
            return ast.Constant(v)
        if v is None or type(v) in (bool, int, float):
            problem = number_problem(v, written=True)
            if problem:
                raise self.error(problem, node)
            return ast.Constant(v)
        what = {bytes: "bytes literals", complex: "complex numbers"}.get(type(v), f"'{v!r}'")
        raise self.error(f"{what} are not allowed" if what != f"'{v!r}'" else f"{what} is not allowed", node)

    def check_ascii(self, node: ast.Name) -> None:
        """Python NFKC-normalizes identifiers (a fullwidth ``s`` reads as ``s``): names must be written in ASCII."""
        text = source_text(self.lines, self.line_shift, node) or node.id
        if not (text.isascii() and node.id.isascii()):
            raise self.error(describe_non_ascii(text if not text.isascii() else node.id), node)

    def name(self, node: ast.Name) -> ast.expr:
        if not isinstance(node.ctx, ast.Load):  # pragma: no cover - eval mode only produces loads
            raise self.error("assignment is not allowed", node)
        self.check_ascii(node)
        ident = node.id
        if ident.startswith("_"):
            raise self.error(f"names starting with '_' are not allowed ('{ident}')", node)
        if ident in self.known:
            self.used.add(ident)
            if ident in self.threshold_names:
                self.threshold_uses.append(node)
            return node
        if ident in _CONSTANT_NAMES:
            return ast.Constant(_CONSTANT_NAMES[ident])
        if ident in FUNCTIONS:
            raise self.error(f"'{ident}' is a function; call it, for example {ident}(...)", node)
        raise self.error(unknown_message(f"unknown name '{ident}'", ident, self.known, self.what), node)

    def call(self, node: ast.Call) -> ast.expr:
        func = node.func
        if not isinstance(func, ast.Name):
            raise self.error("calling this is not allowed; only the functions " + ", ".join(FUNCTIONS)
                             + " can be called", node)
        self.check_ascii(func)
        fname = func.id
        if fname.startswith("_"):
            raise self.error(f"names starting with '_' are not allowed ('{fname}')", func)
        if fname not in FUNCTIONS:
            raise self.error(unknown_message(f"function '{fname}' is not allowed", fname, FUNCTIONS,
                                                  self.what, "available functions"), func)
        if node.keywords:
            raise self.error(f"keyword arguments are not allowed (in {fname}())", node.keywords[0]
                             if hasattr(node.keywords[0], "lineno") else node)
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.error(FORBIDDEN[ast.Starred], a)
        _, lo, hi = FUNCTIONS[fname]
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} or {hi}")
            plural = "" if lo == 1 and hi in (1, None) else "s"
            raise self.error(f"{fname}() takes {want} argument{plural}, got {n}", node)
        args = [self.rewrite(a) for a in node.args]
        return self.fold(self.helper("f_" + fname, args), node)

    def compare(self, node: ast.Compare) -> ast.expr:
        operands = [self.rewrite(node.left), *(self.rewrite(c) for c in node.comparators)]
        for op in node.ops:
            if isinstance(op, ast.Is | ast.IsNot):
                raise self.error("'is' comparisons are not allowed; use == or != (for example x == null)",
                                 node)
        self.check_thresholds(node.ops, operands)
        pairs: list[ast.expr] = []
        for i, op in enumerate(node.ops):
            a, b = operands[i], operands[i + 1]
            if type(op) in ORDER_OPS:
                pairs.append(self.helper(ORDER_OPS[type(op)][0], [a, b]))
            else:  # == and != never raise for our value types; keep them native for speed
                pairs.append(ast.Compare(a, [op], [b]))
        # a < b < c becomes lt(a, b) and lt(b, c): expressions are pure, so evaluating b twice is safe.
        result = pairs[0] if len(pairs) == 1 else ast.BoolOp(ast.And(), pairs)
        return self.fold(result, node)

    def check_thresholds(self, ops: list[ast.cmpop], operands: list[ast.expr]) -> None:
        for i, operand in enumerate(operands):
            if not (isinstance(operand, ast.Name) and operand.id in self.threshold_names):
                continue
            neighbours = []
            if i > 0:
                neighbours.append((ops[i - 1], operands[i - 1]))
            if i < len(ops):
                neighbours.append((ops[i], operands[i + 1]))
            values: list[float] = []
            for op, other in neighbours:
                if isinstance(op, ast.In | ast.NotIn) or not isinstance(other, ast.Constant):
                    break
                v = other.value
                if isinstance(v, int | float) and is_num(v) and not math.isnan(v):
                    problem = time_problem(v, f"'{operand.id}' is compared with")
                    if problem:
                        raise self.error(problem, other)
                    values.append(float(v))
                elif not (v is None and isinstance(op, ast.Eq | ast.NotEq)):
                    break  # (x == null is fine: it does not change with time)
            else:
                self.sanctioned.add(id(operand))
                self.thresholds.setdefault(operand.id, set()).update(values)

    # -- helpers

    @staticmethod
    def helper(name: str, args: list[ast.expr]) -> ast.expr:
        return ast.Call(ast.Name(PREFIX + name, ast.Load()), args, [])

    def fold(self, new: ast.expr, orig: ast.expr) -> ast.expr:
        """Evaluate ``new`` now if it reads no names; reject constants that can never work."""
        for sub in ast.walk(new):
            if isinstance(sub, ast.Name) and not sub.id.startswith(PREFIX):
                return new
        try:
            value = evaluate(ast.copy_location(new, orig), self.filename)  # validated AST
        except Exception as exc:  # pragma: no cover - helpers do not raise; defensive
            raise self.error(f"cannot evaluate this constant expression: {exc}", orig) from None
        problem = None
        if value is None and isinstance(orig, ast.BinOp | ast.UnaryOp | ast.Call):
            problem = bad_constant_problem(orig, new, self.filename)
        problem = problem or number_problem(value)
        if isinstance(orig, ast.Call) and isinstance(orig.func, ast.Name) and orig.func.id in DURATION_FUNCTIONS:
            problem = problem or (time_problem(value, f"{orig.func.id}() gives") if is_num(value) else None)
        if problem:
            raise self.error(problem, orig)
        if value is None or type(value) in (bool, int, float, str):
            return ast.Constant(value)
        return new  # e.g. a tuple from min/max: leave for evaluation
