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

Constant sub-expressions (``days(30)``, ``2 ** 10``) are folded at compile time; a constant that could never
work (``10 ** 10 ** 10``, ``1 / 0``, ``"a" * 3``, ``days("x")``, ``1e308 * 10``) is a compile-time error, as is
an integer constant over 10**20 (:data:`MAX_INT`) and a constant ``seconds/minutes/hours/days(n)`` over 100
years (:data:`MAX_TIME_S`).

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
import difflib
import math
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

from .expr_syntax import FORBIDDEN, OP_SYMBOL, ParseFailure, char_col, parse, source_text
from .expr_values import (
    BINOPS,
    DURATION_FUNCTIONS,
    FUNCTIONS,
    HELPERS,
    MAX_EXPONENT,
    MAX_POW_BASE,
    ORDER_OPS,
    PREFIX,
    UNARY,
    is_num,
)
from .names import describe_non_ascii

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
MAX_INT = 10**20
"""Largest absolute value of an integer constant, written or folded (20 digits; 2**64 fits)."""
MAX_TIME_S = 100 * 365 * 86_400
"""Largest absolute time constant in seconds (100 years, ``days(36500)``): a time-since threshold or a
constant ``seconds/minutes/hours/days(n)``. Due times then stay far inside 64 bits."""
MAX_NAMES_LISTED = 20

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
    _code: CodeType | None = field(default=None, repr=False, compare=False)

    def __call__(self, env: Mapping[str, object]) -> object:
        """Evaluate against ``env``; names missing from it read as None. Never raises for data values."""
        code: Any = self._code  # validated AST, compiled once
        try:
            return eval(code, HELPERS, env)
        except NameError:
            # Rare path: keep the hot path a plain lookup and only pay for defaults when a name is missing.
            return eval(code, HELPERS, _Defaulting(env))


