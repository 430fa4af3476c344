"""The layers stay visible: imports go one way, schemas <- tag_rules <- streams, and inside
streams engine <- io <- app <- cli/tools. The pure engine loads no Faust, Kafka, Redis or
Prometheus client."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_PURE = ("faust", "mode", "aiokafka", "redis", "prometheus_client")


def modules(package: str) -> list[str]:
    root = REPO / package.replace(".", "/")
    return sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__") for p in root.rglob("*.py"))


def imported(module: str) -> set[str]:
    """Absolute module names ``module`` imports (at any depth of its code)."""
    path = REPO / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = REPO / module.replace(".", "/") / "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


@pytest.mark.parametrize("package", ["schemas", "tag_rules", "streams.engine"])
def test_pure_packages_load_no_client_library(package: str) -> None:
    code = (f"import importlib, sys\nfor m in {modules(package)!r}: importlib.import_module(m)\n"
            f"print(sorted(k for k in sys.modules if k.split('.')[0] in {FORBIDDEN_IN_PURE!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{package} loads {out.stdout.strip()}"


# package -> packages of ours it may import
ALLOWED = {
    "schemas": {"schemas"},
    "tag_rules": {"schemas", "tag_rules"},
    "streams.engine": {"schemas", "tag_rules", "streams.engine"},
    "streams.io": {"schemas", "tag_rules", "streams.engine", "streams.io", "streams.settings", "streams.version"},
    "streams.app": {"schemas", "tag_rules", "streams.engine", "streams.io", "streams.app", "streams.settings",
                    "streams.version"},
    "streams.settings": {"tag_rules"},
    "streams.version": {"streams.engine"},  # which engine runs (native or python)
}


def owner(module: str) -> str | None:
    for prefix in sorted(ALLOWED, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return None


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_one_way(package: str) -> None:
    ours = ("schemas", "tag_rules", "streams")
    mods = modules(package) if (REPO / package.replace(".", "/")).is_dir() else [package]
    bad = []
    for mod in mods:
        for name in imported(mod):
            if name.split(".")[0] not in ours or name == "streams":
                continue
            target = owner(name) or name
            if target not in ALLOWED[package]:
                bad.append(f"{mod} imports {name}")
    assert not bad, bad


def test_no_worker_module_imports_the_tools() -> None:
    for mod in modules("streams.app") + modules("streams.io") + modules("streams.engine"):
        assert not any(n.startswith(("streams.tools", "streams.cli")) for n in imported(mod)), mod  # cli, cli_args


def test_every_package_is_shipped_by_the_build() -> None:
    """pyproject's package discovery takes every package under schemas/, tag_rules/, streams/
    (a plain ``pip install .``, as in the Dockerfile, must get the layer subpackages too)."""
    import tomllib

    from setuptools import find_packages

    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    shipped = set(find_packages(str(REPO), include=conf["include"]))
    present = {".".join(p.parent.relative_to(REPO).parts) for top in ("schemas", "tag_rules", "streams")
               for p in (REPO / top).rglob("__init__.py")}
    assert present <= shipped, present - shipped
