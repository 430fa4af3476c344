"""The Kubernetes manifests (deploy/k8s), offline: built with kustomize, every resource validated
against its schema (Kubernetes kinds: the schemas bundled in `kubernetes-validate`; ServiceMonitor
and PrometheusRule: the Prometheus Operator CRDs vendored in tests/unit/k8s_schemas/), and
cross-checked against the worker's settings, its probe endpoints, the image and the alert rules."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from streams.io.health import Health, serve
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
BASE = K8S / "base"
EXAMPLE = K8S / "overlays" / "example"
CRDS = Path(__file__).resolve().parent / "k8s_schemas"
ALERTS_YML = REPO / "deploy" / "prometheus" / "alerts.yml"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
KUSTOMIZE_FALLBACK = REPO / ".cache" / "bin" / "kustomize"  # deploy/local/test.sh builds it where kubectl is missing

# The oldest Kubernetes the manifests claim (README of deploy/k8s) and the newest schemas we have.
K8S_VERSIONS = ("1.27", kubernetes_validate.latest_version())
BASE_KINDS = {"ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule"}
CRD_FILES = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}


def kustomize_build(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` (or a standalone kustomize) on a kustomization directory."""
    if shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize", str(path)]
    elif (tool := shutil.which("kustomize") or (str(KUSTOMIZE_FALLBACK) if KUSTOMIZE_FALLBACK.exists() else None)):
        cmd = [tool, "build", str(path)]
    else:
        pytest.fail("neither kubectl nor kustomize found: deploy/local/test.sh builds kustomize into .cache/bin "
                    "(go install sigs.k8s.io/kustomize/kustomize/v5) when kubectl is missing")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize_build(BASE)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The example overlay, with its credentials.env made from the committed example (a copy of
    deploy/k8s, so nothing is written into the repository)."""
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy)
    overlay = copy / "overlays" / "example"
    shutil.copy(overlay / "credentials.env.example", overlay / "credentials.env")
    return kustomize_build(overlay)


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def service(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one Service {name}, found {len(found)}"
    return found[0]


def test_the_api_service_selects_the_workers_api_port(base: list[dict[str, Any]]) -> None:
    api = service(base, "tagstream-api")
    workers = one(base, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert api["spec"]["selector"].items() <= workers.items()
    assert [(p["port"], p["targetPort"]) for p in api["spec"]["ports"]] == [(9465, "api")]


def worker_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "worker")


def read_env_file(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


# --- schemas ------------------------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """A CRD schema that rejects unknown fields, as `kubectl apply --validate=strict` does (the API
    server would otherwise prune them silently: a misspelt field is a setting that never applies)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def crd_validator(kind: str) -> jsonschema.protocols.Validator:
    crd = yaml.safe_load((CRDS / CRD_FILES[kind]).read_text(encoding="utf-8"))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = _strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}  # validated below as ObjectMeta
    return jsonschema.Draft4Validator(schema)


def validate(doc: dict[str, Any], k8s_version: str) -> None:
    """Raises if `doc` does not match its kind's schema."""
    if doc["apiVersion"].startswith("monitoring.coreos.com/"):
        assert doc["apiVersion"] == "monitoring.coreos.com/v1", doc["apiVersion"]
        crd_validator(doc["kind"]).validate(doc)
        meta = doc["metadata"]
        assert set(meta) <= {"name", "namespace", "labels", "annotations"}, meta
        assert all(isinstance(v, str) for v in meta.get("labels", {}).values()), meta
    else:
        kubernetes_validate.validate(doc, k8s_version, strict=True)


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_base_resources_match_their_schemas(base: list[dict[str, Any]], k8s_version: str) -> None:
    assert {d["kind"] for d in base} == BASE_KINDS
    for doc in base:
        validate(doc, k8s_version)


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_example_overlay_resources_match_their_schemas(example: list[dict[str, Any]], k8s_version: str) -> None:
    assert {d["kind"] for d in example} == BASE_KINDS | {"Namespace", "Secret"}
    for doc in example:
        validate(doc, k8s_version)


