"""Versions of what runs: tagstream itself (package metadata), faust-streaming, Python, and whether
the engine is the compiled one (streams/engine/native.py). Shown by ``tagstream --version`` and
exported as ``tagstream_build_info``."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from streams.engine import native


def package_version(name: str) -> str:
    """The installed distribution's version, or ``unknown`` (e.g. a source tree never installed)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def versions() -> dict[str, str]:
    """``version`` (tagstream), ``faust`` (faust-streaming), ``python`` and ``engine`` (native: compiled
    with mypyc; python)."""
    return {"version": package_version("tagstream"), "faust": package_version("faust-streaming"),
            "python": platform.python_version(), "engine": native.ENGINE}
