"""The safe rule expression compiler (tag_rules.expr) against hostile input: what it refuses, with
clear errors and positions, quickly; and property tests: random text only raises ExprError, and
evaluating a compiled expression never raises."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tag_rules.expr import MAX_LENGTH, ExprError, compile_expr

from .expr_support import NAMES, comp

# ---------------------------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(("src", "message", "col"), [
    ("__import__('os')", "names starting with '_' are not allowed", 1),
    ("().__class__.__bases__[0].__subclasses__()", "calling this is not allowed", 1),
    ("a.b.c", "attribute access", 1),
    ("1 + a.b", "attribute access", 5),
    ("x[0]", "indexing", 1),
    ("a[1:2]", "indexing", 1),
    ("lambda: 1", "lambda is not allowed", 1),
    ("[x for x in y]", "comprehensions are not allowed", 1),
    ("(x for x in y)", "generator expressions are not allowed", 1),
    ('f"{x}"', "f-strings are not allowed", 1),
    ("(y := 1)", r"assignment expressions \(:=\) are not allowed", 2),
    ("open('f')", "function 'open' is not allowed; available functions: abs, coalesce", 1),
    ("eval('1')", "function 'eval' is not allowed", 1),
    ("getattr(a, 'b')", "function 'getattr' is not allowed", 1),
    ("_secret", "names starting with '_' are not allowed", 1),
    ("a + _b", "names starting with '_' are not allowed", 5),
    ("10**10**10", "this power is too large", 1),
    ("a + (2 ** 1000)", "this power is too large", 6),
    ('"a" * 10**9', "arithmetic needs numbers", 1),
    ('"a" + "b"', "arithmetic needs numbers", 1),
    ("1 / 0", "division by zero", 1),
    ("days('x')", r"days\(\) cannot be applied", 1),
    ("spnd_30d > 1", "unknown name 'spnd_30d'; did you mean 'spend_30d'\\? known: a, amount", 1),
    ("zzz", "unknown name 'zzz'; known: ", 1),
    ("a | b", "the operator '\\|' is not allowed; use 'or'", 1),
    ("a & b", "use 'and'", 1),
    ("a ^ b", "the operator '\\^' is not allowed", 1),
    ("a << 1", "the operator '<<' is not allowed", 1),
    ("~a", "'~' is not allowed", 1),
    ("a is None", "'is' comparisons are not allowed", 1),
    ("a is not None", "'is' comparisons are not allowed", 1),
    ("{1: 2}", "dict literals are not allowed", 1),
    ("a in {1, 2}", "set literals are not allowed", 6),
    ("min(*a)", "star unpacking", 5),
    ("min(a, key=b)", "keyword arguments are not allowed", 8),
    ("min(**a)", "keyword arguments are not allowed", 5),
    ("round(1, 2, 3)", r"round\(\) takes 1 or 2 arguments, got 3", 1),
    ("days()", r"days\(\) takes 1 argument, got 0", 1),
    ("abs(1, 2)", r"abs\(\) takes 1 argument, got 2", 1),
    ("min()", r"min\(\) takes at least 1 argument, got 0", 1),
    ("min", "'min' is a function", 1),
    ("(a)(1)", "function 'a' is not allowed", 2),
    ("1j", "complex numbers are not allowed", 1),
    ("b'x'", "bytes literals are not allowed", 1),
    ("...", "is not allowed", 1),
    ("'" + "x" * 300 + "'", "string literal is too long", 1),
    ("a +", "invalid when expression: invalid syntax", None),
    ("a) or (b", "invalid when expression", 2),
    ("a = 1", "invalid when expression", None),
    ("", "empty", None),
    ("a\x00", "null bytes", None),
    ("x" * (MAX_LENGTH + 1), "too long", None),
    ("a+" * 1000 + "a", "too long", None),
    ("[" * 300 + "]" * 300, "nested too deeply", None),
    ("[" * 60 + "]" * 60, "nested too deeply", None),
    ("not " * 450 + "a", "nested too deeply", None),
    ("-" * 1999 + "a", "nested too deeply", None),
    ("+".join(["a"] * 600), "too", None),
    ("(" + "a," * 600 + ")", "too complex", None),
])
def test_rejected(src: str, message: str, col: int | None) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ExprError, match=message) as info:
        comp(src, kind="when")
    assert time.perf_counter() - t0 < 1.0
    err = info.value
    assert err.expr == src
    if col is not None:
        assert (err.line, err.col) == (1, col)
        assert str(err).startswith(f"line 1 col {col}: ")


def test_error_position_in_later_line_and_unicode() -> None:
    with pytest.raises(ExprError) as info:
        comp("a >= 1\n and 'é' in b.c")
    assert (info.value.line, info.value.col) == (2, 13)
    assert str(info.value) == "line 2 col 13: attribute access (a.b) is not allowed"


def test_error_without_position_str() -> None:
    err = ExprError("boom")
    assert str(err) == "boom"
    assert err.line is None and err.col is None


def test_non_string_source() -> None:
    with pytest.raises(ExprError, match="must be a string"):
        compile_expr(5, names=NAMES)  # type: ignore[arg-type]


def test_deep_parentheses_do_not_crash() -> None:
    # Redundant parentheses create no tree nodes; either outcome is fine as long as it is quick and clean.
    src = "(" * 200 + "1" + ")" * 200
    with contextlib.suppress(ExprError):
        assert comp(src)({}) == 1
    with pytest.raises(ExprError):
        comp("not " * 1000 + "x")


def test_names_limit_listing() -> None:
    many = [f"feature_{i:03d}" for i in range(50)]
    with pytest.raises(ExprError) as info:
        compile_expr("featur_001 > 1", names=many)
    msg = info.value.message
    assert "did you mean 'feature_001'?" in msg
    assert "(30 more)" in msg
    assert "feature_019" in msg and "feature_020" not in msg


def test_helpers_not_reachable() -> None:
    with pytest.raises(ExprError):
        comp("__ts_lt(1, 2)")
    with pytest.raises(ExprError):
        comp("__builtins__")


def test_compiled_expr_is_hashable() -> None:
    e = comp("a > 1")
    assert hash(e) == hash(comp("a > 1"))


# ------------------------------------------------------------------------------------------- property tests


@settings(max_examples=300, deadline=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_only_raises_expr_error(src: str) -> None:
    try:
        e = comp(src)
    except ExprError:
        return
    e({})


_ALPHABET = "ab()[]+-*/%<>=!.,'\"_ 019:notandorifelsein\n~|&^@{}lambda days min len x\\#"


@settings(max_examples=300, deadline=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=_ALPHABET, max_size=200))
def test_random_syntaxish_text_only_raises_expr_error(src: str) -> None:
    try:
        e = comp(src)
    except ExprError:
        return
    e({"a": 1, "b": "x"})


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
    st.lists(st.text(max_size=3), max_size=3),
)


_LEAVES = st.sampled_from(["a", "b", "c", "s", "items", "0", "1", "-1", "2.5", "1e308", "64", "100",
                           '"x"', '""', "null", "true", '("x", "y")', '["a", 1]', "days(1)"])


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "<", "<=", ">", ">=",
                                                  "==", "!=", "in", "not in", "and", "or"]), children)
    return st.one_of(
        binary.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        children.map(lambda x: f"(not {x})"),
        children.map(lambda x: f"(-{x})"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        st.tuples(children, children).map(lambda t: f"({t[0]} < {t[1]} <= {t[0]})"),
        st.tuples(st.sampled_from(["min", "max", "coalesce"]), st.lists(children, min_size=1, max_size=3))
        .map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(st.sampled_from(["abs", "round", "len", "seconds", "minutes", "hours", "days"]), children)
        .map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(children, children).map(lambda t: f"round({t[0]}, {t[1]})"),
        st.lists(children, max_size=3).map(lambda xs: f"min([{', '.join(xs)}])"),
    )


EXPRS = st.recursive(_LEAVES, _combine, max_leaves=12)


@settings(max_examples=500, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRS, st.fixed_dictionaries({k: VALUES for k in ["a", "b", "c", "s", "items"]}))
def test_evaluation_never_raises(src: str, env: dict[str, Any]) -> None:
    try:
        e = compile_expr(src, names=["a", "b", "c", "s", "items"])
    except ExprError:
        return  # e.g. a constant sub-expression that can never work
    t0 = time.perf_counter()
    e(env)
    assert time.perf_counter() - t0 < 0.5
