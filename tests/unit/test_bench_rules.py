"""The 1,000-tag benchmark rule set (benchmarks/rules_1000.py): it compiles, has the tags it
says, is deterministic, and the committed file is the generator's output."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from benchmarks.rules_1000 import RULES_1000, generate, render
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
