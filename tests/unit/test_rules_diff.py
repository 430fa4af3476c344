"""Shadow evaluation (`tagstream rules diff`), pure part: two rule sets on hand-made states;
per-tag added / removed / unchanged, backfill detection, sample limits (no network)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.cli import main
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from streams.tools.rules_diff import RulesDiff, Samples, backfill_features, render_table
from tag_rules import CompiledRuleSet, load_rules

H = 3_600_000
T0 = 1_800_000_000_000

OLD = """
version: old-1
features:
  - {name: spend, agg: sum, field: amount}
  - {name: views_1h, agg: count, window: 1h, sources: [clickstream]}
  - {name: orders_n, agg: count, sources: [orders]}
tags:
  - {name: big, when: spend >= 100}
  - {name: browsing, when: views_1h >= 2}
  - {name: spender, when: spend > 0}
"""

NEW = """
version: new-1
features:
  - {name: spending, agg: sum, field: amount}
  - {name: views_1h, agg: count, window: 1h, sources: [clickstream]}
  - {name: orders_n, agg: count, sources: [orders]}
  - {name: carts, agg: count, where: type == "add_to_cart"}
tags:
  - {name: big, when: spending >= 50}
  - {name: browsing, when: views_1h >= 2}
  - {name: cartless, when: carts == 0 and spending > 0}
  - {name: orderer, when: orders_n >= 1}
"""


def rules(tmp_path: Path, name: str, text: str) -> CompiledRuleSet:
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return load_rules(p)


def event(customer: str, source: str, typ: str, ts_ms: int = T0, **kw: Any) -> dict[str, Any]:
    base = {"event_id": f"e{random.random()}", "source": source, "type": typ, "customer_id": customer,
            "ts_ms": ts_ms, "src_ts_ms": ts_ms, "amount": None, "currency": None, "skus": [], "categories": [],
            "channel": None, "store_id": None, "session_id": None, "order_id": None, "payment_method": None,
            "quantity": None, "query": None, "url": None}
    base.update(kw)
    return base


def states(old: CompiledRuleSet, events: list[dict[str, Any]]) -> dict[str, bytes]:
    """Each customer's encoded state after the events, as a worker under ``old`` writes it."""
    engine = TagEngine(old)
    out: dict[str, CustomerState] = {}
    for e in events:
        engine.process_event(out.setdefault(e["customer_id"], CustomerState()), e, e["ts_ms"])
    return {cid: s.dumps() for cid, s in out.items()}


def paid(customer: str, amount: float, ts_ms: int = T0) -> dict[str, Any]:
    return event(customer, "orders", "paid", ts_ms, amount=amount)


def views(customer: str, n: int, ts_ms: int = T0) -> list[dict[str, Any]]:
    return [event(customer, "clickstream", "product_view", ts_ms) for _ in range(n)]


@pytest.fixture
def old_new(tmp_path: Path) -> tuple[CompiledRuleSet, CompiledRuleSet]:
    return rules(tmp_path, "old", OLD), rules(tmp_path, "new", NEW)


def test_each_tag_counts_who_gains_loses_and_keeps_it(old_new: tuple[CompiledRuleSet, CompiledRuleSet]) -> None:
    old, new = old_new
    raw = states(old, [paid("c1", 120), *views("c1", 3), paid("c2", 60), paid("c3", 10), *views("c4", 1)])
    diff = RulesDiff(old, new, now_ms=T0 + 1000)
    for cid, value in raw.items():
        diff.add_state(cid, value)
    report = diff.report()
    by_tag = {t.tag: t for t in report.tags}
    assert list(by_tag) == ["big", "browsing", "spender", "cartless", "orderer"]  # old order, then new tags
    counts = {t: (d.added.count, d.removed.count, d.unchanged.count) for t, d in by_tag.items()}
    assert counts == {"big": (1, 0, 1), "browsing": (0, 0, 1), "spender": (0, 3, 0), "cartless": (3, 0, 0),
                      "orderer": (0, 0, 0)}
    assert by_tag["big"].added.ids == ["c2"] and by_tag["big"].unchanged.ids == ["c1"]
    assert by_tag["spender"].removed.ids == ["c1", "c2", "c3"]
    assert {t: d.status for t, d in by_tag.items()} == {
        "big": "changed", "browsing": "same", "spender": "only in old", "cartless": "only in new",
        "orderer": "only in new"}
    assert report.customers == 4 and report.drift.count == 0 and report.rule_versions == {"old-1": 4}


def test_the_stored_state_is_left_as_it_was(old_new: tuple[CompiledRuleSet, CompiledRuleSet]) -> None:
    """Both evaluations run on decoded copies: the bytes a caller hands in decode to the same state
    afterwards (an engine writing into a shared object would show here as changed tags)."""
    old, new = old_new
    raw = states(old, [paid("c1", 120)])["c1"]
    before = CustomerState.loads(raw)
    diff = RulesDiff(old, new, now_ms=T0 + 1000)
    diff.add_state("c1", raw)
    assert CustomerState.loads(raw) == before and set(before.tags) == {"big", "spender"}


