"""Failures found by the fuzz run (benchmarks/fuzz.py), each with a reproducer: ``save`` writes the
payload under the run's repro directory and the command that decodes it again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .common import REPO
from .fuzz_kinds import Kind


@dataclass
class Failure:
    where: str
    index: int
    kind: str
    source: str
    detail: str
    repro: str = ""


def save(repro_dir: Path, where: str, i: int, kind: Kind, source: str, value: bytes | None, detail: str) -> Failure:
    repro_dir.mkdir(parents=True, exist_ok=True)
    p = repro_dir / f"{i:07d}-{kind.name}-{source}.bin"
    p.write_bytes(value or b"")
    repro = (f".venv/bin/python -c \"from schemas.decode import decode_event; "
             f"print(decode_event('{source}', open('{p.relative_to(REPO)}','rb').read()))\"")
    return Failure(where, i, kind.name, source, detail[:300], repro)
