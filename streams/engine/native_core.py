"""The Rust core (``native/``, a PyO3 extension ``tagstream_core``): where its build lives and
whether this process uses it.

Today the core holds ingest's fast path for a plain source record (``tagstream_core.fast_event``:
the checks of ``schemas/fast_decode.py`` and the encoding of the internal topic's item in one native
call). ``python -m streams.tools.build_native`` builds it with cargo into
``<native dir>/core-<digest>/``, ``digest`` a hash of the crate's sources (Cargo.toml, Cargo.lock,
src/) and of the interpreter, so a build is only ever used with the sources it was made from.

``TAGSTREAM_CORE`` chooses, read when this module is first imported: ``auto`` (default) uses the
build if there is one, ``on`` refuses to run without it, ``off`` runs the Python path
(``schemas.fast_decode`` and ``orjson``). Unset, it follows ``TAGSTREAM_NATIVE=off`` (the pure-Python
reference). It is a setting of its own because the core needs a Rust toolchain to build, which the
mypyc build does not (the container image has no core: docs/operations.md). ``CORE`` is the loaded
module or None and ``CORE_REASON`` says why.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import sys
from pathlib import Path
from types import ModuleType

from streams.engine import native

CRATE = native.ROOT / "native"
MODULE = "tagstream_core"


def sources() -> list[Path]:
    """The files a build of the crate is made from."""
    files = [CRATE / "Cargo.toml", CRATE / "Cargo.lock", *sorted((CRATE / "src").rglob("*.rs"))]
    return [f for f in files if f.is_file()]


def digest() -> str:
    h = hashlib.sha256()
    h.update(f"{sys.implementation.cache_tag} {sys.version} {platform.machine()}\n".encode())
    for path in sources():
        h.update(path.relative_to(CRATE).as_posix().encode() + b"\n")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build_dir() -> Path:
    return native.native_dir() / f"core-{digest()}"


def extension(directory: Path) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = directory / f"{MODULE}{suffix}"
        if path.is_file():
            return path
    return None


def load() -> tuple[ModuleType | None, str]:
    """(the core, why) for this process's ``TAGSTREAM_NATIVE``."""
    mode = os.environ.get("TAGSTREAM_CORE", "").strip().lower()
    if not mode and os.environ.get("TAGSTREAM_NATIVE", "").strip().lower() == "off":
        return None, "TAGSTREAM_NATIVE=off"
    mode = mode or "auto"
    if mode not in native.MODES:
        raise ValueError(f"TAGSTREAM_CORE={mode!r}: must be one of {', '.join(native.MODES)}")
    if mode == "off":
        return None, "TAGSTREAM_CORE=off"
    if not CRATE.is_dir():
        why = f"no crate at {CRATE} (an installed package without the sources)"
    else:
        where = build_dir()
        path = extension(where)
        if path is not None:
            if MODULE in sys.modules:
                return sys.modules[MODULE], f"cargo build {where.name}"
            spec = importlib.util.spec_from_file_location(
                MODULE, path, loader=importlib.machinery.ExtensionFileLoader(MODULE, str(path)))
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[MODULE] = module
            return module, f"cargo build {where.name}"
        why = f"no build of the Rust core for these sources in {where} (python -m streams.tools.build_native)"
    if mode == "on":
        raise ImportError(f"TAGSTREAM_CORE=on: {why}")
    return None, why


CORE, CORE_REASON = load()
