"""The alert rules (deploy/prometheus/alerts.yml): valid for promtool, unit-tested with
`promtool test rules` (alerts.test.yml: every alert seen firing and seen quiet), built on metrics
the worker exports, each with a runbook section in docs/operations.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .promql_support import PENDING, REPO, exported_series, load_yaml, metric_names, run_promtool

ALERTS_YML = REPO / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST_YML = REPO / "deploy" / "prometheus" / "alerts.test.yml"
OPERATIONS_MD = REPO / "docs" / "operations.md"
RUNBOOK_BASE = "https://tagstream.dev/docs/operations.md"  # docs/operations.md: "Runbooks"


def _rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS_YML)["groups"] for rule in group["rules"]]


ALERTS = {rule["alert"]: rule for rule in _rules()}


def test_promtool_check_rules() -> None:
    result = run_promtool("check", "rules", str(ALERTS_YML))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", ALERTS_TEST_YML.name, cwd=ALERTS_TEST_YML.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_seen_firing_and_quiet() -> None:
    cases = [case for test in load_yaml(ALERTS_TEST_YML)["tests"] for case in test.get("alert_rule_test", [])]
    tested = {case["alertname"] for case in cases}
    assert tested <= set(ALERTS), f"tests for alerts that do not exist: {sorted(tested - set(ALERTS))}"
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert set(ALERTS) - firing == set(), f"never seen firing: {sorted(set(ALERTS) - firing)}"
    assert set(ALERTS) - quiet == set(), f"never seen quiet: {sorted(set(ALERTS) - quiet)}"


def test_alerts_use_only_exported_metrics() -> None:
    exported = exported_series()
    for name, rule in ALERTS.items():
        used = metric_names(rule["expr"])
        assert used, f"{name}: no metric in its expression"
        assert not used - exported, f"{name}: not exported by the worker: {sorted(used - exported)}"
        assert not used & PENDING


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_has_severity_summary_and_description(name: str) -> None:
    rule = ALERTS[name]
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
    assert re.fullmatch(r"\d+[smh]", rule["for"]), f"{name}: a `for` keeps one bad scrape from paging"


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a markdown file."""
    anchors = set()
    for line in markdown.splitlines():
        if m := re.match(r"#{1,6} +(.+?) *#*$", line):
            anchors.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return anchors


def runbook_section(markdown: str, anchor: str) -> str:
    """The text under the heading with that anchor, up to the next heading of any level."""
    out: list[str] = []
    inside = False
    for line in markdown.splitlines():
        if line.startswith("#"):
            inside = github_anchors(line) == {anchor}
            continue
        if inside:
            out.append(line)
    return "\n".join(out)


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_runbook_url_points_to_a_runbook_in_operations_md(name: str) -> None:
    url = ALERTS[name]["annotations"]["runbook_url"]
    base, _, anchor = url.partition("#")
    assert base == RUNBOOK_BASE, url
    markdown = OPERATIONS_MD.read_text(encoding="utf-8")
    assert anchor in github_anchors(markdown), f"{name}: no heading with anchor #{anchor} in docs/operations.md"
    assert anchor == name.lower(), "one runbook per alert, named after it"
    section = runbook_section(markdown, anchor)
    for part in ("**Means**", "**Check**", "**Do**"):
        assert part in section, f"{name}: its runbook lacks {part}"


def test_runbook_anchors_follow_github() -> None:
    assert github_anchors("## Kubernetes (kustomize)\n### TagstreamWorkerDown\n") == {
        "kubernetes-kustomize", "tagstreamworkerdown"}


def test_runbooks_exist_only_for_alerts() -> None:
    markdown = OPERATIONS_MD.read_text(encoding="utf-8")
    runbooks = {a for a in github_anchors(markdown) if a.startswith("tagstream") and a != "tagstream"}
    assert runbooks == {name.lower() for name in ALERTS}, "a runbook without an alert, or the reverse"


def test_compose_prometheus_loads_these_alerts(tmp_path: Path) -> None:
    """deploy/prometheus/prometheus.yml (docker-compose) with these rules passes `promtool check config`."""
    for name in ("prometheus.yml", "alerts.yml"):
        (tmp_path / name).write_text((ALERTS_YML.parent / name).read_text(encoding="utf-8"), encoding="utf-8")
    result = run_promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
