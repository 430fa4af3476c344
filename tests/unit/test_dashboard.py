"""The Grafana dashboard (deploy/grafana/dashboards/tagstream.json) imports into any Grafana: a
Prometheus data-source input used by every panel and query, `job`/`instance` variables applied to
every selector, expressions that parse (promtool) and select only metrics the worker exports; and
it still loads through docker-compose's file provisioning."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .promql_support import PENDING, REPO, check_exprs_parse, exported_series, load_yaml, metric_names

DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "tagstream.json"
GRAFANA_DATASOURCES = REPO / "deploy" / "grafana" / "provisioning" / "datasources"
DS_INPUT = "DS_PROMETHEUS"
DS_REF = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# A selector: a metric name with its {matchers} (or none).
SELECTOR_RE = re.compile(r"(?<![A-Za-z0-9_:$\"])(tagstream_[a-z_]+|up)(\{[^}]*\})?")
# Grafana's variables, replaced by example values for promtool.
GRAFANA_VARS = {"$__rate_interval": "1m", "$job": "tagstream", "$instance": ".*"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    with DASHBOARD.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(all_panels(panel.get("panels", [])))  # collapsed rows nest their panels
    return out


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in all_panels(dashboard["panels"]) for t in p.get("targets", [])]


def test_datasource_is_an_import_input(dashboard: dict[str, Any]) -> None:
    inputs = dashboard["__inputs"]
    assert [(i["name"], i["type"], i["pluginId"]) for i in inputs] == [(DS_INPUT, "datasource", "prometheus")]
    required = {(r["type"], r["id"]) for r in dashboard["__requires"]}
    assert ("datasource", "prometheus") in required and ("grafana", "grafana") in required
    panel_types = {p["type"] for p in all_panels(dashboard["panels"]) if p["type"] != "row"}
    assert panel_types <= {r["id"] for r in dashboard["__requires"] if r["type"] == "panel"}
    assert dashboard["id"] is None, "an exported dashboard carries no database id"
    assert 36 <= dashboard["schemaVersion"] <= 41


def test_every_panel_and_query_uses_the_input(dashboard: dict[str, Any]) -> None:
    panels = [p for p in all_panels(dashboard["panels"]) if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"] == DS_REF, f"panel {panel['title']!r}"
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == DS_REF, f"panel {panel['title']!r}, query {target['refId']}"
    text = json.dumps(dashboard)
    assert '"uid": "prometheus"' not in text, "a data source uid of one installation is left in"


def test_job_and_instance_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    # The data-source variable of the same name lets file provisioning (docker-compose), which does not
    # read __inputs, resolve ${DS_PROMETHEUS} to the default Prometheus.
    assert variables[DS_INPUT]["type"] == "datasource" and variables[DS_INPUT]["query"] == "prometheus"
    job, instance = variables["job"], variables["instance"]
    for var in (job, instance):
        assert var["type"] == "query" and var["datasource"] == DS_REF
    assert job["query"].startswith("label_values(tagstream_") and job["query"].endswith(", job)")
    assert 'job=~"$job"' in instance["query"] and instance["query"].endswith(", instance)")
    assert instance["includeAll"] and instance["allValue"] == ".*"


def test_every_selector_is_filtered_by_job_and_instance(dashboard: dict[str, Any]) -> None:
    for expr in exprs(dashboard):
        selectors = SELECTOR_RE.findall(expr)
        assert selectors, expr
        for name, matchers in selectors:
            assert 'job=~"$job"' in matchers and 'instance=~"$instance"' in matchers, f"{name} in {expr}"


def test_exprs_parse(dashboard: dict[str, Any], tmp_path: Path) -> None:
    concrete = []
    for expr in exprs(dashboard):
        for var, value in GRAFANA_VARS.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"unknown Grafana variable in {expr}"
        concrete.append(expr)
    result = check_exprs_parse(concrete, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_exprs_select_only_exported_metrics_and_show_them_all(dashboard: dict[str, Any]) -> None:
    exported = exported_series()
    used = {m for expr in exprs(dashboard) for m in metric_names(expr)}
    assert not used - exported - PENDING, f"not exported by the worker: {sorted(used - exported - PENDING)}"
    # Every metric the worker exports is on the dashboard (histograms through their buckets).
    families = {m for m in exported if not m.endswith(("_sum", "_count"))}
    assert not families - used, f"exported but on no panel: {sorted(families - used)}"


@pytest.mark.parametrize(
    ("metric", "grouping"),
    [
        ("tagstream_ready", "instance"),                        # readiness
        ("tagstream_partition_lag", "partition"),               # consumer lag per partition
        ("tagstream_events_duplicate_total", "source"),         # duplicates
        ("tagstream_audience_size", "tag"),                     # audience sizes
    ],
)
def test_required_panels(dashboard: dict[str, Any], metric: str, grouping: str) -> None:
    panels = [p for p in all_panels(dashboard["panels"])
              if any(metric in metric_names(t["expr"]) for t in p.get("targets", []))]
    assert panels, f"no panel shows {metric}"
    shown_by = [t.get("legendFormat", "") + t["expr"] for p in panels for t in p["targets"]]
    assert any("{{" + grouping + "}}" in s or f"by ({grouping}" in s or f", {grouping})" in s for s in shown_by), (
        f"{metric} is not shown per {grouping}")


def test_panels_have_unique_ids_and_positions(dashboard: dict[str, Any]) -> None:
    panels = all_panels(dashboard["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, p["title"]


def test_compose_provisioning_has_a_default_prometheus() -> None:
    """File provisioning ignores __inputs: ${DS_PROMETHEUS} resolves through the data-source
    variable, to the default Prometheus data source."""
    datasources = [ds for path in GRAFANA_DATASOURCES.glob("*.yml") for ds in load_yaml(path)["datasources"]]
    assert [ds["type"] for ds in datasources if ds.get("isDefault")] == ["prometheus"]