def test_features_without_state_are_flagged_needs_backfill(tmp_path: Path) -> None:
    old = rules(tmp_path, "old", OLD)
    new = rules(tmp_path, "new", NEW.replace("window: 1h", "window: 2h"))
    # spending: a renamed spend (same definition) keeps its state; carts is new; orders_n was defined
    # but read by no tag (no state kept); views_1h changed its window
    assert backfill_features(old, new) == {"carts": "new", "orders_n": "unread", "views_1h": "redefined"}
    diff = RulesDiff(old, new, now_ms=T0)
    by_tag = {t.tag: t for t in diff.report().tags}
    assert by_tag["cartless"].needs_backfill == {"carts": "new"}
    assert by_tag["orderer"].needs_backfill == {"orders_n": "unread"}
    assert by_tag["browsing"].needs_backfill == {"views_1h": "redefined"}
    assert by_tag["browsing"].status == "changed"  # same `when`, a feature it reads was redefined
    assert by_tag["big"].needs_backfill == {}


def test_the_new_rules_see_empty_features_where_backfill_is_needed(tmp_path: Path) -> None:
    """The counts are what a deploy without backfill does: carts starts at 0 even for a customer
    whose events had carts (the old rules kept no state for them)."""
    old, new = rules(tmp_path, "old", OLD), rules(tmp_path, "new", NEW)
    raw = states(old, [paid("c1", 20), event("c1", "clickstream", "add_to_cart")])
    diff = RulesDiff(old, new, now_ms=T0 + 1000)
    diff.add_state("c1", raw["c1"])
    cartless = next(t for t in diff.report().tags if t.tag == "cartless")
    assert cartless.added.ids == ["c1"]


def test_the_baseline_is_the_current_rules_now_not_stale_stored_tags(
        old_new: tuple[CompiledRuleSet, CompiledRuleSet]) -> None:
    """A tag that left with time (views out of the 1 h window) while no worker re-evaluated is
    not a removal by the new rules; the customer is reported as drift instead."""
    old, new = old_new
    raw = states(old, [*views("c1", 3), paid("c1", 120)])
    assert "browsing" in CustomerState.loads(raw["c1"]).tags
    diff = RulesDiff(old, new, now_ms=T0 + 3 * H)
    diff.add_state("c1", raw["c1"])
    report = diff.report()
    browsing = next(t for t in report.tags if t.tag == "browsing")
    assert (browsing.added.count, browsing.removed.count, browsing.unchanged.count) == (0, 0, 0)
    assert report.drift.count == 1 and report.drift.ids == ["c1"]


def test_deleted_and_unreadable_states_are_counted_apart(old_new: tuple[CompiledRuleSet, CompiledRuleSet]) -> None:
    old, new = old_new
    diff = RulesDiff(old, new, now_ms=T0)
    diff.add_state("gone", None)
    diff.add_state("junk", b"\xff not json")
    diff.add_state("list", b"[1, 2]")
    report = diff.report()
    assert (report.customers, report.deleted, report.unreadable) == (0, 1, 2)


@pytest.mark.parametrize("limit", [0, 1, 3, 20])
def test_samples_keep_the_smallest_ids_up_to_the_limit(limit: int) -> None:
    ids = [f"c{i:03d}" for i in range(12)]
    s = Samples(limit)
    for cid in random.Random(limit).sample(ids, len(ids)):
        s.add(cid)
    assert s.count == 12 and s.ids == ids[:limit]


def test_samples_option_limits_every_list(old_new: tuple[CompiledRuleSet, CompiledRuleSet]) -> None:
    old, new = old_new
    raw = states(old, [paid(f"c{i:02d}", 10 + i) for i in range(9)])
    diff = RulesDiff(old, new, now_ms=T0 + 1000, samples=2)
    for cid, value in raw.items():
        diff.add_state(cid, value)
    report = diff.report()
    spender = next(t for t in report.tags if t.tag == "spender")
    assert spender.removed.count == 9 and spender.removed.ids == ["c00", "c01"]


def test_table_and_json_carry_the_same_report(old_new: tuple[CompiledRuleSet, CompiledRuleSet]) -> None:
    old, new = old_new
    raw = states(old, [paid("c1", 120), paid("c2", 60)])
    diff = RulesDiff(old, new, now_ms=T0 + 1000)
    for cid, value in raw.items():
        diff.add_state(cid, value)
    report = diff.report()
    doc = orjson.loads(orjson.dumps(report.to_json()))
    big = next(t for t in doc["tags"] if t["tag"] == "big")
    assert big["added"] == {"count": 1, "samples": ["c2"]} and big["status"] == "changed"
    assert doc["needs_backfill"] == {"carts": "new", "orders_n": "unread"}
    table = render_table(report)
    assert "old-1 -> new-1, 2 customers" in table
    assert any(ln.split()[:5] == ["big", "changed", "1", "0", "1"] for ln in table.splitlines())
    assert "needs backfill: carts (new) start empty" in table
    assert "after the deploy: tagstream backfill carts" in table


def test_a_new_rule_set_with_errors_exits_2_with_file_line_col(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked before any broker is contacted (the bootstrap address here is unreachable)."""
    monkeypatch.setenv("TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    bad = tmp_path / "bad.yaml"
    bad.write_text("features:\n  - {name: x, agg: count}\ntags:\n  - {name: t, when: y >= 1}\n")
    assert main(["rules", "diff", str(bad)]) == 2
    out = capsys.readouterr().out
    assert f"{bad}:4:" in out and "'y'" in out
