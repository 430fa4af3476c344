"""The incremental plan: a condition's comparisons (tag_rules/expr_atoms.py) and the index that
says which tags an event's value changes can flip (streams/engine/tag_index.py)."""

from __future__ import annotations

import math
import time
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from streams.engine.tag_index import Flips, TagIndex
from tag_rules import compile_expr, load_rules
from tag_rules.tags import TagDef

REPO = Path(__file__).resolve().parents[2]
NAMES = ("a", "b", "c")


@pytest.mark.parametrize(("source", "atoms"), [
    ("a >= 5", [("a", 5, False)]),
    ("a >= 5 and (b == 0 or 2 <= c < 10)", [("a", 5, False), ("b", 0, False), ("c", 2, True), ("c", 10, False)]),
    ("not a", [("a", None, False)]),
    ("-5 < a", [("a", -5, True)]),
    ("a == null or b != \"x\"", [("a", None, False), ("b", "x", False)]),
    ("true", []),
    ("s >= days(3)", [("s", 259200, False)]),
])
def test_conditions_made_of_comparisons_list_them(source: str, atoms: list[tuple[str, Any, bool]]) -> None:
    expr = compile_expr(source, names=NAMES, threshold_names=["s"])
    assert expr.atoms is not None
    assert [(x.name, x.constant, x.constant_first) for x in expr.atoms] == atoms


@pytest.mark.parametrize(("source", "atoms", "slopes"), [
    ("a >= b / 3", [], [[("a", 1), ("b", -1)]]),
    ("b >= 40 and a >= b / 4", [("b", 40)], [[("a", 1), ("b", -1)]]),
    ("a - b * 2 >= -a", [], [[("a", 1), ("b", -1)]]),
    ("not (a > 1 or c < a + b)", [("a", 1)], [[("a", 1), ("b", 1), ("c", -1)]]),
    ("a == b + 1", [], [[("a", 0), ("b", 0)]]),
    ("a / -2 > b", [], [[("a", -1), ("b", -1)]]),
    ("a - a >= 0", [], [[("a", 0)]]),
])
def test_comparisons_of_linear_forms_have_a_direction_per_feature(
        source: str, atoms: list[tuple[str, Any]], slopes: list[list[tuple[str, int]]]) -> None:
    """``buys >= views / 3`` rises with ``buys`` and falls with ``views`` (tag_rules/expr_linear.py);
    the slopes are taken before ``not`` (``Linear.negated``)."""
    expr = compile_expr(source, names=NAMES)
    assert expr.atoms is None and expr.monotone is not None
    assert [(x.name, x.constant) for x in expr.monotone.atoms] == atoms
    assert [list(form.slopes) for form in expr.monotone.linear] == slopes


@pytest.mark.parametrize("source", ["a * b > 2", "a >= b / 0", "a in (1, 2)", "coalesce(a, 0) > b",
                                    "a >= 1e300 * b", "a % 2 == b", "a >= 1", "abs(a) > b"])
def test_other_conditions_are_not_linear(source: str) -> None:
    assert compile_expr(source, names=NAMES).monotone is None


@pytest.mark.parametrize("source", ["a >= b / 3", "a > b", "a in (1, 2)", "coalesce(a, 0) > 1",
                                    "(a if b else c) > 1", "a + 1 > 2", "a >= 1 and b * 2 > 3"])
def test_other_conditions_are_opaque(source: str) -> None:
    assert compile_expr(source, names=NAMES).atoms is None


CONDITIONS = st.sampled_from([
    "a >= 3", "a > 2.5", "a < 3", "a <= 0", "a == 2", "a != 1", "1 <= a < 4", "not a", "a",
    "a >= 2 and b == 0", "a > 1 or b >= 5", "not (a >= 3)", "a == null", "a >= b / 2", "a > b",
    "not (a >= 2 and b == 0)", "a >= 2 and not (a > 5)", "not (not a)", "not (a < 1 or not (b > 2))",
    "a >= 3 and a < 3", "(a > 1 and b > 1) or not a", "b >= 2 and a >= b / 2", "a >= 1 and a > b",
    "a - b >= 1", "-a > b * 2", "a + b == 3", "a != b - 1", "not (a >= b / 3)", "a / -2 <= b",
    "(b >= 2 and a >= b / 2) or a < b - 1", "a * 1e280 - b * 1e280 > 0", "a - a >= 0", "a * b > 2",
    "b >= 2 and b <= 5 and a >= b - 1", "b > 3 and a > b", "a < b * 2 and b <= 5", "b == 4 and a >= b + 0.5",
    "3 <= b and b / -2 >= a", "b >= 1e200 and a >= b * 1e200",
])
VALUES = st.one_of(st.none(), st.integers(-2, 7), st.floats(-2, 7, allow_nan=False),
                   st.sampled_from([True, "x", 1e300, -1e305, 2**1100, float("inf")]))


