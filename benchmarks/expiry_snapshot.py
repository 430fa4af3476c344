"""The code an expiry run's workers run: a snapshot of the packages (as committed at HEAD, or the
working tree) and of the expiry benchmark's own modules, so every phase runs the same code even
while others edit the tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODULES = tuple(sorted(p.name for p in (REPO / "benchmarks").glob("expiry*.py")))
"""The expiry benchmark's modules (expiry.py and the expiry_*.py it imports): the worker and the
replay run ``python -m benchmarks.expiry`` in the snapshot."""


def snapshot_code(dest: Path, worktree: bool) -> tuple[Path, dict[str, Any]]:
    """Copies the packages the worker imports (as committed at HEAD, or the working tree) and
    ``MODULES``, so every phase runs the same code even while others edit the tree; returns the copy
    and what it is."""

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()

    dest.mkdir(parents=True)
    pkgs = ("streams", "schemas", "tag_rules")
    if worktree:
        for pkg in pkgs:
            shutil.copytree(REPO / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        archive = subprocess.run(["git", "archive", "HEAD", *pkgs], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    (dest / "benchmarks").mkdir()
    for f in ("__init__.py", *MODULES):
        shutil.copy2(REPO / "benchmarks" / f, dest / "benchmarks" / f)
    imported = subprocess.run([sys.executable, "-c", "import streams; print(streams.__file__)"], cwd=dest,
                              capture_output=True, text=True, check=True).stdout.strip()
    if not imported.startswith(str(dest)):
        raise RuntimeError(f"the worker would not run the snapshot: streams imports from {imported}")
    return dest, {"source": "working tree" if worktree else "HEAD", "commit": git("rev-parse", "--short", "HEAD"),
                  "uncommitted": git("status", "--porcelain", *pkgs).splitlines() if worktree else []}
