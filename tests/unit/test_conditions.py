"""Conditions the engine tests in compiled code (streams/engine/conditions.py): an ``and`` of
comparisons with constants and ratio comparisons (tag_rules/expr_ratio.py) gets the expression's
truth for any values, or leaves them to the expression."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.engine.conditions import FALSE, TRUE, UNKNOWN, RatioCondition
from tag_rules import compile_expr

NAMES = ("a", "b", "c")


def _shape(source: str) -> Any:
    got = compile_expr(source, names=NAMES).ratio_conjunction
    if got is None:
        return None
    atoms, ratios = got
    return [(x.name, x.constant) for x in atoms], [(r.left, r.op, r.right, r.divisor) for r in ratios]


@pytest.mark.parametrize(("source", "shape"), [
    ("a >= 3 and b >= c / 2", ([("a", 3)], [("b", "ge", "c", 2.0)])),
    ("c / 4 < b", ([], [("b", "gt", "c", 4.0)])),
    ("b <= c / -2.5 and a == 1 and c > 0", ([("a", 1), ("c", 0)], [("b", "le", "c", -2.5)])),
    ("(a > 1 and b > c / 3) and c < 9", ([("a", 1), ("c", 9)], [("b", "gt", "c", 3.0)])),
    ("a >= 3", None), ("a >= 3 and b > c", None), ("a >= 3 or b >= c / 2", None), ("b >= c * 2", None),
    ("b >= c / 0", None), ("b >= 2 / c", None), ("not (b >= c / 2)", None), ("b >= c / 2 + 1", None),
    ("b == c / 2", None), ("b >= (c / 2) / 2", None), (f"b >= c / {2**60}", None),
])
def test_an_and_with_ratio_comparisons_lists_them(source: str, shape: Any) -> None:
    assert _shape(source) == shape


CONDITIONS = st.sampled_from([
    "a >= 3 and b >= c / 2", "c / 4 < b", "b <= c / -2.5 and a == 1", "(a > 1 and b > c / 3) and c < 9",
    "b < c / 3 and c / 7 >= a", "a > 0.5 and b >= a / 0.1", "b > c / 1e-300", "a != 2 and b <= c / 3",
])
VALUES = st.one_of(st.none(), st.integers(-20, 70), st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(-2**60, 2**60), st.sampled_from([True, False, "x", 2**53, 2**53 + 1, -0.0, 1e308]))


@given(CONDITIONS, VALUES, VALUES, VALUES)
@example("a >= 3 and b >= c / 2", 3, 2**53 + 1, 2**54 + 2)  # beyond 2**53: the expression decides
@example("b > c / 1e-300", 1.0, 1e308, 1e308)  # the quotient overflows
@example("c / 4 < b", None, 2, 7)
@settings(max_examples=500, deadline=None)
def test_the_engine_tests_a_ratio_conjunction_as_the_condition_would(source: str, a: Any, b: Any, c: Any) -> None:
    expr = compile_expr(source, names=NAMES)
    assert expr.ratio_conjunction is not None
    condition = RatioCondition(*expr.ratio_conjunction)
    for values in ({"a": a, "b": b, "c": c}, {"a": a, "b": b}, {}):
        answer = condition.test(values)
        if answer != UNKNOWN:
            assert answer == (TRUE if bool(expr(values)) else FALSE), (source, values)


def test_plain_numbers_are_answered_and_the_rest_left_to_the_expression() -> None:
    condition = RatioCondition(*compile_expr("a >= 3 and b >= c / 2", names=NAMES).ratio_conjunction)  # type: ignore[misc]
    assert condition.test({"a": 3, "b": 5, "c": 10}) == TRUE
    assert condition.test({"a": 3, "b": 4.9, "c": 10}) == FALSE
    assert condition.test({"a": 2, "b": None, "c": 10}) == FALSE  # a failing comparison with a constant decides
    assert condition.test({"a": 3, "b": None, "c": 10}) == UNKNOWN
    assert condition.test({"a": 3, "b": 1, "c": 2**60}) == UNKNOWN
    assert condition.test({"a": 3, "b": 1, "c": float("nan")}) == UNKNOWN


def test_the_engine_evaluates_ratio_tags_without_the_expression() -> None:
    """A 1,000-tag engine's ``_ratio_conditions`` hold the tags of that shape (the selective set's
    ``purchases_30d >= 3 and spend_24h >= spend_30d / 2``)."""
    from pathlib import Path

    from streams.engine.tag_engine import TagEngine
    from tag_rules import load_rules

    rules = load_rules(Path(__file__).resolve().parents[2] / "benchmarks" / "rules_1000_selective.yaml")
    engine = TagEngine(rules)
    assert len(engine._ratio_conditions) >= 50
    assert all("/" in rules.tags[name].when.source for name in engine._ratio_conditions)
