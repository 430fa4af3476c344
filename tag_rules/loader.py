"""YAML -> raw rule documents that remember the line of every mapping and value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import RuleError, RuleSetError


class LineDict(dict[str, Any]):
    """A YAML mapping that knows where it and each of its values start (1-based)."""

    line: int = 0
    value_pos: dict[str, tuple[int, int]]


class _Loader(yaml.SafeLoader):
    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:  # a 5,000-digit int, a date such as 2001-13-45
            raise yaml.constructor.ConstructorError(None, None, f"cannot read this value: {exc}",
                                                    node.start_mark) from None


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.value_pos = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:  # a list or mapping as a key (``? [a, b]: 1``, ``{[1]: x}``)
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                "a mapping key must be a plain value (text or number), not a list or mapping",
                key_node.start_mark) from None
        out[key] = loader.construct_object(value_node, deep=True)
        # Plain scalars start where their text starts; quoted and block scalars one char later.
        style_skip = 1 if getattr(value_node, "style", None) in ("'", '"') else 0
        line = value_node.start_mark.line + 1
        col = value_node.start_mark.column + 1 + style_skip
        if getattr(value_node, "style", None) in ("|", ">"):
            line, col = line + 1, value_node.start_mark.column + 1  # approximate: block content
        out.value_pos[str(key)] = (line, col)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


FIXTURE_SUFFIXES = (".tests.yaml", ".tests.yml")
"""Rule tests (``tagstream rules test``) live next to the rules; a folder's rule files skip them."""


def rule_files(path: str | Path) -> list[Path]:
    """The rule files at ``path``: the file itself, or every ``*.yaml``/``*.yml`` in a folder
    except rule-test fixtures (``*.tests.yaml``)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in [*p.glob("*.yaml"), *p.glob("*.yml")] if not f.name.endswith(FIXTURE_SUFFIXES))
        if not files:
            raise RuleSetError([RuleError(str(p), "no *.yaml rule files in this folder")])
        return files
    if not p.exists():
        raise RuleSetError([RuleError(str(p), "no such file or folder")])
    return [p]


def load_yaml(path: Path) -> tuple[Any, str]:
    """Parses one file; returns ``(document, text)``. YAML syntax errors become RuleSetError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleSetError([RuleError(str(path), f"cannot read: {exc}")]) from exc
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise RuleSetError([RuleError(str(path), f"{kind}: {problem}",
                                      line=mark.line + 1 if mark else None,
                                      col=mark.column + 1 if mark else None)]) from exc
    except RecursionError:
        raise RuleSetError([RuleError(str(path), "YAML nesting too deep")]) from None
    return doc, text
