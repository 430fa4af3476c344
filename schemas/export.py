"""JSON Schema export of the public shapes, for producers and consumers outside Python.

``python -m schemas.export [DIR]`` writes ``<name>.schema.json`` files (default: schemas/json,
committed; tests/unit/test_schemas_models.py fails when they are stale).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .deployment import RulesDeployment
from .events import ClickstreamEvent, OrderEvent, PosEvent
from .identity import IdentityRecord
from .rules import RuleFile
from .tags import TagChange, TagValue

DEFAULT_DIR = Path(__file__).resolve().parent / "json"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://tagstream.dev/schemas/"
"""``$id`` of each schema: ID_BASE + ``<name>.schema.json`` (the committed file's name)."""

_MODELS: dict[str, type[BaseModel]] = {
    "clickstream": ClickstreamEvent,
    "pos": PosEvent,
    "orders": OrderEvent,
    "identity": IdentityRecord,
    "tag_change": TagChange,
    "tag_value": TagValue,
    "rule_file": RuleFile,
    "rules_deployment": RulesDeployment,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """Name -> JSON Schema (draft 2020-12) of: the three event topic inputs, identity, tag_change, tag_value, rule_file,
    rules_deployment."""
    out: dict[str, dict[str, Any]] = {}
    for name, model in _MODELS.items():
        schema = model.model_json_schema(mode="validation")
        out[name] = {"$schema": SCHEMA_DIALECT, "$id": schema_id(name), **schema}
    return out


def schema_id(name: str) -> str:
    """The ``$id`` of schema ``name`` (e.g. https://tagstream.dev/schemas/clickstream.schema.json)."""
    return f"{ID_BASE}{name}.schema.json"


def render(schema: dict[str, Any]) -> str:
    """The exact text written for one schema (sorted keys, indent 2, trailing newline)."""
    return json.dumps(schema, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def export(dir: Path) -> list[Path]:
    """Writes every schema to ``dir/<name>.schema.json``; returns the paths written."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in json_schemas().items():
        path = dir / f"{name}.schema.json"
        path.write_text(render(schema), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print("usage: python -m schemas.export [DIR]  (default: schemas/json)", file=sys.stderr)
        return 2
    for path in export(Path(args[0]) if args else DEFAULT_DIR):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
