"""Compiles the engine's hot modules with mypyc (``streams.engine.native``): ``python -m streams.tools.build_native``.

The build goes to ``<native dir>/<digest of the sources>/`` and is skipped when that folder is
there already, so ``deploy/local/bootstrap.sh`` runs it every time at no cost. It needs a C
compiler and Python's headers (``gcc``, ``python3-dev``); without them the engine stays pure
Python, as it does with ``TAGSTREAM_NATIVE=off``. About 30 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from streams.engine import native

KEEP = 3
"""Builds kept in the native folder, the newest ones (each is ~2 MB)."""
PACKAGES = ("schemas", "tag_rules", "streams")
"""What the compiled modules import of ours (mypy reads them; only ``native.MODULES`` are compiled)."""


def build(*, force: bool = False, quiet: bool = False) -> Path:
    """Builds (unless already built) and returns the build folder."""
    target = native.build_dir()
    if target.is_dir() and not force:
        return target
    from mypyc.build import mypycify  # the dev/build dependency, only needed here
    from setuptools import setup

    say = (lambda msg: None) if quiet else (lambda msg: print(f"[build_native] {msg}", file=sys.stderr, flush=True))
    say(f"compiling {len(native.MODULES)} engine modules with mypyc into {target}")
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
    cwd = Path.cwd()
    try:
        # A copy of our packages, type-checked from their own folder: run from an installed package's
        # site-packages (the container image), mypy would take every module there for one of ours.
        src = work / "src"
        for package in PACKAGES:
            shutil.copytree(native.ROOT / package, src / package,
                            ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
        os.chdir(src)
        paths = [str(native.source(m).relative_to(native.ROOT)) for m in native.MODULES]
        # --ignore-missing-imports: dependencies without type information (stubs are dev extras)
        extensions = mypycify(["--ignore-missing-imports", *paths], opt_level="3", group_name=native.GROUP,
                              target_dir=str(work / "c"))
        os.chdir(work)  # setuptools must not read the project's pyproject.toml: this is no package build
        setup(name="tagstream-engine-native", ext_modules=extensions, script_name="build_native",
              script_args=["-q", "build_ext", "--build-lib", str(work / "lib"), "--build-temp", str(work / "tmp")])
        missing = [m for m in native.MODULES if m not in native.extensions(work / "lib")]
        if missing:
            raise RuntimeError(f"mypyc built no extension for {', '.join(missing)}")
        if target.exists():
            shutil.rmtree(target)
        (work / "lib").rename(target)
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)
    builds = sorted((d for d in target.parent.iterdir() if d.is_dir() and not d.name.startswith("build-")),
                    key=lambda d: d.stat().st_mtime, reverse=True)
    for old in builds[KEEP:]:  # builds of older sources; a few stay for other checkouts sharing the folder
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    say(f"done in {time.monotonic() - started:.0f} s")
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--force", action="store_true", help="rebuild even when a build for these sources exists")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    where = build(force=args.force, quiet=args.quiet)
    print(where)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
