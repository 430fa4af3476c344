"""The container image (deploy/docker/Dockerfile), its pinned dependencies
(deploy/docker/constraints.txt) and the container side of docker-compose.yml, checked offline.

There is no Docker engine (and no `docker compose` plugin) where these tests run, so nothing is
built: the Dockerfile is parsed, the settings it sets are loaded by the real Settings class, and
its HEALTHCHECK command is run against the worker's real health server on a free port.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from streams.io.health import Health, serve
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
CONSTRAINTS = REPO / "deploy" / "docker" / "constraints.txt"
COMPOSE = REPO / "docker-compose.yml"
POM = REPO / "deploy" / "kafka" / "pom.xml"
STACK = REPO / "deploy" / "local" / "stack.sh"

# python:<major>.<minor>.<patch>-slim-<debian release>, optionally with a verified digest
PINNED_PYTHON_BASE = re.compile(r"^python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?$")


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical = (pending + line).strip()
        pending = ""
        keyword, _, args = logical.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def of(keyword: str) -> list[str]:
    return [args for kw, args in instructions() if kw == keyword]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in of("ENV"):
        for item in shlex.split(args):
            key, sep, value = item.partition("=")
            assert sep, f"ENV {args!r}: use the KEY=value form"
            env[key] = value
    return env


def pins() -> dict[str, str]:
    """Canonical name -> version of every line of constraints.txt (each must be an exact pin)."""
    out: dict[str, str] = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) and re.fullmatch(r"[\w.+!-]+", version), \
            f"constraints.txt: {line!r} is not an exact name==version pin"
        key = canonicalize_name(name)
        assert key not in out, f"constraints.txt pins {name} twice"
        out[key] = version
    return out


def runtime_requirements() -> list[Requirement]:
    """pyproject's runtime dependencies and the rocksdb extra the image installs."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["rocksdb"]]]


# --- Dockerfile -------------------------------------------------------------------------------


def test_base_image_is_an_exact_python_release() -> None:
    bases = of("FROM")
    assert len(bases) == 1
    assert PINNED_PYTHON_BASE.match(bases[0]), f"FROM {bases[0]}: pin python:X.Y.Z-slim-<debian>"


def test_image_installs_tagstream_with_rocksdb_from_the_constraints() -> None:
    copies = of("COPY")
    assert "deploy/docker/constraints.txt ./constraints.txt" in copies
    installs = [r for r in of("RUN") if r.startswith("pip install")]
    assert installs == ['pip install -c constraints.txt ".[rocksdb]" && rm -rf /src/build']


def test_image_builds_the_compiled_engine_and_requires_it() -> None:
    """docs/operations.md, Compiled engine: built in the image with the mypy the tests ran, outside
    the user's home, and ``TAGSTREAM_NATIVE=on`` so that a missing build stops the worker."""
    from importlib.metadata import version

    env = image_env()
    assert env["TAGSTREAM_NATIVE"] == "on" and env["TAGSTREAM_NATIVE_DIR"].startswith("/opt/")
    build = [r for r in of("RUN") if "streams.tools.build_native" in r]
    assert len(build) == 1
    assert f'"mypy=={version("mypy")}"' in build[0]
    assert "apt-get purge -y --auto-remove gcc" in build[0] and "rm -rf /tmp/mypyc" in build[0]


def test_image_runs_the_worker_as_a_non_root_user() -> None:
    users = of("USER")
    assert users and users[-1] not in {"root", "0"}
    assert instructions()[-1] == ("CMD", '["tagstream", "worker"]')


