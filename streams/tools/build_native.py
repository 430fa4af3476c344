"""Compiles the engine's hot modules with mypyc (``streams.engine.native``) and builds the Rust core
(``native/``, ``streams.engine.native_core``): ``python -m streams.tools.build_native``.

Each build goes to ``<native dir>/<digest of its sources>/`` (the core's to ``core-<digest>/``) and
is skipped when that folder is there already, so ``deploy/local/bootstrap.sh`` runs it every time at
no cost. mypyc needs a C compiler and Python's headers (``gcc``, ``python3-dev``), about 30 s on a
2-core machine; the core needs cargo (rustup's, on PATH or in ``~/.cargo/bin``) and the crates of
``native/Cargo.lock`` from crates.io (cached by cargo) and the same C compiler (its allocator,
mimalloc, is C), about 40 s the first time. Without them the
engine stays pure Python / ingest takes the Python path, as with ``TAGSTREAM_NATIVE=off``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streams.engine import native, native_core

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
    builds = sorted((d for d in target.parent.iterdir() if d.is_dir() and not d.name.startswith(("build-", "core-"))),
                    key=lambda d: d.stat().st_mtime, reverse=True)
    for old in builds[KEEP:]:  # builds of older sources; a few stay for other checkouts sharing the folder
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    say(f"done in {time.monotonic() - started:.0f} s")
    return target


def cargo() -> str | None:
    """The cargo binary: on PATH, else rustup's default place."""
    found = shutil.which("cargo")
    if found:
        return found
    home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo") / "bin" / "cargo"
    return str(home) if home.is_file() else None


def build_core(*, force: bool = False, quiet: bool = False) -> Path:
    """Builds the Rust core (unless already built) and returns its build folder."""
    target = native_core.build_dir()
    if native_core.extension(target) is not None and not force:
        return target
    binary = cargo()
    if binary is None:
        raise RuntimeError("cargo not found (install Rust with rustup): the Rust core is not built")
    say = (lambda msg: None) if quiet else (lambda msg: print(f"[build_native] {msg}", file=sys.stderr, flush=True))
    say(f"building the Rust core ({native_core.CRATE}) with cargo into {target}")
    started = time.monotonic()
    target_dir = native.native_dir() / "core-target"  # cargo's own cache of compiled crates
    env = {**os.environ, "PYO3_PYTHON": sys.executable, "CARGO_TARGET_DIR": str(target_dir)}
    manifest = str(native_core.CRATE / "Cargo.toml")
    run = subprocess.run([binary, "build", "--release", "--locked", "--manifest-path", manifest],
                         env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"cargo build failed ({run.returncode}):\n{run.stderr[-4000:]}")
    built = target_dir / "release" / f"lib{native_core.MODULE}.so"
    work = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
    try:
        shutil.copy2(built, work / f"{native_core.MODULE}{importlib_suffix()}")
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    olds = sorted((d for d in target.parent.glob("core-*") if d.is_dir() and d != target and d.name != "core-target"),
                  key=lambda d: d.stat().st_mtime, reverse=True)
    for old in olds[KEEP - 1:]:
        shutil.rmtree(old, ignore_errors=True)
    say(f"done in {time.monotonic() - started:.0f} s")
    return target


def importlib_suffix() -> str:
    """The interpreter's own extension suffix (``.cpython-311-x86_64-linux-gnu.so``)."""
    import importlib.machinery
    return importlib.machinery.EXTENSION_SUFFIXES[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--force", action="store_true", help="rebuild even when a build for these sources exists")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--no-core", action="store_true", help="only the mypyc build, not the Rust core")
    args = p.parse_args(argv)
    failed = 0
    for what, step in (("mypyc", build), ("core", None if args.no_core else build_core)):
        if step is None:
            continue
        try:
            print(step(force=args.force, quiet=args.quiet))
        except Exception as exc:  # one failing leaves the other built
            print(f"[build_native] {what}: {exc}", file=sys.stderr, flush=True)
            failed = 1
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
