"""The rule compiler: the shipped rule set compiles; every kind of mistake is reported with
its file, rule and position, all at once (no network)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import main
from tag_rules import DEFAULT_RULES, CompiledRuleSet, RuleSetError, load_rules


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def errors_of(path: Path) -> list[str]:
    with pytest.raises(RuleSetError) as info:
        load_rules(path)
    return [str(e) for e in info.value.errors]


def test_the_shipped_retail_rules_compile() -> None:
    rules = load_rules(DEFAULT_RULES)
    assert len(rules.tags) >= 10
    assert {"high_value", "cart_abandoner", "store_only_shopper", "omnichannel_shopper", "lapsing_buyer",
            "refund_prone"} <= set(rules.tags)
    assert rules.version == "retail-2026.11.1"
    assert rules.since_thresholds()["since_last_purchase"] == (14 * 86400.0, 30 * 86400.0)


def test_every_error_is_reported_with_file_rule_and_position(tmp_path: Path) -> None:
    p = write(tmp_path, """\
features:
  - name: views_1h
    agg: count
    window: 1hour
  - name: spend
    agg: sum
    field: categories
  - name: bad_where
    agg: count
    where: type.upper() == "X"
  - name: since_buy
    agg: since_last
tags:
  - name: t1
    when: views_1h >= 10 and spend_30d > 5
  - name: t2
    when: since_buy * 2 > days(1)
  - name: t3
    when: __import__('os').system('echo pwned')
""")
    errs = errors_of(p)
    text = "\n".join(errs)
    assert len(errs) == 6, text
    assert "unknown name 'views_1h'" not in text  # a broken feature is reported once, where it is
    assert f"{p}:4:13: feature 'views_1h': window:" in text
    assert "feature 'spend': field: sum needs a numeric field; 'categories' is list[str]" in text
    assert f"{p}:10:12: feature 'bad_where': where:" in text and "not allowed" in text
    assert f"{p}:15:30: tag 't1': when: unknown name 'spend_30d'; did you mean 'spend'?" in text
    assert f"{p}:15:" in text
    assert "tag 't2'" in text and "time-since feature" in text
    assert "tag 't3'" in text


@pytest.mark.parametrize("text,needle", [
    ("features: []\ntags: []\n", "declares no tags"),
    ("features:\n  - {name: a, agg: count, windw: 1h}\ntags: [{name: t, when: a > 1}]\n", "unknown key"),
    ("features:\n  - {name: a, agg: median}\ntags: [{name: t, when: a > 1}]\n", "feature 'a'"),
    ("features:\n  - {name: a, agg: count}\n  - {name: a, agg: count}\ntags: [{name: t, when: a > 1}]\n",
     "duplicate feature name"),
    ("features:\n  - {name: a, agg: since_last, window: 1h}\ntags: [{name: t, when: a > 1}]\n",
     "since_last is measured over the customer's whole history"),
    ("features:\n  - {name: a, agg: count, window: 1h, resolution: 2h}\ntags: [{name: t, when: a > 1}]\n",
     "longer than the window"),
    ("features: [\n", "YAML syntax error"),
    ("- just a list\n", "a rule file is a mapping"),
])
def test_mistakes_have_clear_messages(tmp_path: Path, text: str, needle: str) -> None:
    assert any(needle in e for e in errors_of(write(tmp_path, text))), errors_of(write(tmp_path, text))


def test_a_folder_of_rule_files_is_one_rule_set(tmp_path: Path) -> None:
    write(tmp_path, "features:\n  - {name: n, agg: count, window: 1h}\ntags: []\n", "a.yaml")
    write(tmp_path, "tags:\n  - {name: busy, when: n >= 3}\n", "b.yaml")
    rules = load_rules(tmp_path)
    assert set(rules.tags) == {"busy"} and rules.version.startswith("sha-")


def test_same_definition_same_state_key_and_redefinition_changes_it(tmp_path: Path) -> None:
    def rules(name: str, window: str) -> CompiledRuleSet:
        return load_rules(write(tmp_path, f"features:\n  - {{name: {name}, agg: count, window: {window}}}\n"
                                          f"tags: [{{name: t, when: {name} > 1}}]\n"))

    a, b, c = rules("n", "1h"), rules("m", "1h"), rules("n", "2h")
    assert a.features["n"].key == b.features["m"].key != c.features["n"].key


def test_rules_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(DEFAULT_RULES)]) == 0
    assert "12 tags" in capsys.readouterr().out
    bad = write(tmp_path, "features: []\ntags:\n  - {name: t, when: nope > 1}\n")
    assert main(["rules", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:3:" in out and "tag 't'" in out and "unknown name 'nope'" in out


def test_imports_go_one_way() -> None:
    """schemas <- tag_rules <- streams: the pure layers load no I/O library."""
    code = ("import sys, tag_rules, schemas; tag_rules.load_rules(tag_rules.DEFAULT_RULES); "
            "bad = [m for m in ('faust', 'redis', 'aiokafka', 'streams', 'prometheus_client') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for f in Path(__file__).resolve().parents[2].joinpath("tag_rules").glob("*.py"):
        assert "from streams" not in f.read_text() and "import streams" not in f.read_text(), f
    for f in Path(__file__).resolve().parents[2].joinpath("schemas").glob("*.py"):
        src = f.read_text()
        assert "import tag_rules" not in src and "from tag_rules" not in src and "from streams" not in src, f