def test_image_settings_load_and_listen_beyond_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image's ENV, read by the real Settings: metrics on 0.0.0.0 (so `docker run -p` reaches
    them) on the EXPOSEd port, and the RocksDB store in the declared volume."""
    env = image_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.metrics.host == "0.0.0.0"
    assert str(settings.metrics.port) in " ".join(of("EXPOSE")).split()
    assert settings.store == "rocksdb://"
    assert json.loads(of("VOLUME")[0]) == [str(settings.data_dir)]


def _healthcheck_command() -> list[str]:
    (args,) = of("HEALTHCHECK")
    options, _, command = args.partition("CMD ")
    assert "--start-period=" in options and "--timeout=" in options
    cmd = json.loads(command)
    assert isinstance(cmd, list) and cmd[:2] == ["python", "-c"], "exec form: python -c <code>"
    assert "/livez" in cmd[2] or "/readyz" in cmd[2]
    return [sys.executable, *cmd[1:]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_healthcheck_command_passes_on_a_live_worker_and_fails_without_one() -> None:
    command = _healthcheck_command()
    port = _free_port()
    server = serve(Health(), host="127.0.0.1", port=port)
    try:
        ok = subprocess.run(command, env={"TAGSTREAM_METRICS__PORT": str(port)}, capture_output=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
    finally:
        server.shutdown()
        server.server_close()
    down = subprocess.run(command, env={"TAGSTREAM_METRICS__PORT": str(port)}, capture_output=True, timeout=30)
    assert down.returncode != 0


# --- constraints.txt --------------------------------------------------------------------------


def test_constraints_pin_every_runtime_dependency_within_pyproject() -> None:
    pinned = pins()
    for req in runtime_requirements():
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} (pyproject) is not pinned: run deploy/docker/constraints.sh"
        assert req.specifier.contains(pinned[name], prereleases=True), \
            f"{req.name}=={pinned[name]} does not satisfy pyproject's {req}"
    assert "rocksdict" in pinned and "hiredis" in pinned  # the extras: RocksDB store, C reply parser


def test_constraints_hold_the_dependencies_of_their_pins() -> None:
    """Every pinned distribution's own requirements are pinned too (read from this venv's metadata
    for the pins installed here at the same version; regenerate the file when the venv moves)."""
    pinned = pins()
    extras: dict[str, set[str]] = {canonicalize_name(r.name): r.extras for r in runtime_requirements()}
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    checked, missing = 0, []
    for name, version in pinned.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if dist.version != version:
            continue
        checked += 1
        for raw in dist.requires or []:
            req = Requirement(raw)
            wanted = req.marker is None or any(
                req.marker.evaluate({**env, "extra": extra}) for extra in extras.get(name, set()) | {""})
            if wanted and canonicalize_name(req.name) not in pinned:
                missing.append(f"{req.name} (needed by {name})")
    assert checked >= len(runtime_requirements()), "too few pins installed here to check"
    assert not missing, f"not pinned: {missing}; run deploy/docker/constraints.sh"


# --- docker-compose.yml: the worker container and versions ----------------------------------------


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"])


def test_compose_kafka_is_the_local_stacks_kafka_release(services: dict[str, Any]) -> None:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ET.parse(POM).getroot().findtext("m:properties/m:kafka.version", namespaces=ns)
    assert version and re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert "<kafka.version>" in STACK.read_text(encoding="utf-8"), "stack.sh no longer reads the pom's version"
    assert services["kafka"]["image"] == f"apache/kafka:{version}"


def test_compose_worker_has_a_healthcheck_on_its_probe_port(services: dict[str, Any]) -> None:
    worker = services["worker"]
    port = str(worker["environment"]["TAGSTREAM_METRICS__PORT"])
    test = worker["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert f"http://127.0.0.1:{port}/livez" in test[3]
    assert worker["healthcheck"]["start_period"]
    assert services["producer"]["depends_on"]["worker"]["condition"] == "service_healthy"
    assert any(v.endswith(":/var/lib/tagstream/data") for v in worker["volumes"]), "RocksDB state volume"


def test_compose_healthcheck_command_works_against_a_live_worker(services: dict[str, Any]) -> None:
    code = services["worker"]["healthcheck"]["test"][3]
    port = _free_port()
    server = serve(Health(), host="127.0.0.1", port=port)
    try:
        run = subprocess.run([sys.executable, "-c", code.replace(":9464/", f":{port}/")], capture_output=True,
                             timeout=30)
        assert run.returncode == 0, run.stderr
    finally:
        server.shutdown()
        server.server_close()


SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN", re.IGNORECASE)
REQUIRED_VARIABLE = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*:\?[^}]+\}$")


def test_compose_has_no_default_passwords(services: dict[str, Any]) -> None:
    """Secrets come from a required variable (``${VAR:?message}``: compose stops with the message
    when it is unset or empty), never from a literal or a ``${VAR:-default}``."""
    secrets = {(name, key): str(value) for name, service in services.items()
               for key, value in (service.get("environment") or {}).items() if SECRET_NAME.search(key)}
    assert ("grafana", "GF_SECURITY_ADMIN_PASSWORD") in secrets
    for (name, key), value in secrets.items():
        assert REQUIRED_VARIABLE.match(value), f"{name}: {key}={value!r} is not a required variable"
    assert "admin}" not in COMPOSE.read_text(encoding="utf-8")
