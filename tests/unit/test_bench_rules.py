"""The 1,000-tag benchmark rule sets (benchmarks/rules_1000.py, default and ``--selective``): they
compile, have the tags they say, are deterministic, and the committed files are the generator's output."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from benchmarks.rules_1000 import RULES_1000, RULES_1000_SELECTIVE, generate, render
from tag_rules import load_rules

REFERENCE = Path(__file__).resolve().parents[2] / "benchmarks" / "reference_rules.yaml"


def test_the_committed_rule_set_is_the_generators_output() -> None:
    assert RULES_1000.read_text() == render(generate())


def test_it_compiles_with_a_thousand_tags_over_the_reference_features() -> None:
    rules, reference = load_rules(RULES_1000), load_rules(REFERENCE)
    assert len(rules.tags) == 1000
    assert rules.features.keys() == reference.features.keys()
    assert set(reference.tags) < set(rules.tags)  # the reference tags are kept as they are


def test_the_tags_vary() -> None:
    rules = load_rules(RULES_1000)
    read = Counter(n for t in rules.tags.values() for n in t.features)
    assert len(read) == len(rules.features)  # every reference feature is read by some tag
    assert sum(t.exit is not None for t in rules.tags.values()) >= 20  # hysteresis
    assert sum(t.flap_controlled for t in rules.tags.values()) >= 10
    assert len({t.when.source for t in rules.tags.values()}) > 900  # (one condition with and without flap control)


def test_any_size_and_seed(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(render(generate(tags=120, seed=5)))
    assert len(load_rules(path).tags) == 120
    assert render(generate(tags=120, seed=5)) == path.read_text()


def test_the_committed_selective_set_is_the_generators_output() -> None:
    assert RULES_1000_SELECTIVE.read_text() == render(generate(selective=True), selective=True)


def test_the_selective_set_compiles_with_a_thousand_narrow_tags_over_the_reference_features() -> None:
    rules, reference = load_rules(RULES_1000_SELECTIVE), load_rules(REFERENCE)
    assert len(rules.tags) == 1000
    assert rules.features.keys() == reference.features.keys()  # tags only: no feature added
    assert set(reference.tags) < set(rules.tags)
    assert rules.version != load_rules(RULES_1000).version
    generated = [t for name, t in rules.tags.items() if name not in reference.tags]
    assert sum(t.exit is not None for t in generated) >= 20 and sum(t.flap_controlled for t in generated) >= 20
    # (the top of the ladders is short: a threshold recurs with hysteresis or flap control)
    assert len({t.when.source for t in generated}) > 850
    # narrow: no generated tag is a bare low threshold (the default set's ``views_1h >= 2``)
    assert not any(t.when.source.endswith((">= 1", ">= 2", "> 1", "> 2")) and " and " not in t.when.source
                   for t in generated)


def test_selective_any_size_and_seed(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(render(generate(tags=120, seed=5, selective=True), selective=True))
    assert len(load_rules(path).tags) == 120
    assert render(generate(tags=120, seed=5, selective=True), selective=True) == path.read_text()