class _Defaulting(Mapping[str, object]):
    """Read-only view of an env where missing names are None."""

    __slots__ = ("_env",)

    def __init__(self, env: Mapping[str, object]) -> None:
        self._env = env

    def __getitem__(self, key: str) -> object:
        if key.startswith("_"):  # let helper lookups fall through to the globals
            raise KeyError(key)
        return self._env.get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def compile_expr(source: str, *, names: Mapping[str, str] | Collection[str], kind: str = "expression",
                 threshold_names: Collection[str] = (), filename: str = "<rule>") -> CompiledExpr:
    """Validate and compile ``source``.

    ``names`` are the names the expression may read (a mapping's keys are used). ``threshold_names`` are
    time-since features (also readable) that may only be compared directly with constants; see
    :attr:`CompiledExpr.thresholds`. ``kind`` ("when", "where") only appears in error messages.
    Raises :class:`ExprError` for anything that is not a valid, allowed expression.
    """
    return _Compiler(source, names, kind, threshold_names, filename).run()


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
        self.check_shape(tree)
        body = self.rewrite(tree.body)
        for name in self.threshold_uses:
            if id(name) not in self.sanctioned:
                raise self.error(
                    f"'{name.id}' is a time-since feature: compare it directly with a constant (for example "
                    f"{name.id} >= days(30)) so tagstream can compute when the tag changes", name)
        expr = ast.Expression(body)
        ast.fix_missing_locations(expr)
        try:
            code = compile(expr, self.filename, "eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:  # pragma: no cover - defensive
            raise ExprError(f"cannot compile the {self.what}: {exc}", expr=src,
                            filename=self.filename) from None
        return CompiledExpr(src, frozenset(self.used),
                            {k: tuple(sorted(v)) for k, v in self.thresholds.items()}, code)

    def check_shape(self, tree: ast.Expression) -> None:
        """Depth and size limits, walked iteratively: hostile nesting must not hit the recursion limit."""
        count = 0
        stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
        while stack:
            node, depth = stack.pop()
            if isinstance(node, ast.expr_context | ast.operator | ast.unaryop | ast.cmpop | ast.boolop):
                continue
            count += 1
            if depth > MAX_DEPTH:
                raise self.error(f"the {self.what} is nested too deeply (maximum depth "
                                 f"{MAX_DEPTH})", node)
            if count > MAX_NODES:
                raise self.error(f"the {self.what} is too complex (more than {MAX_NODES} parts)",
                                 node)
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))

    # -- rewrite: validation, constant folding, threshold checks and helper calls in one recursive pass
    # (depth is bounded by check_shape, so recursion is safe)

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
            self.check_number(v, node, written=True)
            return ast.Constant(v)
        what = {bytes: "bytes literals", complex: "complex numbers"}.get(type(v), f"'{v!r}'")
        raise self.error(f"{what} are not allowed" if what != f"'{v!r}'" else f"{what} is not allowed", node)

    def check_number(self, v: object, node: ast.expr, written: bool = False) -> None:
        """Constants are finite, and integers at most MAX_INT: no inf, nan or giant integers."""
        if type(v) is float and not math.isfinite(v):
            raise self.error("this number is too large (it overflows to infinity; the largest is about 1.8e308)"
                             if written else "this constant expression overflows (the result is not a finite "
                             "number)", node)
        if type(v) is int and abs(v) > MAX_INT:
            what = "integer literal" if written else "integer constant"
            raise self.error(f"this {what} is too large (about {v.bit_length() * 0.30103:.0f} digits; the "
                             f"maximum is 10**20); write a float such as 1e25 for a larger number", node)

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
        raise self.error(self.unknown(f"unknown name '{ident}'", ident, self.known), node)

    def unknown(self, head: str, ident: str, known: Collection[str], label: str = "known") -> str:
        close = difflib.get_close_matches(ident, sorted(known), n=1, cutoff=0.6)
        msg = head + (f"; did you mean '{close[0]}'?" if close else "")
        listed = sorted(known)
        if not listed:
            return msg + f" (this {self.what} cannot read any names)"
        more = f", ... ({len(listed) - MAX_NAMES_LISTED} more)" if len(listed) > MAX_NAMES_LISTED else ""
        return msg + f"{' ' if close else '; '}{label}: {', '.join(listed[:MAX_NAMES_LISTED])}{more}"

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
            raise self.error(self.unknown(f"function '{fname}' is not allowed", fname, FUNCTIONS,
                                          "available functions"), func)
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
                    self.check_time(v, other, f"'{operand.id}' is compared with")
                    values.append(float(v))
                elif not (v is None and isinstance(op, ast.Eq | ast.NotEq)):
                    break  # (x == null is fine: it does not change with time)
            else:
                self.sanctioned.add(id(operand))
                self.thresholds.setdefault(operand.id, set()).update(values)

    def check_time(self, v: float, node: ast.expr, head: str) -> None:
        """Time constants (seconds) stay within MAX_TIME_S, so every due time fits in 64 bits."""
        if abs(v) > MAX_TIME_S:
            raise self.error(f"{head} {v:.6g} seconds, more than 100 years; the limit is days(36500) "
                             f"= {MAX_TIME_S} seconds", node)

    # -- helpers

    @staticmethod
    def helper(name: str, args: list[ast.expr]) -> ast.expr:
        return ast.Call(ast.Name(PREFIX + name, ast.Load()), args, [])

    def fold(self, new: ast.expr, orig: ast.expr) -> ast.expr:
        """Evaluate ``new`` now if it reads no names; reject constants that can never work."""
        for sub in ast.walk(new):
            if isinstance(sub, ast.Name) and not sub.id.startswith(PREFIX):
                return new
        expr = ast.Expression(ast.copy_location(new, orig))
        ast.fix_missing_locations(expr)
        try:
            value = eval(compile(expr, self.filename, "eval"), HELPERS, {})  # validated AST
        except Exception as exc:  # pragma: no cover - helpers do not raise; defensive
            raise self.error(f"cannot evaluate this constant expression: {exc}", orig) from None
        if value is None and isinstance(orig, ast.BinOp | ast.UnaryOp | ast.Call):
            self.explain_bad_constant(orig, new)
        self.check_number(value, orig)
        if (isinstance(orig, ast.Call) and isinstance(orig.func, ast.Name) and orig.func.id in DURATION_FUNCTIONS
                and is_num(value)):
            self.check_time(value, orig, f"{orig.func.id}() gives")
        if value is None or type(value) in (bool, int, float, str):
            return ast.Constant(value)
        return new  # e.g. a tuple from min/max: leave for evaluation

    def value_of(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        expr = ast.fix_missing_locations(ast.Expression(node))
        return eval(compile(expr, self.filename, "eval"), HELPERS, {})

    def explain_bad_constant(self, orig: ast.expr, new: ast.expr) -> None:
        args = [self.value_of(a) for a in new.args] if isinstance(new, ast.Call) else []
        if any(a is None for a in args):
            return  # None in, None out: a documented rule, not a mistake we can be sure of
        if isinstance(orig, ast.Call):
            fname = orig.func.id if isinstance(orig.func, ast.Name) else "?"
            if fname == "coalesce":
                return
            raise self.error(f"{fname}() cannot be applied to {', '.join(_short_repr(a) for a in args)}", orig)
        bad = [a for a in args if not is_num(a)]
        if bad:
            raise self.error(f"arithmetic needs numbers, not {type(bad[0]).__name__} ({_short_repr(bad[0])})",
                             orig)
        if isinstance(orig, ast.BinOp) and isinstance(orig.op, ast.Pow):
            raise self.error(f"this power is too large (exponent at most {MAX_EXPONENT}, base at most "
                             f"{MAX_POW_BASE:.0e})", orig)
        if isinstance(orig, ast.BinOp) and isinstance(orig.op, ast.Div | ast.FloorDiv | ast.Mod):
            raise self.error("division by zero", orig)
        raise self.error("this constant expression has no value (overflow)", orig)
