"""The Rust core's own unit tests (``#[cfg(test)]`` in native/src: Python's float ``repr`` and
``round``, exact int/float order, RFC 3339 instants), run by cargo as part of the suite.

Needs cargo, as the core's build does (deploy/local/bootstrap.sh installs it): without it this
fails rather than skips. Compiles the test build once into cargo's cache of the core's builds."""

from __future__ import annotations

import os
import subprocess
import sys

from streams.engine import native, native_core
from streams.tools.build_native import cargo


def test_the_cores_rust_unit_tests_pass() -> None:
    binary = cargo()
    assert binary is not None, "cargo not found: install Rust with rustup (deploy/local/bootstrap.sh does)"
    env = {**os.environ, "PYO3_PYTHON": sys.executable, "CARGO_TARGET_DIR": str(native.native_dir() / "core-target")}
    run = subprocess.run([binary, "test", "--release", "--locked", "--lib", "--quiet",
                          "--manifest-path", str(native_core.CRATE / "Cargo.toml")],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"cargo test failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert "test result: ok" in run.stdout
