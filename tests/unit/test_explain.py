"""The explain document (streams/engine/explain.py), built from a stored state with the engine's own
code: feature values, each condition's sub-expressions, since when, flap-control gates, the next due
time with its reason, and changes that fell due but are not stored yet (no network)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson

from schemas.api import CustomerExplain, TagExplain
from streams.engine.explain import explain_customer
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from tag_rules import load_rules

S = 1000
M = 60 * S
H = 60 * M
T0 = 1_800_000_000_000  # a whole hour: bucket boundaries below are round
_ids = itertools.count()

RULES = """
version: explain-1
features:
  - {name: views_1h, agg: count, window: 1h, sources: [clickstream], where: type == "product_view"}
  - {name: spend, agg: sum, field: amount, sources: [pos]}
  - {name: purchases, agg: count, sources: [pos]}
  - {name: since_purchase, agg: since_last, sources: [pos]}
tags:
  - name: hot
    description: Ten product views in an hour.
    when: views_1h >= 10 and (spend < 100 or purchases == 0)
  - name: lapsed
    when: purchases >= 1 and since_purchase >= days(30)
  - name: sticky
    enter: views_1h >= 3
    exit: views_1h < 2
    min_duration: 2h
    cooldown: 1h
"""


def engine(tmp_path: Path, text: str = RULES) -> TagEngine:
    p = tmp_path / "rules.yaml"
    p.write_text(text)
    return TagEngine(load_rules(p))


def event(ts_ms: int, source: str = "clickstream", typ: str = "product_view", amount: float | None = None
          ) -> dict[str, Any]:
    return {"event_id": f"e{next(_ids)}", "source": source, "type": typ, "customer_id": "c1", "ts_ms": ts_ms,
            "src_ts_ms": ts_ms, "amount": amount, "currency": None, "skus": [], "categories": [], "channel": None,
            "store_id": None, "session_id": None, "order_id": None, "payment_method": None, "quantity": None,
            "query": None, "url": None}


def views(eng: TagEngine, state: CustomerState, at_ms: int, n: int) -> None:
    for i in range(n):
        eng.process_event(state, event(at_ms + i), at_ms + i)


def explain(eng: TagEngine, state: CustomerState, now_ms: int) -> CustomerExplain:
    """As the lookup does it: from the state's stored bytes, so nothing of the caller's copy is shared."""
    doc = explain_customer(eng, "c1", CustomerState.loads(state.dumps()), now_ms, topic="t-changelog",
                           partition=1, offset=41, written_ms=now_ms - 5)
    CustomerExplain.model_validate_json(doc.model_dump_json())  # the API's JSON reads back as the model
    return doc


def tag(doc: CustomerExplain, name: str) -> TagExplain:
    return next(t for t in doc.tags if t.tag == name)


def test_feature_values_conditions_and_sub_expressions(tmp_path: Path) -> None:
    eng, state = engine(tmp_path), CustomerState()
    views(eng, state, T0, 10)
    eng.process_event(state, event(T0 + 10 * S, "pos", "sale", 40.0), T0 + 10 * S)
    doc = explain(eng, state, T0 + M)

    assert {f.name: f.value for f in doc.features} == {"views_1h": 10, "spend": 40.0, "purchases": 1,
                                                      "since_purchase": 50.0}
    assert doc.rules_version == "explain-1" and doc.state.rule_version == "explain-1"
    assert (doc.state.partition, doc.state.offset, doc.state.topic) == (1, 41, "t-changelog")
    hot = tag(doc, "hot")
    assert hot.holds and hot.published and hot.since_ms == T0 + 9  # the tenth view added it
    assert hot.description == "Ten product views in an hour." and hot.gate is None
    [when] = hot.conditions
    assert when.key == "when" and when.decides and when.holds
    assert [(p.text, p.value, p.depth) for p in when.parts] == [
        ("views_1h >= 10 and (spend < 100 or purchases == 0)", True, 0),
        ("views_1h >= 10", True, 1),
        ("spend < 100 or purchases == 0", True, 1),
        ("spend < 100", True, 2),
        ("purchases == 0", False, 2),
    ]
    lapsed = tag(doc, "lapsed")
    assert not lapsed.holds and lapsed.since_ms is None and not lapsed.conditions[0].holds
    assert [(p.text, p.value) for p in lapsed.conditions[0].parts][1:] == [
        ("purchases >= 1", True), ("since_purchase >= days(30)", False)]
    assert doc.pending == []


def test_the_next_due_time_names_the_bucket_that_leaves_and_the_threshold(tmp_path: Path) -> None:
    eng, state = engine(tmp_path), CustomerState()
    views(eng, state, T0, 10)
    eng.process_event(state, event(T0 + 10 * S, "pos", "sale", 40.0), T0 + 10 * S)
    doc = explain(eng, state, T0 + M)
    # 1h window, 1 min buckets: the bucket of T0 leaves at T0 + 1 min + 1 h
    assert doc.next_due is not None and doc.next_due.at_ms == T0 + M + H == state.due_ms
    [reason] = doc.next_due.reasons
    assert reason.kind == "window" and reason.name == "views_1h"
    assert "2027-01-15T08:00:00.000Z … 2027-01-15T08:01:00.000Z" in reason.text and "1h window" in reason.text
    features = {f.name: f for f in doc.features}
    assert features["views_1h"].next_change_ms == T0 + M + H and features["views_1h"].window_ms == H
    assert features["spend"].next_change_ms is None and features["spend"].window_ms is None
    assert features["since_purchase"].next_change_ms == T0 + 10 * S + 30 * 24 * H
    assert tag(doc, "hot").next_due_ms == T0 + M + H
    assert tag(doc, "lapsed").next_due_ms == T0 + 10 * S + 30 * 24 * H

    # once the views are gone, the time-since threshold is what is next
    later = explain(eng, state, T0 + 4 * H)  # (and sticky's min_duration and cooldown have passed)
    assert later.next_due is not None and later.next_due.at_ms == T0 + 10 * S + 30 * 24 * H
    assert [(r.kind, r.name) for r in later.next_due.reasons] == [("since_last", "since_purchase")]
    assert "since_purchase reaches 30d" in later.next_due.reasons[0].text


def test_a_change_due_before_now_is_applied_and_listed_as_pending(tmp_path: Path) -> None:
    eng, state = engine(tmp_path), CustomerState()
    views(eng, state, T0, 10)
    assert "hot" in state.tags
    now = T0 + 2 * H + S  # the worker's timer has not run: the stored state still holds hot and sticky
    doc = explain(eng, state, now)
    hot = tag(doc, "hot")
    assert not hot.holds and hot.published and hot.since_ms is None
    assert {f.name: f.value for f in doc.features}["views_1h"] == 0
    assert [(p.tag, p.op, p.cause) for p in doc.pending] == [("hot", "remove", "expiry"),
                                                             ("sticky", "remove", "expiry")]
    # each at its own instant, as the worker publishes it: hot when the views left, sticky at its min_duration gate
    assert [p.at_ms for p in doc.pending] == [T0 + M + H, T0 + 2 + 2 * H]


def test_hysteresis_shows_which_condition_decides(tmp_path: Path) -> None:
    eng, state = engine(tmp_path), CustomerState()
    doc = explain(eng, state, T0)
    sticky = tag(doc, "sticky")
    assert [(c.key, c.decides, c.holds) for c in sticky.conditions] == [("enter", True, False), ("exit", False, True)]
    views(eng, state, T0, 3)
    sticky = tag(explain(eng, state, T0 + S), "sticky")
    assert sticky.holds and sticky.since_ms == T0 + 2
    assert [(c.key, c.decides, c.holds) for c in sticky.conditions] == [("enter", False, True), ("exit", True, False)]


def test_min_duration_and_cooldown_say_what_they_hold_and_until_when(tmp_path: Path) -> None:
    eng, state = engine(tmp_path), CustomerState()
    views(eng, state, T0, 3)  # sticky added at T0 + 2
    # one hour on, the views are gone: exit holds, min_duration (2h) keeps the tag until T0 + 2 + 2h
    doc = explain(eng, state, T0 + M + H + 1)
    sticky = tag(doc, "sticky")
    assert sticky.holds and sticky.conditions[1].holds
    assert sticky.gate is not None and sticky.gate.kind == "min_duration" and sticky.gate.holding
    assert sticky.gate.until_ms == T0 + 2 + 2 * H == sticky.next_due_ms
    assert doc.next_due is not None and doc.next_due.at_ms == T0 + 2 + 2 * H
    assert [(r.kind, r.name) for r in doc.next_due.reasons] == [("min_duration", "sticky")]
    # within the min_duration with the enter condition still true: the gate is there but holds nothing back
    early = tag(explain(eng, state, T0 + M), "sticky")
    assert early.gate is not None and not early.gate.holding

    # removed at the gate; views come back within the cooldown: enter holds, the cooldown holds it out
    eng.process_due(state, "c1", T0 + M + H, T0 + M + H)
    eng.process_due(state, "c1", T0 + 2 + 2 * H, T0 + 2 + 2 * H)
    assert "sticky" not in state.tags and state.removed["sticky"] == T0 + 2 + 2 * H
    views(eng, state, T0 + 2 * H + M, 3)
    doc = explain(eng, state, T0 + 2 * H + 2 * M)
    sticky = tag(doc, "sticky")
    assert not sticky.holds and sticky.since_ms == T0 + 2 + 2 * H  # the removal time a cooldown keeps
    assert sticky.conditions[0].decides and sticky.conditions[0].holds
    assert sticky.gate is not None and sticky.gate.kind == "cooldown" and sticky.gate.holding
    assert sticky.gate.until_ms == T0 + 2 + 3 * H
    assert doc.next_due is not None and doc.next_due.at_ms == T0 + 2 + 3 * H
    assert ("cooldown", "sticky") in [(r.kind, r.name) for r in doc.next_due.reasons]


def test_a_state_under_another_rule_version_is_evaluated_as_after_a_deploy(tmp_path: Path) -> None:
    old, state = engine(tmp_path), CustomerState()
    views(old, state, T0, 10)
    new_rules = RULES.replace("explain-1", "explain-2").replace("views_1h >= 10 and", "views_1h >= 20 and")
    new = engine(tmp_path, new_rules)
    doc = explain(new, state, T0 + M)
    assert doc.state.rule_version == "explain-1" and doc.rules_version == "explain-2"
    hot = tag(doc, "hot")
    assert not hot.holds and hot.published
    assert ("hot", "remove", "rule_change") in [(p.tag, p.op, p.cause) for p in doc.pending]
    assert hot.conditions[0].parts[1].text == "views_1h >= 20" and hot.conditions[0].parts[1].value is False


def test_the_document_is_json_with_null_for_no_value(tmp_path: Path) -> None:
    text = RULES.replace("  - {name: spend,", "  - {name: avg_1h, agg: avg, field: amount, window: 1h}\n"
                                            "  - {name: spend,").replace(
        "    when: purchases >= 1 and since_purchase >= days(30)",
        "    when: purchases >= 1 and since_purchase >= days(30) or coalesce(avg_1h, 0) > 5")
    eng, state = engine(tmp_path, text), CustomerState()
    views(eng, state, T0, 1)
    body = orjson.loads(explain(eng, state, T0 + S).model_dump_json())
    assert {f["name"]: f["value"] for f in body["features"]}["avg_1h"] is None
    assert body["features"][0]["name"] == "avg_1h"  # sorted by name
    assert [p["value"] for p in body["tags"][1]["conditions"][0]["parts"] if p["text"] == "coalesce(avg_1h, 0)"] == [0]


def test_the_text_report_shows_values_conditions_gates_and_what_is_due(tmp_path: Path) -> None:
    from streams.tools.explain import render_text

    eng, state = engine(tmp_path), CustomerState()
    views(eng, state, T0, 10)
    text = render_text(explain(eng, state, T0 + M + H + 1))  # hot fell due at T0 + 1h1m; sticky is held in
    assert "customer c1 at 2027-01-15T09:01:00.001Z, rules explain-1" in text
    assert "state: t-changelog[1]@41" in text
    assert "  hot: out (since: not recorded" in text and "[stored state says IN: see pending]" in text
    assert "    when: views_1h >= 10 and (spend < 100 or purchases == 0)   = false" in text
    assert "      views_1h >= 10   = false" in text and "        spend < 100   = true" in text
    assert "  sticky: IN since 2027-01-15T08:00:00.002Z" in text
    assert "    min_duration keeps it in until 2027-01-15T10:00:00.002Z (its condition asks for a change" in text
    assert "    exit: views_1h < 2   = true   <- decides now" in text
    assert "  remove hot at 2027-01-15T09:01:00.000Z (expiry)" in text
    assert text.endswith("next due 2027-01-15T10:00:00.002Z:\n  sticky: min_duration ends (it may leave then)")


def test_an_absence_feature_is_a_due_reason(tmp_path: Path) -> None:
    """A cart with no purchase: the next due time is the cart's time + 24 h, explained by the
    absence feature (it had no window bucket to name: the explain crashed on it)."""
    eng = TagEngine(load_rules(Path(__file__).parents[2] / "tag_rules" / "examples" / "sequences.yaml"))
    state = CustomerState()
    eng.process_event(state, event(T0, typ="add_to_cart"), T0)
    where: dict[str, Any] = {"topic": "t-changelog", "partition": 0, "offset": 1, "written_ms": T0}
    doc = explain_customer(eng, "c1", CustomerState.loads(state.dumps()), T0 + H, **where)
    assert doc.next_due is not None and doc.next_due.at_ms == T0 + 24 * H
    assert [(r.kind, r.name) for r in doc.next_due.reasons] == [("sequence", "cart_abandoned_24h")]
    after = explain_customer(eng, "c1", CustomerState.loads(state.dumps()), T0 + 25 * H, **where)
    assert [t.tag for t in after.tags if t.published or t.holds] == ["cart_abandoner"]
