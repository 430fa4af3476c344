"""A rule set that passes ``tagstream rules check`` never fails at run time: every input that used to
compile and break later (or crash the check with a traceback) is a RuleSetError with file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import main
from tag_rules import RuleSetError, load_rules
from tag_rules.expr import MAX_INT, MAX_TIME_S, ExprError, compile_expr

FEATURES = """\
features:
  - {name: since_buy, agg: since_last}
  - {name: spend, agg: sum, field: amount, window: 1h}
"""


def rules_with(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def tag_rules(when: str) -> str:
    return FEATURES + f"tags:\n  - name: t\n    when: {when}\n"


def the_error(path: Path) -> tuple[str, int | None, int | None]:
    """The single error of the rule set at ``path``: (printed text, line, col). Asserts it is positioned."""
    with pytest.raises(RuleSetError) as info:
        load_rules(path)
    errs = info.value.errors
    assert len(errs) >= 1, errs
    e = errs[0]
    text = str(e)
    assert e.line is not None and e.col is not None, text
    assert text.startswith(f"{path}:{e.line}:{e.col}: "), text
    text.encode("utf-8")  # printable: no lone surrogates reach a terminal
    return text, e.line, e.col


# ------------------------------------------------------------------------------------- numbers in expressions

@pytest.mark.parametrize(("when", "needle", "col"), [
    ("since_buy >= 1e400", "overflows to infinity", 24),
    ("spend > -1e400", "overflows to infinity", 20),
    ("spend > 1e308 * 10", "overflows", 19),
    ("since_buy >= 1e300", "'since_buy' is compared with 1e+300 seconds, more than 100 years", 24),
    ("since_buy >= days(1e14)", "days() gives 8.64e+18 seconds, more than 100 years", 24),
    ("days(36501) <= since_buy", "days() gives", 11),
    ("since_buy < -days(36501)", "days() gives", 24),
    ("spend > days(1e14)", "days() gives", 19),
    ("since_buy >= days(30) * 1e10", "more than 100 years", 24),
    ("spend > 123456789012345678901", "integer literal is too large", 19),
    ("spend > (10**12)**2", "integer constant is too large", 19),
])
def test_out_of_range_constants_are_positioned_errors(tmp_path: Path, when: str, needle: str, col: int) -> None:
    text, line, c = the_error(rules_with(tmp_path, tag_rules(when)))
    assert needle in text
    assert (line, c) == (6, col)


def test_a_constant_beyond_the_int_str_conversion_limit_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    # Folded, six factors of 10**768 made a 4,609-digit integer whose repr() raised ValueError; now the
    # first factor over 10**20 is the error.
    giant = "*".join(["((10**12)**64)"] * 6)
    text, line, col = the_error(rules_with(tmp_path, tag_rules(f"round({giant}, 100) > spend")))
    assert "integer constant is too large" in text and (line, col) == (6, 18)
    with pytest.raises(ExprError) as info:
        compile_expr("a > " + "9" * 1990, names=["a"])
    assert "integer literal is too large" in info.value.message and info.value.col == 5


def test_the_largest_allowed_constants_compile() -> None:
    e = compile_expr("days(1) <= since_buy < days(36500) and a < 2 ** 64 and a > -100000000000000000000",
                     names=["a"], threshold_names=["since_buy"])
    assert e.thresholds == {"since_buy": (86400.0, float(MAX_TIME_S))}
    assert compile_expr(f"a == {MAX_INT}", names=["a"])({"a": MAX_INT}) is True
    assert compile_expr("a < 1e308", names=["a"])({"a": 1}) is True


# ---------------------------------------------------------------------------------------------------- windows

@pytest.mark.parametrize(("window", "needle"), [
    ("99999999999999999999d", "longer than the maximum window, 3650d"),
    ("3651d", "longer than the maximum window, 3650d"),
    ("9" * 5000 + "s", "too long"),
    ("4999ms", "shorter than the minimum window, 5s"),
    ("1s", "shorter than the minimum window, 5s"),
    ("0s", "shorter than the minimum window, 5s"),
])
def test_windows_outside_5s_to_10_years_are_errors(tmp_path: Path, window: str, needle: str) -> None:
    text, line, col = the_error(rules_with(tmp_path, tag_rules("spend > 1").replace("window: 1h", f"window: {window}")))
    assert "feature 'spend': window: " in text and needle in text
    assert (line, col) == (3, 52)


def test_window_limits_themselves_compile(tmp_path: Path) -> None:
    for window, ms in [("5s", 5000), ("5000ms", 5000), ("3650d", 3650 * 86_400_000)]:
        rules = load_rules(rules_with(tmp_path, tag_rules("spend > 1").replace("window: 1h", f"window: {window}")))
        assert rules.features["spend"].window_ms == ms


def test_a_huge_resolution_is_an_error(tmp_path: Path) -> None:
    text, line, _ = the_error(rules_with(tmp_path, tag_rules("spend > 1").replace(
        "window: 1h", "window: 1h, resolution: " + "9" * 5000 + "s")))
    assert "resolution: invalid duration" in text and line == 3


# ------------------------------------------------------------------------------------------------------- YAML

@pytest.mark.parametrize(("extra", "pos"), [
    ("? [a, b]\n: 1\n", (7, 3)),
    ("x: {[1]: x}\n", (7, 5)),
    ("? {a: 1}\n: 2\n", (7, 3)),
])
def test_unhashable_yaml_keys_are_errors(tmp_path: Path, extra: str, pos: tuple[int, int]) -> None:
    text, line, col = the_error(rules_with(tmp_path, tag_rules("spend > 1") + extra))
    assert "a mapping key must be a plain value" in text and (line, col) == pos


def test_unhashable_key_inside_a_feature_is_an_error(tmp_path: Path) -> None:
    text, line, col = the_error(rules_with(tmp_path, tag_rules("spend > 1").replace(
        "{name: spend,", "{[x]: 1, name: spend,")))
    assert "a mapping key must be a plain value" in text and (line, col) == (3, 6)


@pytest.mark.parametrize(("extra", "needle"), [
    ("x: " + "9" * 5000 + "\n", "cannot read this value"),
    ("x: 2001-13-45\n", "cannot read this value: month must be in 1..12"),
])
def test_unreadable_yaml_values_are_errors(tmp_path: Path, extra: str, needle: str) -> None:
    text, line, col = the_error(rules_with(tmp_path, extra + tag_rules("spend > 1")))
    assert needle in text and (line, col) == (1, 4)


def test_deeply_nested_yaml_is_an_error_not_a_recursion_error(tmp_path: Path) -> None:
    p = rules_with(tmp_path, "x: " + "[" * 5000 + "]" * 5000 + "\n" + tag_rules("spend > 1"))
    with pytest.raises(RuleSetError) as info:
        load_rules(p)
    assert "nesting too deep" in str(info.value)


# ---------------------------------------------------------------------------------------------------- version

@pytest.mark.parametrize(("version", "needle"), [
    ('"\\ud800"', "lone surrogate"),
    ('"retail\\ud800-1"', "lone surrogate"),
    ('"a\\x1bb"', "control or non-printable character ('\\x1b')"),
    ('"a\\nb"', "control or non-printable"),
    ('"a\\u200bb"', "non-printable"),
    ("a" * 200, "too long (200 characters; the maximum is 128)"),
])
def test_versions_are_printable_text(tmp_path: Path, version: str, needle: str) -> None:
    text, line, col = the_error(rules_with(tmp_path, f"version: {version}\n" + tag_rules("spend > 1")))
    assert "version: " in text and needle in text
    assert (line, col) == (1, 11 if version.startswith('"') else 10)


def test_rules_check_prints_a_surrogate_error_instead_of_crashing(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    p = rules_with(tmp_path, 'version: "\\ud800"\n' + tag_rules("spend > 1").replace(
        "field: amount", 'field: "\\udc80x"'))
    assert main(["rules", "check", str(p)]) == 1
    out = capsys.readouterr().out
    out.encode("utf-8")
    assert f"{p}:1:11: version: contains a lone surrogate" in out
    assert "unknown event field '\\udc80x'" in out


# ------------------------------------------------------------------------------------------------------ names

@pytest.mark.parametrize("name", ["null", "true", "false", "none"])
def test_features_may_not_be_named_like_literals(tmp_path: Path, name: str) -> None:
    p = rules_with(tmp_path, tag_rules("spend > 1").replace("name: since_buy", f'name: "{name}"'))
    text, line, col = the_error(p)
    assert f"feature '{name}': name: '{name}' is a literal in expressions" in text and (line, col) == (2, 13)


@pytest.mark.parametrize("name", ["NULL", "True", "None"])
def test_capitalized_literal_names_are_refused_too(tmp_path: Path, name: str) -> None:
    p = rules_with(tmp_path, tag_rules("spend > 1").replace("name: since_buy", f'name: "{name}"'))
    text, line, col = the_error(p)
    assert f"feature '{name}': name:" in text and (line, col) == (2, 13)


def test_features_may_not_be_named_like_keywords(tmp_path: Path) -> None:
    text, line, col = the_error(rules_with(tmp_path, tag_rules("spend > 1").replace("name: since_buy", "name: if")))
    assert "'if' is a Python keyword" in text and (line, col) == (2, 12)


def test_look_alike_names_in_expressions_are_errors(tmp_path: Path) -> None:
    # "\uff53pend" is "spend" with a fullwidth s: Python's parser reads it as spend.
    text, line, col = the_error(rules_with(tmp_path, tag_rules("spend > 1 and \uff53pend > 2")))
    assert "'\uff53pend' contains the look-alike character '\uff53' (U+FF53): Python would read it as 'spend'" in text
    assert (line, col) == (6, 25)


@pytest.mark.parametrize(("src", "col"), [
    ("\uff53pend > 1", 1),
    ("\uff44ays(1) < spend", 1),
    ("spend == \uff4eull", 10),
    ("spend > 1 and\n  \u210cx > 1", 3),
    ("caf\u00e9 > 1", 1),
])
def test_non_ascii_names_never_compile(src: str, col: int) -> None:
    with pytest.raises(ExprError) as info:
        compile_expr(src, names=["spend", "Hx", "null"])
    assert "names must be plain ASCII" in info.value.message and info.value.col == col
    assert compile_expr('spend == "caf\u00e9"', names=["spend"])({"spend": "caf\u00e9"}) is True  # text is fine


@pytest.mark.parametrize(("section", "pos"), [("feature", (3, 12)), ("tag", (5, 11))])
def test_look_alike_rule_names_are_errors(tmp_path: Path, section: str, pos: tuple[int, int]) -> None:
    text = tag_rules("spend > 1")
    text = text.replace("name: spend", "name: \uff53pend") if section == "feature" else \
        text.replace("name: t\n", "name: \uff54\n")
    msg, line, col = the_error(rules_with(tmp_path, text))
    assert f"{section} '" in msg and "look-alike character" in msg and "names must be plain ASCII" in msg
    assert (line, col) == pos


def test_error_messages_escape_control_characters() -> None:
    from tag_rules import RuleError

    assert str(RuleError("f.yaml", "bad \x1b[31m\ud800", "tag 't'", 1, 2)) == \
        "f.yaml:1:2: tag 't': bad \\x1b[31m\\ud800"


def test_the_error_helper_rejects_unpositioned_errors(tmp_path: Path) -> None:
    # guard for the tests above: a file-level error has no position, and the helper says so
    with pytest.raises(AssertionError):
        the_error(rules_with(tmp_path, "features: []\ntags: []\n"))
