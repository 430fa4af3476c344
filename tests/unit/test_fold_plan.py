"""``streams.engine.fold_plan``: an event's plan feeds exactly the features whose ``matches`` says
so, in the same order, for every rule file we ship (plain, sequence and absence features, filters on
source/type alone and on other fields), on the generator's events of every source and type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schemas.canonical import to_canonical
from schemas.decode import decode_event
from schemas.events import CLICK_TYPES, ORDER_STATUSES, POS_TYPES, SOURCES
from streams.engine.features.runtime import Runtime
from streams.engine.fold_plan import FoldPlans
from streams.engine.tag_engine import TagEngine
from streams.tools.generator import RetailGenerator
from tag_rules import load_rules

REPO = Path(__file__).parents[2]
RULE_FILES = [REPO / "tag_rules" / "retail.yaml", REPO / "tag_rules" / "examples" / "sequences.yaml",
              REPO / "benchmarks" / "reference_rules.yaml", REPO / "benchmarks" / "rules_1000_selective.yaml"]


def events() -> list[dict[str, Any]]:
    out = []
    for e in RetailGenerator(seed=3, customers=300, identity=True).take(4000):
        if e.source in SOURCES and e.valid:
            out.append(to_canonical(e.source, decode_event(e.source, e.value), 1_800_000_000_000))
    return out


def fed(steps: list[tuple[Runtime, int]], event: dict[str, Any]) -> list[str]:
    return [rt.key for rt, slot in steps if slot < 0 or rt.matches(event)]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_plans_feed_what_matches_says(path: Path) -> None:
    engine = TagEngine(load_rules(path))
    by_source: dict[str, list[tuple[Runtime, int]]] = {
        src: [(rt, 0) for rt in engine.runtimes if src in rt.sources] for src in SOURCES}
    plans = FoldPlans(by_source)
    evs = events()
    assert {(e["source"], e["type"]) for e in evs} == {
        *(("clickstream", t) for t in CLICK_TYPES), *(("pos", t) for t in POS_TYPES),
        *(("orders", t) for t in ORDER_STATUSES)}, "every pair is exercised"
    for event in evs:
        want = [rt.key for rt, _ in by_source[event["source"]] if rt.matches(event)]
        assert fed(plans.steps(event), event) == want


def test_a_filter_on_source_and_type_is_decided_once_others_per_event(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("""
version: v1
features:
  - {name: views, agg: count, sources: [clickstream], where: type == "product_view", window: 1h}
  - {name: shoe_views, agg: count, sources: [clickstream], where: type == "product_view" and "shoes" in categories,
     window: 1h}
  - {name: clicks, agg: count, sources: [clickstream], window: 1h}
tags:
  - {name: t, when: views > 0 or shoe_views > 0 or clicks > 0}
""")
    engine = TagEngine(load_rules(rules))
    names = {rt.key: rt.name for rt in engine.runtimes}
    plans = FoldPlans({"clickstream": [(rt, -1 if rt.filter_key is None else i)
                                       for i, rt in enumerate(engine.runtimes)]})
    view = {"source": "clickstream", "type": "product_view", "categories": []}
    search = {"source": "clickstream", "type": "search", "categories": []}
    assert sorted((names[rt.key], slot >= 0) for rt, slot in plans.steps(view)) == [
        ("clicks", False), ("shoe_views", True), ("views", False)]
    assert sorted((names[rt.key], slot >= 0) for rt, slot in plans.steps(search)) == [
        ("clicks", False), ("shoe_views", True)]
