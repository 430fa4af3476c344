"""Versions of what runs: tagstream itself (package metadata), faust-streaming and Python.
Shown by ``tagstream --version`` and exported as ``tagstream_build_info``."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version


def package_version(name: str) -> str:
    """The installed distribution's version, or ``unknown`` (e.g. a source tree never installed)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def versions() -> dict[str, str]:
    """``version`` (tagstream), ``faust`` (faust-streaming) and ``python``."""
    return {"version": package_version("tagstream"), "faust": package_version("faust-streaming"),
            "python": platform.python_version()}