@pytest.mark.parametrize(
    ("kind", "path", "bad"),
    [
        ("StatefulSet", ("spec",), {"replica": 3}),                       # misspelt field
        ("StatefulSet", ("spec",), {"replicas": "two"}),                  # wrong type
        ("ServiceMonitor", ("spec", "endpoints", 0), {"intervall": "15s"}),
        ("ServiceMonitor", ("spec",), {"endpoints": "metrics"}),
        ("PrometheusRule", ("spec", "groups", 0, "rules", 0), {"expression": "up == 0"}),
    ],
)
def test_schema_check_rejects_broken_resources(base: list[dict[str, Any]], kind: str, path: tuple[Any, ...],
                                               bad: dict[str, Any]) -> None:
    doc = yaml.safe_load(yaml.safe_dump(one(base, kind)))  # a deep copy
    node = doc
    for key in path:
        node = node[key]
    node.update(bad)
    with pytest.raises(jsonschema.ValidationError):
        validate(doc, K8S_VERSIONS[-1])


# --- the worker: settings, probes, storage --------------------------------------------------------


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [n for n in os.environ if n.startswith("TAGSTREAM_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def _field_exists(name: str) -> bool:
    """TAGSTREAM_SECTION__FIELD names an existing (nested) field of Settings."""
    model: Any = Settings
    parts = name.removeprefix("TAGSTREAM_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if i < len(parts) - 1:
            model = field.annotation
    return True


def _worker_env(docs: list[dict[str, Any]], secret_env: dict[str, str]) -> dict[str, str]:
    """The environment the worker container gets: its ConfigMap, its Secret, then its own `env`."""
    container = worker_container(docs)
    config = one(docs, "ConfigMap")
    refs = [ref["configMapRef"]["name"] for ref in container["envFrom"] if "configMapRef" in ref]
    assert refs == [config["metadata"]["name"]], "the worker must read the generated ConfigMap"
    env = dict(config["data"]) | secret_env
    env |= {e["name"]: e["value"] for e in container["env"]}
    return env


@pytest.mark.parametrize("variant", ["base", "example"])
def test_worker_environment_is_valid_settings(request: pytest.FixtureRequest, variant: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    docs = request.getfixturevalue(variant)
    secret_env: dict[str, str] = {}
    if variant == "example":
        secret = one(docs, "Secret")
        refs = [r["secretRef"]["name"] for r in worker_container(docs)["envFrom"] if "secretRef" in r]
        assert refs == [secret["metadata"]["name"]], "the worker must read the generated Secret"
        secret_env = read_env_file(EXAMPLE / "credentials.env.example")
        assert set(secret["data"]) == set(secret_env)
        assert all(name in {"TAGSTREAM_KAFKA__SASL_USERNAME", "TAGSTREAM_KAFKA__SASL_PASSWORD",
                            "TAGSTREAM_REDIS__USERNAME", "TAGSTREAM_REDIS__PASSWORD", "TAGSTREAM_API__TOKEN"}
                   for name in secret_env)
    env = _worker_env(docs, secret_env)
    unknown = sorted(name for name in env if not _field_exists(name))
    assert not unknown, f"not tagstream settings (streams/settings.py): {unknown}"
    settings = _settings_from(env, monkeypatch)  # raises on a bad value
    assert settings.metrics.host == "0.0.0.0", "probes and Prometheus reach the pod IP, not loopback"
    assert settings.store == "rocksdb://"
    if variant == "example":
        assert settings.kafka.protocol() == "SASL_SSL"
        assert settings.kafka.sasl_password is not None and settings.redis.password is not None
        assert settings.api.token is not None  # the example's API is not open


def test_probes_point_at_the_metrics_port_and_its_paths(base: list[dict[str, Any]]) -> None:
    container = worker_container(base)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert ports == {"metrics": int(env["TAGSTREAM_METRICS__PORT"]), "api": int(env["TAGSTREAM_API__PORT"])}
    assert env["TAGSTREAM_API__HOST"] == "0.0.0.0"  # reachable through the tagstream-api Service
    paths = {probe: container[probe]["httpGet"]["path"] for probe in ("startupProbe", "livenessProbe",
                                                                      "readinessProbe")}
    assert paths == {"startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
    assert all(container[p]["httpGet"]["port"] == "metrics" for p in paths)


@pytest.fixture
def health_server() -> Iterator[tuple[Health, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    health = Health()
    server = serve(health, host="127.0.0.1", port=port)
    try:
        yield health, port
    finally:
        server.shutdown()
        server.server_close()


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_probe_paths_are_what_the_worker_serves(base: list[dict[str, Any]],
                                                health_server: tuple[Health, int]) -> None:
    """The manifest's probe paths on the worker's real HTTP endpoint: live at once, ready only
    once recovered (a worker restoring its state must not count as Ready)."""
    health, port = health_server
    container = worker_container(base)
    live, ready = container["livenessProbe"]["httpGet"]["path"], container["readinessProbe"]["httpGet"]["path"]
    assert (_status(port, live), _status(port, ready)) == (200, 503)
    health.recovered = True
    assert (_status(port, live), _status(port, ready)) == (200, 200)
    health.redis_ok = False
    assert _status(port, ready) == 503
    assert _status(port, "/no-such-probe") == 404


def test_rocksdb_store_lives_on_the_claimed_volume(base: list[dict[str, Any]]) -> None:
    sts = one(base, "StatefulSet")
    data_dir = one(base, "ConfigMap")["data"]["TAGSTREAM_DATA_DIR"]
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in worker_container(base)["volumeMounts"]}
    assert mounts.get(data_dir) in claims, f"{data_dir} is not on a volumeClaimTemplate ({mounts})"
    # The image must have the rocksdb extra (rocksdict) for TAGSTREAM_STORE=rocksdb://.
    assert '".[rocksdb]"' in DOCKERFILE.read_text(encoding="utf-8")


def test_pod_runs_as_the_image_user(base: list[dict[str, Any]]) -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    pod = one(base, "StatefulSet")["spec"]["template"]["spec"]
    uid = pod["securityContext"]["runAsUser"]
    assert f"--uid {uid} " in dockerfile
    assert pod["securityContext"]["fsGroup"] == uid, "the data volume must be writable by the worker"
    assert worker_container(base)["securityContext"]["readOnlyRootFilesystem"] is True


def test_resources_are_set(base: list[dict[str, Any]]) -> None:
    resources = worker_container(base)["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


# --- wiring between the resources ----------------------------------------------------------------


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_services_pdb_and_monitor_select_the_workers(base: list[dict[str, Any]]) -> None:
    sts, pdb, monitor = (one(base, k) for k in ("StatefulSet", "PodDisruptionBudget", "ServiceMonitor"))
    svc = service(base, "tagstream")
    api_labels = service(base, "tagstream-api")["metadata"]["labels"]
    assert not _selects(monitor["spec"]["selector"]["matchLabels"], api_labels)  # scraped once, by the worker
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert _selects(sts["spec"]["selector"]["matchLabels"], pod_labels)
    assert _selects(svc["spec"]["selector"], pod_labels)
    assert _selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True, "not-ready workers must still be scraped"
    assert _selects(monitor["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in svc["spec"]["ports"]}
    assert sts["spec"]["replicas"] > pdb["spec"]["maxUnavailable"]


def test_scrape_job_is_the_one_the_alerts_select(base: list[dict[str, Any]]) -> None:
    monitor, svc = one(base, "ServiceMonitor"), service(base, "tagstream")
    job = svc["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    rules = [r for g in yaml.safe_load(ALERTS_YML.read_text(encoding="utf-8"))["groups"] for r in g["rules"]]
    assert all(f'job="{job}"' in r["expr"] for r in rules), f"every alert must select job={job!r}"


def test_prometheusrule_is_rendered_from_alerts(base: list[dict[str, Any]], tmp_path: Path) -> None:
    rendered = tmp_path / "prometheusrule.yaml"
    subprocess.run(["bash", str(K8S / "render-prometheusrule.sh"), str(rendered)], check=True, timeout=30)
    assert rendered.read_text(encoding="utf-8") == (BASE / "prometheusrule.yaml").read_text(encoding="utf-8"), (
        "deploy/k8s/base/prometheusrule.yaml is out of date: run `bash deploy/k8s/render-prometheusrule.sh`")
    alerts = yaml.safe_load(ALERTS_YML.read_text(encoding="utf-8"))
    assert one(base, "PrometheusRule")["spec"]["groups"] == alerts["groups"]


def test_example_overlay_labels_for_prometheus_and_credentials_stay_out_of_git(
        example: list[dict[str, Any]]) -> None:
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert one(example, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert all(d["metadata"].get("namespace") == "tagstream" for d in example if d["kind"] != "Namespace")
    ignored = subprocess.run(["git", "check-ignore", "-q", str(EXAMPLE / "credentials.env")], cwd=REPO,
                             check=False, timeout=30)
    assert ignored.returncode == 0, "overlays/*/credentials.env must be git-ignored"
