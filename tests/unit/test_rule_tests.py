"""``tagstream rules test``: the shipped retail fixtures pass (CI runs them here); failures say
why; bad fixtures are file:line:col errors with exit code 2; compact events are completed and
decoded by the real decoder; sub-expressions are explained; flap-controlled tags are tested at
their gates (no network)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from schemas.decode import decode_event
from schemas.events import OrderEvent, PosEvent
from streams.cli import main
from streams.tools.rule_fixtures import complete, fixtures_for, format_at, load_fixtures, parse_at_ms
from streams.tools.rule_tests import load_checked, run_fixtures
from tag_rules import DEFAULT_RULES, compile_expr, load_rules
from tag_rules.explain import explain

RULES = """
version: t1
features:
  - {name: views_1h, agg: count, window: 1h, sources: [clickstream], where: type == "product_view"}
  - {name: spend_30d, agg: sum, field: amount, window: 30d, sources: [pos, orders]}
  - {name: since_buy, agg: since_last, sources: [pos, orders]}
  - {name: unused, agg: count}
tags:
  - {name: browsing, when: views_1h >= 3 and (spend_30d < 100 or since_buy >= days(7)), min_duration: 2h}
  - {name: spender, enter: spend_30d >= 100, exit: spend_30d < 50, cooldown: 1d}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_the_shipped_retail_fixtures_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert fixtures_for(DEFAULT_RULES) == [DEFAULT_RULES.with_name("retail.tests.yaml")]
    assert main(["rules", "test", str(DEFAULT_RULES)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 7 case(s), 17 expectation(s), 0 failed")


def test_fixtures_are_not_rule_files_of_a_folder() -> None:
    assert load_rules(DEFAULT_RULES.parent).tags.keys() == load_rules(DEFAULT_RULES).tags.keys()


FIXTURES = """\
origin: "2026-05-01T00:00:00Z"
cases:
  - name: browsing holds for two hours
    customer: c1
    events:
      - {at: 0s, source: clickstream, type: product_view, repeat: 3, every: 1s}
    expect:
      - {at: 1m, tags: [browsing], features: {views_1h: 3}}
      - {at: 1h59m, tags: [browsing], features: {views_1h: 0}}
      - {at: 2h1s, tags: [browsing]}
      - {at: 2h2s, absent: [browsing]}
  - name: spender with hysteresis and a cooldown
    customer: c2
    events:
      - {at: 0s, source: orders, type: paid, amount: 120}
      - {at: 31d, source: pos, type: sale, amount: 110}
    expect:
      - {at: 1h, tags: [spender], features: {spend_30d: 120.0}}
      - {at: 30d12h, absent: [spender]}
      - {at: 31d, absent: [spender]}
      - {at: 31d12h, tags: [spender]}
"""


def test_flap_controlled_tags_change_at_their_gates(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, "r.yaml", RULES))
    [fixtures], errors = load_checked(rules, [write(tmp_path, "r.tests.yaml", FIXTURES)])
    assert errors == []
    result = run_fixtures(rules, fixtures)
    assert (result.cases, result.expectations, result.failures) == (2, 8, [])


def test_a_failure_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "r.yaml", RULES)
    write(tmp_path, "r.tests.yaml", FIXTURES.replace("{at: 2h1s, tags: [browsing]}", "{at: 2h1s, absent: [browsing]}")
          .replace("{at: 31d12h, tags: [spender]}", "{at: 31d12h, tags: [spender], features: {spend_30d: 111}}"))
    assert main(["rules", "test", str(tmp_path / "r.yaml")]) == 1
    out = capsys.readouterr().out
    assert "r.tests.yaml:10: case 'browsing holds for two hours': customer c1 at 2h1s" in out
    assert "(2026-05-01T02:00:01.000Z)" in out
    assert "tag browsing: expected absent, is present" in out
    assert "when: views_1h >= 3 and (spend_30d < 100 or since_buy >= days(7))  -> false" in out
    assert "views_1h >= 3  -> false" in out and "spend_30d < 100 or since_buy >= days(7)  -> true" in out
    assert "min_duration: held since 2026-05-01T00:00:02.000Z, cannot leave before 2026-05-01T02:00:02.000Z" in out
    assert "features of c1: since_buy=null, spend_30d=0, views_1h=0" in out
    assert "tag changes so far: +browsing at 2s (event)" in out
    assert "feature spend_30d: expected 111, is 110.0" in out
    fixtures = tmp_path / "r.tests.yaml"
    assert out.rstrip().endswith(f"FAILED: 2 case(s), 8 expectation(s), 2 failed ({fixtures})")


