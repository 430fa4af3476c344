"""The engine's hot modules compiled with mypyc, and how an import picks them up (issue 9).

The pure-Python modules are the engine; ``python -m streams.tools.build_native`` compiles
``MODULES`` from the same source, unchanged, with mypyc into ``<native dir>/<digest>/`` (a C
extension per module). ``digest`` is a hash of those modules' sources and of the interpreter, so a
build is only ever used with the exact sources it was made from: edit ``runtime.py`` and the next
import runs pure Python until the next build (``deploy/local/bootstrap.sh`` rebuilds).

``TAGSTREAM_NATIVE`` chooses, read once when ``streams.engine`` is first imported:

* ``auto`` (default): the compiled modules when a build for these sources exists, else pure Python;
* ``on``: the compiled modules, or an ImportError saying how to build them;
* ``off``: pure Python (debugging, profiling with per-method wrappers, the differential tests).

``TAGSTREAM_NATIVE_DIR`` moves the builds (default ``<repo>/.cache/native``). ``ENGINE`` says what
was chosen and ``REASON`` why; the worker logs both at start, ``tagstream --version`` and the
``engine`` label of ``tagstream_build_info`` show ``ENGINE``.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

MODULES = (
    "streams.engine.features.base",
    "streams.engine.features.aggregations",
    "streams.engine.features.windows",
    "streams.engine.features.runtime",
    "streams.engine.features.sequences",
    "streams.engine.features.seen_filter",
    "streams.engine.features.state",
    "streams.engine.due",
    "streams.engine.since_due",
    "streams.engine.due_times",
    "streams.engine.flap",
    "streams.engine.tag_change",
    "streams.engine.flips",
    "streams.engine.crossings",
    "streams.engine.guards",
    "streams.engine.conditions",
    "streams.engine.flip_moves",
    "streams.engine.tag_index",
    "streams.engine.fold_plan",
    "streams.engine.feature_reads",
    "streams.engine.outcome",
    "streams.engine.tag_engine",
    "streams.engine.identity.graph",
    "streams.engine.identity.merge",
    "streams.engine.identity.moves",
    "schemas.fast_decode",
)
"""The per-event path: feature folding and values, tag evaluation and its index, changes, due times;
identity resolution's per-link graph and its state merges; and ingest's fast decoding of a source
record (``schemas.fast_decode``: not an engine module, but on every event's path).
``tests/unit/test_native.py`` checks they compile to the same results as pure Python."""
OPTIONAL: frozenset[str] = frozenset({"schemas.fast_decode"})
"""Compiled modules that may already be imported as Python when the engine is chosen (a process that
decoded records before it imported ``streams.engine``): they stay Python in that process, the others
are still compiled. An engine module imported as Python makes the whole engine Python (its modules
call each other natively)."""

GROUP = "tagstream_engine"
"""mypyc's shared library for the group is ``<GROUP>__mypyc``."""

MODES = ("auto", "on", "off")
ROOT = Path(__file__).resolve().parents[2]

ENGINE = "python"
"""``native`` or ``python``: what this process runs (set by ``install``)."""
REASON = "not chosen yet"


def source(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def digest(modules: Sequence[str] = MODULES) -> str:
    """The sources and the interpreter a build belongs to."""
    h = hashlib.sha256()
    h.update(f"{sys.implementation.cache_tag} {sys.version} {platform.machine()}\n".encode())
    for module in modules:
        h.update(module.encode() + b"\n")
        h.update(source(module).read_bytes())
    return h.hexdigest()[:16]


def native_dir() -> Path:
    return Path(os.environ.get("TAGSTREAM_NATIVE_DIR") or ROOT / ".cache" / "native")


def build_dir() -> Path:
    """Where the build for the current sources is (or would be)."""
    return native_dir() / digest()


def extensions(directory: Path) -> dict[str, Path]:
    """Module name -> extension file, for every compiled module of a build folder."""
    found: dict[str, Path] = {}
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for path in directory.rglob(f"*{suffix}"):
            rel = path.relative_to(directory).as_posix()[: -len(suffix)]
            found.setdefault(rel.replace("/", "."), path)
    return found


class NativeFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules (and mypyc's group library) in one build folder."""

    def __init__(self, found: dict[str, Path]) -> None:
        self.found = found

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        file = self.found.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def install() -> None:
    """Chooses the engine for this process (``TAGSTREAM_NATIVE``); before any engine module loads."""
    global ENGINE, REASON
    mode = os.environ.get("TAGSTREAM_NATIVE", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"TAGSTREAM_NATIVE={mode!r}: must be one of {', '.join(MODES)}")
    if any(isinstance(f, NativeFinder) for f in sys.meta_path):
        return
    loaded = [m for m in MODULES if m in sys.modules and m not in OPTIONAL]
    if mode == "off":
        ENGINE, REASON = "python", "TAGSTREAM_NATIVE=off"
        return
    where = build_dir()
    found = extensions(where) if where.is_dir() else {}
    missing = [m for m in MODULES if m not in found]
    if missing or loaded:
        why = (f"engine modules already imported as Python: {', '.join(loaded)}" if loaded else
               f"no native build for these sources in {where} (python -m streams.tools.build_native)")
        if mode == "on":
            raise ImportError(f"TAGSTREAM_NATIVE=on: {why}")
        ENGINE, REASON = "python", why
        return
    sys.meta_path.insert(0, NativeFinder({m: f for m, f in found.items() if m not in sys.modules}))
    ENGINE, REASON = "native", f"mypyc build {where.name}"


def left_as_python() -> list[str]:
    """``OPTIONAL`` modules this process runs as Python although the engine is compiled (they were
    imported before it): a worker says so at start."""
    if ENGINE != "native":
        return []
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return sorted(m for m in OPTIONAL if m in sys.modules
                  and not str(getattr(sys.modules[m], "__file__", "")).endswith(suffixes))


install()  # on import: ``streams.engine`` imports this module before any other of its modules
