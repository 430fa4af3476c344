"""Sequence and absence features ("A then B within T", "A and no B within T after it") compiled:
definition errors with their file positions, the documented caps, the definition as part of the
state key, and the example rules with their fixtures (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import main
from streams.engine.features import sequences
from tag_rules import RuleSetError, load_rules

from .sequences_support import MAX_PENDING, MAX_RUNS, MAX_UNMATCHED, RULES

EXAMPLE = Path(__file__).parents[2] / "tag_rules" / "examples" / "sequences.yaml"


def errors_of(tmp_path: Path, text: str) -> list[str]:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    with pytest.raises(RuleSetError) as info:
        load_rules(p)
    return [str(e) for e in info.value.errors]


def test_the_documented_caps() -> None:
    assert (sequences.MAX_PENDING, sequences.MAX_RUNS, sequences.MAX_UNMATCHED) == (MAX_PENDING, MAX_RUNS,
                                                                                     MAX_UNMATCHED)


# -- the compiler ---------------------------------------------------------------------------


def test_bad_definitions_are_refused_with_file_line_col(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = """\
features:
  - name: no_then
    agg: absence
    first: {sources: [clickstream], where: type == "add_to_cart"}
    within: 24h
  - name: bad_within
    agg: sequence
    first: {where: type == "product_view"}
    then: {where: type == "paid"}
    within: 1hour
  - name: bad_where
    agg: absence
    first: {where: type = "add_to_cart"}
    then: {where: typ == "paid"}
    within: 24h
    window: 12h
  - name: loose_keys
    agg: sequence
    first: {where: type == "product_view"}
    then: {where: type == "paid"}
    within: 1h
    where: type == "paid"
    field: amount
  - name: no_within
    agg: absence
    first: {where: type == "add_to_cart"}
    then: {where: type == "paid"}
  - name: plain
    agg: count
    then: {where: type == "paid"}
tags:
  - name: t
    when: no_then and bad_within > 0 and bad_where and loose_keys > 0 and no_within and plain > 0
"""
    errs = errors_of(tmp_path, text)
    f = str(tmp_path / "r.yaml")
    assert f"{f}:3:10: feature 'no_then': absence needs 'then'" in "\n".join(errs)
    expected_prefixes = [
        f"{f}:10:13: feature 'bad_within': within: invalid duration '1hour'",
        f"{f}:13:25: feature 'bad_where': first.where: invalid where expression",
        f"{f}:14:19: feature 'bad_where': then.where: unknown name 'typ'; did you mean 'type'?",
        f"{f}:15:13: feature 'bad_where': within: 24h is not shorter than the window 12h",
        f"{f}:22:12: feature 'loose_keys': where: a sequence feature filters each side in 'first' and 'then'",
        f"{f}:23:12: feature 'loose_keys': field: a sequence feature counts events",
        f"{f}:25:10: feature 'no_within': absence needs 'within'",
        f"{f}:30:11: feature 'plain': then: only sequence and absence features take 'then'",
    ]
    for prefix in expected_prefixes:
        assert any(e.startswith(prefix) for e in errs), (prefix, errs)
    assert len(errs) == 9, errs  # every problem at once, none twice
    assert main(["rules", "check", str(tmp_path / "r.yaml")]) == 1
    assert "9 error(s)" in capsys.readouterr().err


def test_a_within_out_of_range_and_an_absence_resolution_are_refused(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, """\
features:
  - {name: a, agg: absence, first: {}, then: {}, within: 500ms}
  - {name: b, agg: absence, first: {}, then: {}, within: 1h, window: 1d, resolution: 1h}
  - {name: c, agg: sequence, first: {}, then: {}, within: 3651d}
tags:
  - {name: t, when: a or b or c > 0}
""")
    assert len(errs) == 3, errs
    assert "within: 500ms is shorter than the minimum, 1s" in errs[0]
    assert "resolution: an absence feature keeps event times" in errs[1]
    assert "within: 3651d is longer than the maximum" in errs[2]


def test_the_definition_is_part_of_the_state_key(tmp_path: Path) -> None:
    base = RULES.replace("within: 24h\n    window: 7d", "within: 24h\n    window: 7d")
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(base)
    b.write_text(base.replace('then: {sources: [orders], where: type == "paid"}\n    within: 24h\n    window: 7d',
                              'then: {sources: [orders], where: type == "shipped"}\n    within: 24h\n    window: 7d'))
    ka, kb = load_rules(a).features, load_rules(b).features
    assert ka["abandoned"].key != kb["abandoned"].key  # a changed `then` starts afresh
    assert ka["abandoned_ever"].key == kb["abandoned_ever"].key
    assert ka["abandoned"].sources == frozenset({"clickstream", "orders"})


def test_the_example_rules_and_their_fixtures_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(EXAMPLE)]) == 0
    assert main(["rules", "test", str(EXAMPLE)]) == 0
    assert "0 failed" in capsys.readouterr().out