@given(st.lists(CONDITIONS, min_size=1, max_size=8), VALUES, VALUES, VALUES)
@example(["a * 1e280 - b * 1e280 > 0"], 7, 2**1100, -1e305)  # rising a overflows: the comparison falls
@settings(max_examples=300, deadline=None)
def test_every_tag_whose_truth_changes_is_flipped(conditions: list[str], old: Any, new: Any, b: Any) -> None:
    """Soundness: when feature ``a`` goes from ``old`` to ``new`` (``b`` fixed), every tag whose
    condition's truth changes is among those the index returns."""
    tags = [TagDef(f"t{i}", compile_expr(src, names=NAMES), tuple(sorted(compile_expr(src, names=NAMES).names)))
            for i, src in enumerate(conditions)]
    index = TagIndex(tags, {n: f"k_{n}" for n in NAMES}, frozenset())
    flips = index.flips()
    index.flipped("k_a", old, new, flips)
    changed = {i for i, t in enumerate(tags)
               if bool(t.when({"a": old, "b": b})) != bool(t.when({"a": new, "b": b}))}
    assert changed <= flips.every()
    # and by the way they moved: a tag held exactly when its condition held before
    held = {t.name: 0 for t in tags if bool(t.when({"a": old, "b": b}))}  # name -> since (CustomerState.tags)
    chosen = flips.chosen([t.name for t in tags], held)
    chosen |= {i for i in flips.guarded | flips.ups_guarded()
               if tags[i].name not in held and all(g.holds({"a": new, "b": b}[g.name]) for g in tags[i].when.guards)}
    assert changed <= chosen


def _sets(flips: Flips) -> tuple[Any, ...]:
    return flips.always, flips.up, flips.downs(), flips.guarded, flips.ups_guarded()


@given(st.lists(CONDITIONS, min_size=1, max_size=12), st.one_of(st.none(), st.integers(-2, 7), st.just(2**60)),
       st.integers(-2, 7) | st.just(2**60))
@settings(max_examples=300, deadline=None)
def test_a_remembered_count_transition_flips_what_computing_it_does(conditions: list[str], old: Any, new: int) -> None:
    """``_FeatureIndex.memo``: a count going from ``old`` to ``new`` is remembered at its second call
    and a third gets that result, which is what the index computes without it (here every feature
    is memoized); one out of the keys' range (a negative int, 2**60) is computed every time."""
    tags = [TagDef(f"t{i}", compile_expr(src, names=NAMES), tuple(sorted(compile_expr(src, names=NAMES).names)))
            for i, src in enumerate(conditions)]
    index = TagIndex(tags, {n: f"k_{n}" for n in NAMES}, frozenset())
    computed = index.flips()
    feature = index._by_key.get("k_a")
    if feature is None:
        return
    feature._flipped(old, new, computed)
    feature.memoized = True
    from streams.engine.tag_index import MEMO_RANGE

    first, second, third = index.flips(), index.flips(), index.flips()
    o = -1 if old is None else old
    key = new * MEMO_RANGE + o + 1 if 0 <= new < MEMO_RANGE and -1 <= o < MEMO_RANGE - 1 else None
    index.flipped("k_a", old, new, first)
    assert key not in feature.memo and (key in feature.once or (key is None and not feature.once))
    index.flipped("k_a", old, new, second)
    assert (key in feature.memo or (key is None and not feature.memo)) and key not in feature.once
    index.flipped("k_a", old, new, third)
    assert _sets(first) == _sets(second) == _sets(third) == _sets(computed)


