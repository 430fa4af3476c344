"""Rule expressions in the Rust core (``native/src/expr/``, ``tagstream_core.NativeExpr``) against
``CompiledExpr.__call__`` (``tag_rules/expr_values.py``'s helpers): random expressions of the whole
language (arithmetic, chained comparisons, ``in``, ``and``/``or``/``if``, every function) over random
environments of numbers, bools, None, strings and lists give the same value of the same type, or,
where Python would need an integer past 64 bits or ``round`` of a float to tens, NotImplementedError.

A piece of the native engine (issue 9); the core must be built (``python -m
streams.tools.build_native``, which deploy/local/bootstrap.sh runs): without it these tests fail
rather than skip."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from streams.engine import native_core
from tag_rules.expr import CompiledExpr, ExprError, compile_expr
from tag_rules.expr_tree import tree_of

NAMES = ("a", "b", "c", "s", "t", "xs")
REFUSALS = ("past 64 bits", "past 2**53", "to tens")


def core() -> Any:
    assert native_core.CORE is not None, (f"{native_core.CORE_REASON}: run `python -m streams.tools.build_native` "
                                          "(deploy/local/bootstrap.sh does)")
    return native_core.CORE


def typed(x: Any) -> Any:
    if isinstance(x, float):
        return ("float", repr(x))  # nan == nan, -0.0 != 0.0
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, tuple(typed(v) for v in x))
    return (type(x).__name__, x)


NUMBERS = ("0", "1", "2", "3", "-1", "7", "10", "64", "100", "0.5", "2.5", "-2.25", "1e-3", "3.0", "0.0", "1e12",
           "1e300", "2 ** 62", "10 ** 18")
LEAVES = (*NUMBERS, '"x"', '"ab"', '""', '"shoes"', "null", "true", "false", "None", "True")
FUNCS = ("min", "max", "abs", "round", "len", "coalesce", "seconds", "minutes", "hours", "days")


def expr(rng: random.Random, depth: int) -> str:
    if depth <= 0 or rng.random() < 0.25:
        return rng.choice(NAMES) if rng.random() < 0.6 else rng.choice(LEAVES)
    d = depth - 1
    kind = rng.randrange(9)
    if kind == 0:
        return f"({expr(rng, d)} {rng.choice(('+', '-', '*', '/', '//', '%', '**'))} {expr(rng, d)})"
    if kind == 1:
        n = rng.choice((1, 1, 2))
        ops = [rng.choice(("<", "<=", ">", ">=", "==", "!=", "in", "not in")) for _ in range(n)]
        parts = [expr(rng, d)]
        for op in ops:
            parts += [op, expr(rng, d)]
        return "(" + " ".join(parts) + ")"
    if kind == 2:
        return f"({expr(rng, d)} {rng.choice(('and', 'or'))} {expr(rng, d)})"
    if kind == 3:
        return f"(not {expr(rng, d)})" if rng.random() < 0.5 else f"({rng.choice(('-', '+'))}{expr(rng, d)})"
    if kind == 4:
        return f"({expr(rng, d)} if {expr(rng, d)} else {expr(rng, d)})"
    if kind == 5:
        items = ", ".join(expr(rng, d) for _ in range(rng.randint(0, 3)))
        return f"({items},)" if rng.random() < 0.5 else f"[{items}]"
    fn = rng.choice(FUNCS)
    if fn in ("min", "max", "coalesce"):
        args = [expr(rng, d) for _ in range(rng.randint(1, 3))]
    elif fn == "round":
        args = [expr(rng, d)] + ([rng.choice(("0", "1", "2", "-1", "-2", "null", "7", "c", "true"))]
                                 if rng.random() < 0.6 else [])
    else:
        args = [expr(rng, d)]
    return f"{fn}({', '.join(args)})"


def env(rng: random.Random) -> dict[str, Any]:
    numbers = (0, 1, -1, 2, 3, 7, -7, 10, 2 ** 40, -2 ** 62, 2 ** 53 + 1, 0.0, -0.0, 0.5, -2.5, 0.1, 1e300, 3.0,
               1e-9, True, False, None)
    strings = ("", "x", "ab", "shoes", "sho", "a'b", None, 3)
    out: dict[str, Any] = {n: rng.choice(numbers) for n in ("a", "b", "c")}
    out.update({n: rng.choice(strings) for n in ("s", "t")})
    out["xs"] = rng.choice((None, [], ["x"], ["ab", "shoes"], ["x", "x", "sho"]))
    for n in list(out):
        if rng.random() < 0.05:
            del out[n]  # a missing name reads as None
    return out


def compiled(source: str) -> CompiledExpr | None:
    try:
        return compile_expr(source, names=NAMES)
    except ExprError:
        return None  # a constant that can never work (1 / 0, "a" * 3): the compiler refuses it


def test_native_expressions_give_pythons_values_on_random_expressions() -> None:
    rng = random.Random(20261207)
    checked = refused = 0
    for _ in range(6_000):
        source = expr(rng, rng.randint(1, 4))
        ce = compiled(source)
        if ce is None:
            continue
        try:
            native = core().NativeExpr(tree_of(ce))
        except NotImplementedError as exc:  # a constant past 64 bits
            assert "past 64 bits" in str(exc), source
            refused += 1
            continue
        for _ in range(8):
            e = env(rng)
            want = ce(e)
            try:
                got = native(e)
            except NotImplementedError as exc:
                assert any(r in str(exc) for r in REFUSALS), (source, e, exc)
                refused += 1
                continue
            assert typed(got) == typed(want), (source, e)
            checked += 1
    assert checked > 30_000
    assert refused < checked / 20


@pytest.mark.parametrize(("source", "env", "want"), [
    ("a < b < c", {"a": 1, "b": 2, "c": 2}, False),
    ("a // b", {"a": -7, "b": 2}, -4),
    ("a % b", {"a": -7, "b": 2}, 1),
    ("a % b", {"a": 7.5, "b": -2}, -0.5),
    ("a // b", {"a": 7.5, "b": -2}, -4.0),
    ("a ** b", {"a": -8.0, "b": 0.5}, None),
    ("a ** b", {"a": 2, "b": -1}, 0.5),
    ("a ** b", {"a": 1e12, "b": 64}, None),
    ("round(a)", {"a": 2.5}, 2),
    ("round(a, -1)", {"a": 25}, 20),
    ("round(a, 2)", {"a": 0.125}, 0.12),
    ("s in xs", {"s": "x", "xs": ["x"]}, True),
    ("s in t", {"s": "sho", "t": "shoes"}, True),
    ("a in t", {"a": 1, "t": "shoes"}, False),
    ("max(xs)", {"xs": ["ab", "x"]}, "x"),
    ("min(a, s)", {"a": 1, "s": "x"}, None),
    ("a == b", {"a": True, "b": 1.0}, True),
    ("a and b or c", {"a": 0, "b": 1, "c": "z"}, "z"),
    ("len(s)", {"s": "héllo"}, 5),
    ("days(a)", {"a": 1.5}, 129600.0),
    ("a + b", {"a": True, "b": 1}, None),
])
def test_native_expression_examples(source: str, env: dict[str, Any], want: Any) -> None:
    ce = compile_expr(source, names=NAMES)
    assert typed(ce(env)) == typed(want)
    assert typed(core().NativeExpr(tree_of(ce))(env)) == typed(want)


def test_what_needs_a_big_integer_is_refused_not_wrapped() -> None:
    ce = compile_expr("a * b", names=NAMES)
    assert ce({"a": 2 ** 62, "b": 4}) == 2 ** 64
    with pytest.raises(NotImplementedError, match="past 64 bits"):
        core().NativeExpr(tree_of(ce))({"a": 2 ** 62, "b": 4})
    assert math.isinf(core().NativeExpr(tree_of(ce))({"a": 1e300, "b": 1e300}))