@pytest.mark.parametrize("fixture,needle", [
    ("cases: []", "r.tests.yaml:1:8: no cases"),
    ("cases:\n  - {name: x, customer: c, expect: [{at: 1h, tags: [spendr]}]}",
     "r.tests.yaml:2: case 'x': unknown tag 'spendr'; did you mean 'spender'?"),
    ("cases:\n  - {name: x, customer: c, expect: [{at: 1h, features: {unused: 1}}]}",
     "case 'x': feature 'unused' is read by no tag, so none is kept"),
    ("cases:\n  - {name: x, customer: c, expect: [{at: -1h, tags: [spender]}]}",
     "r.tests.yaml:2:42: case 'x': at: expected a duration from the origin"),
    ("cases:\n  - name: x\n    customer: c\n    events: [{at: 0s, source: orders, type: paid, amount: \"9\"}]\n"
     "    expect: [{at: 1h, tags: [spender]}]",
     "r.tests.yaml:4:60: case 'x': orders event rejected by the decoder (invalid_field): field 'amount'"),
    ("cases:\n  - name: x\n    customer: c\n    events: [{at: 0s, source: pos, type: sale, amount: 5, member_id: d}]\n"
     "    expect: [{at: 1h, tags: [spender]}]", "case 'x': event: its customer is 'd', not the case's 'c'"),
    ("cases:\n  - {name: x, customer: c, expect: [{at: 1h, tags: [spender], when: 1}]}",
     "case 'x': when: unknown key"),
    ("cases: [\n", "r.tests.yaml:3:1: YAML syntax error"),
])
def test_bad_fixtures_are_positioned_errors_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              fixture: str, needle: str) -> None:
    write(tmp_path, "r.yaml", RULES)
    write(tmp_path, "r.tests.yaml", fixture + "\n")
    assert main(["rules", "test", str(tmp_path / "r.yaml")]) == 2
    out = capsys.readouterr().out
    assert needle in out, out


def test_missing_fixtures_and_a_bad_rule_set_are_exit_code_2(tmp_path: Path) -> None:
    assert main(["rules", "test", str(write(tmp_path, "r.yaml", RULES))]) == 2
    assert main(["rules", "test", str(write(tmp_path, "bad.yaml", "tags: []")), str(tmp_path / "x")]) == 2


def test_compact_events_are_completed_into_valid_source_events() -> None:
    pos = complete("pos", {"type": "sale", "amount": 90, "categories": ["a", "b"]}, "c9", "1.1", 1_800_000_000_000)
    assert pos["items"] == [{"sku": "sku-1", "category": "a", "qty": 1, "unit_price": 45.0},
                            {"sku": "sku-2", "category": "b", "qty": 1, "unit_price": 45.0}]
    decoded = decode_event("pos", orjson.dumps(pos))
    assert isinstance(decoded, PosEvent) and decoded.member_id == "c9" and decoded.total == 90
    order = complete("orders", {"type": "refunded", "amount": 5}, "c9", "1.2", 1_800_000_000_000)
    assert order["status"] == "refunded" and "type" not in order
    decoded_order = decode_event("orders", orjson.dumps(order))
    assert isinstance(decoded_order, OrderEvent) and decoded_order.status == "refunded"


def test_relative_instants() -> None:
    assert parse_at_ms("1d2h3m4s5ms") == 93_784_005 and format_at(93_784_005) == "1d2h3m4s5ms"
    assert parse_at_ms("0s") == 0 and format_at(0) == "0s"
    for bad in ("", "1x", "-1s", "1.5h", 5, "99999d"):
        with pytest.raises(ValueError):
            parse_at_ms(bad)


def test_explain_lists_every_sub_expression_with_its_value() -> None:
    expr = compile_expr("a >= 1 and not (b < 2 or c == \"x\")", names=["a", "b", "c"])
    parts = [(p.depth, p.text, p.value) for p in explain(expr, {"a": 3, "b": 1, "c": "y"})]
    assert parts == [(0, 'a >= 1 and not (b < 2 or c == "x")', False), (1, "a >= 1", True),
                     (1, 'not (b < 2 or c == "x")', False), (2, 'b < 2 or c == "x"', True),
                     (3, "b < 2", True), (3, 'c == "x"', False)]


def test_fixture_loading_collects_every_problem(tmp_path: Path) -> None:
    _, errors = load_fixtures(write(tmp_path, "f.tests.yaml", "origin: 5\ncases:\n  - 3\n  - {customer: c}\n"))
    assert [str(e).split(": ", 1)[1] for e in errors] == [
        "origin: expected an RFC 3339 instant such as 2026-01-01T00:00:00Z, not 5",
        "case #1: a case is a mapping with name, customer, events and expect",
        "case #2: name: a case needs a name (text)",
        "case #2: expect: a case needs a list of expectations"]


def test_an_event_time_relative_to_the_origin_makes_a_late_event(tmp_path: Path) -> None:
    p = tmp_path / "late.tests.yaml"
    p.write_text("""\
origin: "2026-03-02T09:00:00Z"
cases:
  - name: late
    customer: c1
    events:
      - {at: 25h, ts: 23h, source: orders, type: paid, amount: 5}
      - {at: 1h, ts: 2026-03-02T09:30:00Z, source: clickstream, type: page_view}
      - {at: 2h, ts: 5x, source: clickstream, type: page_view}
    expect:
      - {at: 1d, absent: [t]}
""")
    fixtures, errors = load_fixtures(p)
    assert [str(e) for e in errors] == [f"{p}:8:22: case 'late': ts: expected a duration from the origin such as "
                                        "0s, 90s or 1h30m, not '5x' (or an RFC 3339 instant)"]
    origin = 1_772_442_000_000
    paid, view = fixtures.cases[0].events
    assert (paid.at_ms, paid.event["ts_ms"]) == (25 * 3_600_000, origin + 23 * 3_600_000)
    assert view.event["ts_ms"] == origin + 30 * 60_000