def test_only_features_with_many_comparisons_memoize_and_the_memo_is_bounded() -> None:
    from streams.engine import tag_index as module

    wide = [TagDef(f"t{i}", compile_expr(f"a >= {i}", names=NAMES), ("a",)) for i in range(module.MEMO_MIN_ATOMS)]
    narrow = [TagDef("n", compile_expr("b >= 1", names=NAMES), ("b",))]
    index = TagIndex(wide + narrow, {n: n for n in NAMES}, frozenset())
    assert index._by_key["a"].memoized and not index._by_key["b"].memoized
    flips = index.flips()
    for v in range(module.MEMO_MAX + 10):
        for _ in range(2):  # remembered at the second call
            index.flipped("a", v, v + 1, flips)
            index.flipped("b", v, v + 1, flips)
    assert len(index._by_key["a"].memo) == module.MEMO_MAX
    assert not index._by_key["b"].memo and not index._by_key["b"].once
    for v in range(10 * module.MEMO_MAX, 12 * module.MEMO_MAX):  # a heavy customer's climb: each once
        index.flipped("a", v, v + 1, flips)
    assert len(index._by_key["a"].once) == module.MEMO_MAX and len(index._by_key["a"].memo) == module.MEMO_MAX
    assert flips.up == set(range(1, module.MEMO_MIN_ATOMS + 1))  # a >= 0 never flips; n (b >= 1) at 0 -> 1


@pytest.mark.parametrize(("source", "guards"), [
    ("b >= 40 and a >= b / 4", [("b", 40), ("a", 10)]),
    ("a >= 2 and b == 0", [("a", 2), ("b", 0)]),
    ("(a > 1 and b > 1) and a > b", [("a", 1), ("b", 1), ("a", 1)]),
    ("a and a > b", [("a", None)]),
    ("a > b", []), ("not (a > 1) and a > b", []), ("a >= 1 or b > a", []), ("(a > 1 or b > 1) and a > b", []),
    ("b >= 40 and a >= b / 4 and c > 1", [("b", 40), ("c", 1), ("a", 10)]),  # the terms first, then implied ones
    ("b >= 2 and c <= 3 and a >= b - c", [("b", 2), ("c", 3), ("a", -1)]),
    ("b <= 10 and a < b * 2", [("b", 10), ("a", 20)]), ("b >= 2 and a >= b - c", [("b", 2)]),
    ("b >= 2 and b >= b / 2", [("b", 2)]), ("b >= 2 and a >= b * 0", [("b", 2)]),
])
def test_the_guards_of_a_condition_are_the_comparisons_it_is_an_and_of(source: str, guards: list[Any]) -> None:
    assert [(g.name, g.constant) for g in compile_expr(source, names=NAMES).guards] == guards


@given(st.lists(CONDITIONS, min_size=1, max_size=8), VALUES, VALUES)
@settings(max_examples=300, deadline=None)
def test_a_condition_is_false_while_a_guard_is(conditions: list[str], a: Any, b: Any) -> None:
    """What lets the engine skip a guarded tag it does not hold: a false guard, a false condition."""
    from streams.engine.guards import guard

    for src in conditions:
        expr = compile_expr(src, names=NAMES)
        values = {"a": a, "b": b}
        for atom in expr.guards:
            value = values[atom.name]
            assert guard(atom).holds_for(value) == atom.holds(value)  # the engine's check
            if not atom.holds(value):
                assert not bool(expr(values)), (src, values)


@pytest.mark.parametrize(("source", "conjunction"), [
    ("a >= 5", [("a", 5)]), ("a >= 2 and b == 0", [("a", 2), ("b", 0)]), ("1 <= a < 4", [("a", 1), ("a", 4)]),
    ("(a > 1 and b > 1) and c != \"x\"", [("a", 1), ("b", 1), ("c", "x")]),
    ("a >= 1 or b > 2", None), ("a >= 1 and (b > 2 or c > 3)", None), ("not (a >= 1)", None), ("a", None),
    ("a and b > 1", None), ("a > b", None), ("b >= 2 and a >= b / 2", None), ("true", None), ("a in (1, 2)", None),
])
def test_a_condition_that_is_an_and_of_comparisons_with_constants_lists_them(source: str, conjunction: Any) -> None:
    got = compile_expr(source, names=NAMES).conjunction
    assert (None if got is None else [(x.name, x.constant) for x in got]) == conjunction


