"""Runs rule-test fixtures through the engine in-process, on a simulated clock.

Each case starts from an empty customer state. Its events and expectations are taken in time
order (at one instant, events first); before each expectation the due times up to that instant
run, exactly as the worker's timer runs them (so a tag that leaves with no event is checked
too), then the customer's tags and feature values are compared. A failure says which case,
customer and instant, what was expected and what is, the customer's feature values, every
sub-expression of a disagreeing tag's conditions with its value, and the tag changes so far.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import Change, TagEngine
from streams.tools.rule_fixtures import Case, Expectation, Fixtures, format_at, load_fixtures
from tag_rules import CompiledRuleSet, RuleError, TagDef
from tag_rules.explain import explain
from tag_rules.names import unknown_message


@dataclass
class Failure:
    """One expectation that did not hold, with everything needed to see why."""

    file: str
    case: Case
    expect: Expectation
    at_ms: int
    """Absolute (epoch ms)."""
    problems: list[str]
    values: dict[str, Any]
    explained: list[str]
    history: list[Change]


@dataclass
class RunResult:
    cases: int = 0
    expectations: int = 0
    failures: list[Failure] = field(default_factory=list)


def load_checked(rules: CompiledRuleSet, files: list[Path]) -> tuple[list[Fixtures], list[RuleError]]:
    """Loads every fixtures file and checks it against ``rules``; returns the files that loaded
    and every problem found (bad fixtures: ``file:line:col`` errors)."""
    loaded, errors = [], []
    for path in files:
        fixtures, problems = load_fixtures(path)
        errors += problems + check_names(rules, fixtures)
        loaded.append(fixtures)
    return loaded, errors


def check_names(rules: CompiledRuleSet, fixtures: Fixtures) -> list[RuleError]:
    """Tags and features the fixtures name that the rule set does not have (or does not keep)."""
    kept = {n for tag in rules.tags.values() for n in tag.features}
    errors = []
    for case in fixtures.cases:
        for x in case.expects:
            for name in (*x.tags, *x.absent):
                if name not in rules.tags:
                    msg = unknown_message(f"unknown tag '{name}'", name, rules.tags, "rule set", "tags")
                    errors.append(RuleError(fixtures.file, msg, f"case '{case.name}'", x.line))
            for name in x.features:
                if name not in kept:
                    why = "is not declared" if name not in rules.features else "is read by no tag, so none is kept"
                    errors.append(RuleError(fixtures.file, f"feature '{name}' {why}", f"case '{case.name}'", x.line))
    return errors


def run_fixtures(rules: CompiledRuleSet, fixtures: Fixtures) -> RunResult:
    """Runs every case; the fixtures must have passed ``check_names``."""
    result = RunResult()
    engine = TagEngine(rules)
    for case in fixtures.cases:
        result.cases += 1
        result.expectations += len(case.expects)
        result.failures += run_case(engine, fixtures, case)
    return result


def run_case(engine: TagEngine, fixtures: Fixtures, case: Case) -> list[Failure]:
    state = CustomerState()
    history: list[Change] = []
    failures = []
    steps: list[tuple[int, int, int, Any]] = [(e.at_ms, 0, i, e) for i, e in enumerate(case.events)]
    steps += [(x.at_ms, 1, i, x) for i, x in enumerate(case.expects)]
    for at_ms, kind, _, item in sorted(steps, key=lambda s: s[:3]):
        now_ms = fixtures.origin_ms + at_ms
        if kind == 0:
            history += engine.process_event(state, item.event, now_ms).changes
            continue
        history += engine.catch_up(state, case.customer, now_ms)
        failure = _check(engine, state, fixtures.file, case, item, now_ms, history)
        if failure is not None:
            failures.append(failure)
    return failures


def _check(engine: TagEngine, state: CustomerState, file: str, case: Case, expect: Expectation, now_ms: int,
           history: list[Change]) -> Failure | None:
    values = engine.feature_values(CustomerState.loads(state.dumps()), now_ms)
    problems: list[str] = []
    wrong_tags: list[str] = []
    for name, want in [(t, True) for t in expect.tags] + [(t, False) for t in expect.absent]:
        if (name in state.tags) != want:
            wrong_tags.append(name)
            problems.append(f"tag {name}: expected {'present' if want else 'absent'}, "
                            f"is {'absent' if want else 'present'}")
    for name, want in expect.features.items():
        if not _same(values.get(name), want):
            problems.append(f"feature {name}: expected {_show(want)}, is {_show(values.get(name))}")
    if not problems:
        return None
    explained = []
    for name in wrong_tags:
        explained += _explain_tag(engine.rules.tags[name], values, state, now_ms)
    return Failure(file, case, expect, now_ms, problems, values, explained, list(history))


def _explain_tag(tag: TagDef, values: dict[str, Any], state: CustomerState, now_ms: int) -> list[str]:
    lines = [f"tag {tag.name}:"]
    for key, cond in tag.conditions():
        for part in explain(cond, values):
            label = f"{key}:" if part.depth == 0 else ""
            lines.append(f"  {label:<6}{'  ' * part.depth}{part.text}  -> {_show(part.value)}")
    if tag.min_duration_ms and tag.name in state.tags:
        lines.append(f"  min_duration: held since {_abs(state.tags[tag.name])}, cannot leave before "
                     f"{_abs(state.tags[tag.name] + tag.min_duration_ms)}")
    if tag.cooldown_ms and tag.name in state.removed:
        lines.append(f"  cooldown: removed at {_abs(state.removed[tag.name])}, cannot come back before "
                     f"{_abs(state.removed[tag.name] + tag.cooldown_ms)}")
    return lines


def describe(failure: Failure) -> str:
    """The failure as the command prints it."""
    f, x = failure, failure.expect
    origin_ms = f.at_ms - x.at_ms
    where = f"{f.file}:{x.line}" if x.line is not None else f.file
    out = [f"FAIL {where}: case '{f.case.name}': customer {f.case.customer} at {format_at(x.at_ms)} "
           f"({_abs(f.at_ms)})"]
    out += [f"  {p}" for p in f.problems]
    out += [f"  {line}" for line in f.explained]
    feats = ", ".join(f"{k}={_show(v)}" for k, v in sorted(f.values.items())) or "(none)"
    out.append(f"  features of {f.case.customer}: {feats}")
    changes = ", ".join(f"{'+' if c['op'] == 'add' else '-'}{c['tag']} at {format_at(c['at_ms'] - origin_ms)} "
                        f"({c['cause']})" for c in f.history) or "(none)"
    out.append(f"  tag changes so far: {changes}")
    return "\n".join(out)


def _same(actual: object, want: object) -> bool:
    if isinstance(actual, int | float) and isinstance(want, int | float) and not isinstance(want, bool):
        return math.isclose(actual, want, rel_tol=1e-9, abs_tol=1e-9)
    return actual == want


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _abs(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def run_command(path: str, fixtures_path: str | None) -> int:
    """``tagstream rules test PATH [FIXTURES]``: 0 all pass, 1 a failure, 2 bad rules or fixtures."""
    import sys
    from pathlib import Path

    from streams.tools.rule_fixtures import fixtures_for
    from streams.tools.rule_loading import load_or_report

    rules = load_or_report(path, "{n} error(s) in the rule set {path}")
    if rules is None:
        return 2
    files = [Path(fixtures_path)] if fixtures_path else fixtures_for(path)
    if not files:
        print(f"tagstream rules test: no fixtures for {path} (X.tests.yaml next to X.yaml, or give FIXTURES)",
              file=sys.stderr)
        return 2
    loaded, errors = load_checked(rules, files)
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} error(s) in the fixtures", file=sys.stderr)
        return 2
    cases = expectations = failed = 0
    for fixtures in loaded:
        result = run_fixtures(rules, fixtures)
        cases += result.cases
        expectations += result.expectations
        failed += len(result.failures)
        for failure in result.failures:
            print(describe(failure))
    print(f"{'FAILED' if failed else 'ok'}: {cases} case(s), {expectations} expectation(s), {failed} failed "
          f"({', '.join(str(f) for f in files)})")
    return 1 if failed else 0
