"""Static checks of the deployment files: docker-compose.yml, the Dockerfile, and how compose wires
Prometheus and Grafana. No network and no Docker engine: files are parsed and cross-checked against each
other and against the process-based dev stack (deploy/kafka/server.properties.in). The alert rules,
the dashboard and the Kubernetes manifests have their own tests (test_alerts.py, test_dashboard.py,
test_k8s_manifests.py); the image and the container side of compose: test_container.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
KAFKA_PROPERTIES = REPO / "deploy" / "kafka" / "server.properties.in"
PROMETHEUS_YML = REPO / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DASHBOARD_PROVIDERS = REPO / "deploy" / "grafana" / "provisioning" / "dashboards"

# pydantic-settings: TAGSTREAM_ prefix, "__" between nesting levels, upper-case field names.
SETTINGS_ENV_RE = re.compile(r"^TAGSTREAM_[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*(?:__[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)+$")
WORKER_ENV = {
    "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": "kafka:9092",
    "TAGSTREAM_REDIS__URL": "redis://redis:6379/0",
    "TAGSTREAM_METRICS__HOST": "0.0.0.0",
    "TAGSTREAM_METRICS__PORT": "9464",
}

# server.properties.in keys that legitimately differ in compose: host addresses, the quorum wiring
# (static voters in compose, bootstrap servers locally), the extra host listener, and paths.
KAFKA_HOST_SPECIFIC = {
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "controller.quorum.bootstrap.servers",
    "log.dirs",
}
# Defaults stack.sh substitutes for the placeholders in server.properties.in.
STACK_DEFAULTS = {"@PARTITIONS@": "4"}


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _load_yaml(COMPOSE)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "compose file has no services"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as str -> str (compose allows a mapping or a list of KEY=VALUE)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {
        str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()
    }


def _kafka_property_env_name(key: str) -> str:
    """The apache/kafka image's env name for a broker property (`_`->`__`, `-`->`___`, `.`->`_`)."""
    return "KAFKA_" + key.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def _read_properties(path: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


# --- docker-compose.yml -------------------------------------------------------------------------


def test_compose_has_expected_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "redis", "prometheus", "grafana", "worker", "producer"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")  # the version: tests/unit/test_container.py
    assert services["redis"]["image"].startswith("redis:7")
    assert services["producer"].get("profiles") == ["demo"], "producer must only run with --profile demo"


@pytest.mark.parametrize("name", ["kafka", "redis"])
def test_backing_services_have_healthchecks(services: dict[str, dict[str, Any]], name: str) -> None:
    test = services[name].get("healthcheck", {}).get("test")
    assert test, f"{name} needs a healthcheck so the worker can wait for it"
    command = " ".join(test) if isinstance(test, list) else test
    expected = "kafka-broker-api-versions.sh" if name == "kafka" else "redis-cli ping"
    assert expected in command


def test_worker_waits_for_healthy_dependencies(services: dict[str, dict[str, Any]]) -> None:
    depends_on = services["worker"]["depends_on"]
    assert isinstance(depends_on, dict)
    for dep in ("kafka", "redis"):
        assert depends_on[dep]["condition"] == "service_healthy"


def test_worker_env_follows_settings_scheme(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["worker"])
    assert env.items() >= WORKER_ENV.items()
    for name in ("worker", "producer"):
        bad = [
            key
            for key in _env(services[name])
            if key.startswith("TAGSTREAM") and not SETTINGS_ENV_RE.match(key)
        ]
        assert not bad, f"{name}: env names not of the form TAGSTREAM_<SECTION>__<FIELD>: {bad}"


def test_worker_and_producer_commands(services: dict[str, dict[str, Any]]) -> None:
    assert services["worker"]["command"] == ["tagstream", "worker"]
    assert services["worker"]["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert services["producer"]["command"] == ["tagstream", "produce", "--rate", "500", "--count", "100000"]
    assert _env(services["producer"])["TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_host_ports_bound_to_loopback(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):  # long syntax
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port} not bound to 127.0.0.1"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: port {port!r} not bound to 127.0.0.1"


def test_kafka_is_single_node_kraft(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["kafka"])
    assert env["KAFKA_NODE_ID"] == "1"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    listeners = env["KAFKA_LISTENERS"].split(",")
    assert {"PLAINTEXT://:9092", "CONTROLLER://:9093"} <= set(listeners)
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "true"
    assert env["KAFKA_NUM_PARTITIONS"] == "4"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"


def test_kafka_settings_agree_with_local_stack(services: dict[str, dict[str, Any]]) -> None:
    """Every broker property of the local stack (except host wiring) has the same value in compose."""
    env = _env(services["kafka"])
    props = _read_properties(KAFKA_PROPERTIES)
    replication = [k for k in props if k.endswith((".replication.factor", ".min.isr"))]
    assert replication, "server.properties.in lost its replication factors?"
    mismatches = {}
    for key, value in props.items():
        if key in KAFKA_HOST_SPECIFIC:
            continue
        value = STACK_DEFAULTS.get(value, value)
        assert "@" not in value, f"placeholder in {key}={value}: add its stack.sh default to STACK_DEFAULTS"
        env_name = _kafka_property_env_name(key)
        if env.get(env_name) != value:
            mismatches[env_name] = (env.get(env_name), value)
    assert not mismatches, f"compose kafka env vs server.properties.in (compose, local): {mismatches}"


# --- Prometheus ---------------------------------------------------------------------------------


def test_prometheus_config_matches_compose(services: dict[str, dict[str, Any]]) -> None:
    config = _load_yaml(PROMETHEUS_YML)
    assert config["global"]["scrape_interval"] == "5s"
    assert config["rule_files"] == ["alerts.yml"]
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    port = _env(services["worker"])["TAGSTREAM_METRICS__PORT"]
    assert f"worker:{port}" in targets
    mounts = {v.split(":")[1] for v in services["prometheus"]["volumes"]}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml"} <= mounts


# --- Grafana ------------------------------------------------------------------------------------


def test_grafana_provisioning_matches_compose(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboards_dir = mounts["./deploy/grafana/dashboards"]
    paths = [
        provider["options"]["path"]
        for path in GRAFANA_DASHBOARD_PROVIDERS.glob("*.yml")
        for provider in _load_yaml(path)["providers"]
    ]
    assert dashboards_dir in paths
    env = _env(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