@given(st.lists(CONDITIONS, min_size=1, max_size=8), VALUES, VALUES)
@example(["a >= 2 and b == 0"], 2**1100, 0)
@example(["1 <= a < 4", "a == 2"], True, None)
@settings(max_examples=300, deadline=None)
def test_the_engine_tests_a_conjunction_as_the_condition_would(conditions: list[str], a: Any, b: Any) -> None:
    """``guards.all_hold`` (what the tag engine runs for an ``and`` of comparisons, compiled) gives the
    condition's truth for any values, a missing one included."""
    from streams.engine.guards import all_hold, guard

    for src in conditions:
        expr = compile_expr(src, names=NAMES)
        if expr.conjunction is None:
            continue
        tests = [guard(atom) for atom in expr.conjunction]
        for values in ({"a": a, "b": b}, {"a": a}, {}):
            assert all_hold(tests, values) == bool(expr(values)), (src, values)


def test_stepped_tags_are_evaluated_whenever_fed_and_opaque_ones_on_change() -> None:
    steady = TagDef("steady", compile_expr("a >= 3", names=NAMES), ("a",))
    ratio = TagDef("ratio", compile_expr("a * b >= 2", names=NAMES), ("a", "b"))
    hyst = TagDef("hyst", compile_expr("a >= 3", names=NAMES), ("a",), exit=compile_expr("a < 1", names=NAMES))
    index = TagIndex([steady, ratio, hyst], {n: n for n in NAMES}, frozenset({"hyst"}))
    out = Flips()
    index.flipped("a", 1, 1, out)
    assert out.every() == {2}
    index.flipped("a", 1, 2, out)
    assert out.every() == {1, 2}
    index.flipped("a", 2, 3, out)
    assert (out.always, out.up, out.downs()) == ({1, 2}, {0}, set())


def test_an_event_evaluates_few_of_a_thousand_tags() -> None:
    """The point of the index: with benchmarks/rules_1000.yaml an event evaluates the tags it can
    flip (tens), not every tag that reads a feature it fed (~280 before the index)."""
    from schemas.canonical import to_canonical
    from schemas.decode import decode_event
    from streams.tools.generator import RetailGenerator

    engine = TagEngine(load_rules(REPO / "benchmarks" / "rules_1000.yaml"))
    now = int(time.time() * 1000)
    states: dict[str, CustomerState] = {}
    gen = RetailGenerator(seed=3, customers=500, start_ms=now - 4000, step_ms=1.0)
    n = 0
    for g in islice(gen, 4000):
        if g.key is None or not g.valid:
            continue
        ev = to_canonical(g.source, decode_event(g.source, g.value), now)
        engine.process_event(states.setdefault(ev["customer_id"], CustomerState()), ev, ev["ts_ms"])
        n += 1
    assert engine.evaluated / n < 60


def test_hysteresis_and_flap_control_are_indexed_by_both_conditions() -> None:
    """The engine passes as *stepped* only the tags whose conditions are not comparisons; one with
    ``enter``/``exit`` comparisons is evaluated when either flips (its gates are due times)."""
    from streams.engine.tag_index import condition_atoms

    hyst = TagDef("hyst", compile_expr("a >= 10", names=NAMES), ("a",), exit=compile_expr("a < 5", names=NAMES))
    gated = TagDef("gated", compile_expr("a >= 3", names=NAMES), ("a",), min_duration_ms=60_000)
    opaque = TagDef("opaque", compile_expr("a >= b / 2", names=NAMES), ("a", "b"), cooldown_ms=60_000)
    assert condition_atoms(hyst) is not None and len(condition_atoms(hyst) or ()) == 2
    assert condition_atoms(opaque) is None
    engine_stepped = frozenset(t.name for t in (hyst, gated, opaque) if condition_atoms(t) is None)
    index = TagIndex([hyst, gated, opaque], {n: n for n in NAMES}, engine_stepped)
    for old, new, want in ((6, 7, {2}), (9, 10, {0, 2}), (5, 4, {0, 2}), (2, 3, {1, 2}), (7, 7, {2})):
        out = Flips()
        index.flipped("a", old, new, out)
        assert out.always == want and not out.up and not out.downs(), (old, new)  # never by direction
    engine = TagEngine(load_rules(REPO / "benchmarks" / "rules_1000.yaml"))
    assert engine._stepped and not any(fi.on_feed for fi in engine._index._by_key.values())


_OPS = ("<", "<=", ">", ">=", "==", "!=")
_VALUES = st.one_of(st.integers(-6, 6), st.sampled_from([2.5, -0.5, 3.0, 1e300, -1e300, 2 ** 53 + 1, -(2 ** 60)]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_OPS), st.sampled_from([-3, 0, 1, 2, 2.5, 4, 2 ** 53 + 1]), st.booleans()),
                min_size=1, max_size=8),
       _VALUES, _VALUES)
@example([(">=", 2 ** 53 + 1, False)], 2 ** 53, 2 ** 53 + 1)  # a float would make these equal
def test_crossings_find_exactly_the_comparisons_a_change_flips(
        comparisons: list[tuple[str, Any, bool]], old: Any, new: Any) -> None:
    """Bisection by where each comparison's truth changes (``_Crossings``) finds the same flips as
    testing every comparison on the old and the new value, for ints, floats, and ints a float rounds."""
    tags = []
    for i, (op, constant, constant_first) in enumerate(comparisons):
        source = f"{constant} {op} a" if constant_first else f"a {op} {constant}"
        tags.append(TagDef(f"t{i}", compile_expr(source, names=NAMES), ("a",)))
    index = TagIndex(tags, {n: n for n in NAMES}, frozenset())
    out = Flips()
    index.flipped("a", old, new, out)
    want = {i for i, t in enumerate(tags) if bool(t.when({"a": old})) != bool(t.when({"a": new}))}
    assert out.every() == want
    up = {i for i in want if bool(tags[i].when({"a": new}))}
    assert (out.up, out.downs()) == (up, want - up)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(("<", "<=", ">", ">=")), st.sampled_from([0, 1, 2, 4, 9, 2 ** 53 + 1])),
                min_size=1, max_size=6),
       st.one_of(st.integers(0, 12), st.sampled_from([2 ** 53, 2 ** 53 + 1, 2 ** 53 + 2])))
def test_a_rise_checks_the_guards_on_the_value_by_bisection(guards: list[tuple[str, Any]], new: Any) -> None:
    """``b >= c and a >= b / 2`` rising with ``a``: only the tags whose guard on ``a`` the new value
    passes are candidates (``_Thresholds``), the same as testing each."""
    tags = [TagDef(f"t{i}", compile_expr(f"a {op} {c} and a >= b / 2", names=NAMES), ("a", "b"))
            for i, (op, c) in enumerate(guards)]
    index = TagIndex(tags, {n: n for n in NAMES}, frozenset())
    out = Flips()
    index.flipped("a", -1, new, out)
    atoms = [t.when.atoms or t.when.monotone.atoms for t in tags]  # type: ignore[union-attr]
    want = {i for i, a in enumerate(atoms) if a[0].holds(new)}
    assert out.ups_guarded() | out.up == want


@pytest.mark.parametrize("op", _OPS)
def test_a_count_stepping_by_one_flips_exactly_what_it_crosses(op: str) -> None:
    """A count moves by one: every step up and down across integral and fractional constants,
    against testing each comparison (the bisection's open and closed ends)."""
    constants = [-2, 0, 1, 1.5, 3, 4.25]
    tags = [TagDef(f"t{i}", compile_expr(f"a {op} {c}", names=NAMES), ("a",)) for i, c in enumerate(constants)]
    index = TagIndex(tags, {n: n for n in NAMES}, frozenset())
    for lo in range(-4, 7):
        for old, new in ((lo, lo + 1), (lo + 1, lo)):
            out = Flips()
            index.flipped("a", old, new, out)
            want = {i for i, t in enumerate(tags) if bool(t.when({"a": old})) != bool(t.when({"a": new}))}
            assert out.every() == want, (old, new)


@pytest.mark.parametrize(("value", "expected"), [
    (0, True), (-(2 ** 80), True), (1.5, True), (-0.0, True), (1e308, True), (math.inf, False),
    (-math.inf, False), (math.nan, False), (None, False), ("1", False), (True, False)])
def test_finite_is_an_int_or_a_float_that_is_neither_infinite_nor_nan(value: Any, expected: bool) -> None:
    from streams.engine.guards import finite

    assert finite(value) is expected
