"""Rule spec -> compiled rule set, once, at load time.

Every problem is collected (not just the first) and reported with its file, rule and position,
so ``tagstream rules check`` can list them all and a worker never meets a bad rule at run time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.canonical import CANONICAL_FIELD_TYPES
from schemas.rules import FeatureSpec, RuleFile, TagSpec, parse_duration_ms

from .errors import RuleError, RuleSetError
from .expr import CompiledExpr, ExprError, compile_expr
from .loader import load_yaml, rule_files

NUMERIC_TYPES = {"int", "float"}
NEEDS_NUMERIC = {"sum", "min", "max", "avg"}
NEEDS_FIELD = NEEDS_NUMERIC | {"distinct_count", "first", "last"}


@dataclass(frozen=True)
class FeatureDef:
    """A compiled feature. ``key`` fingerprints its definition: state is kept under it, so a
    renamed feature keeps its state and a redefined one starts afresh."""

    name: str
    key: str
    agg: str
    field: str | None
    window_ms: int | None
    """None: lifetime."""
    resolution_ms: int | None
    """None: the default for the window (see streams.features.windows)."""
    sources: frozenset[str]
    where: CompiledExpr | None
    file: str = ""


@dataclass(frozen=True)
class TagDef:
    """A compiled tag: it holds while ``when`` is true."""

    name: str
    when: CompiledExpr
    features: tuple[str, ...]
    """Feature names the rule reads, in a stable order."""
    description: str | None = None
    file: str = ""


@dataclass(frozen=True)
class CompiledRuleSet:
    version: str
    features: dict[str, FeatureDef]
    tags: dict[str, TagDef]
    files: tuple[str, ...] = field(default=())

    def since_thresholds(self) -> dict[str, tuple[float, ...]]:
        """For each time-since feature, every constant a tag compares it with (seconds)."""
        out: dict[str, set[float]] = {}
        for tag in self.tags.values():
            for name, values in tag.when.thresholds.items():
                out.setdefault(name, set()).update(values)
        return {k: tuple(sorted(v)) for k, v in out.items()}


def load_rules(path: str | Path) -> CompiledRuleSet:
    """Loads and compiles the rule file(s) at ``path``; raises RuleSetError listing every problem."""
    files = rule_files(path)
    errors: list[RuleError] = []
    parsed: list[tuple[str, RuleFile, Any]] = []
    digest = hashlib.sha256()
    for f in files:
        try:
            doc, text = load_yaml(f)
        except RuleSetError as exc:
            errors.extend(exc.errors)
            continue
        digest.update(text.encode())
        if not isinstance(doc, dict):
            errors.append(RuleError(str(f), "a rule file is a mapping with 'features' and 'tags'"))
            continue
        try:
            parsed.append((str(f), RuleFile.model_validate(doc), doc))
        except ValidationError as exc:
            errors.extend(_validation_errors(str(f), doc, exc))
    if errors:
        raise RuleSetError(errors)
    versions = [rf.version for _, rf, _ in parsed if rf.version]
    version = versions[0] if len(versions) == 1 and len(parsed) == 1 else "sha-" + digest.hexdigest()[:12]
    return compile_rules(parsed, version=version)


def compile_rules(parsed: list[tuple[str, RuleFile, Any]], *, version: str) -> CompiledRuleSet:
    """Compiles validated rule files (``(file name, RuleFile, raw document)``) into one rule set."""
    errors: list[RuleError] = []
    features: dict[str, FeatureDef] = {}
    raw_features: list[tuple[str, FeatureSpec, Mapping[str, Any]]] = []
    raw_tags: list[tuple[str, TagSpec, Mapping[str, Any]]] = []
    for fname, rf, doc in parsed:
        raw_features += [(fname, s, _raw_item(doc, "features", i)) for i, s in enumerate(rf.features)]
        raw_tags += [(fname, s, _raw_item(doc, "tags", i)) for i, s in enumerate(rf.tags)]

    for fname, spec, raw in raw_features:
        where = f"feature '{spec.name}'"
        line = getattr(raw, "line", None)
        if spec.name in features:
            errors.append(RuleError(fname, f"duplicate feature name (first in {features[spec.name].file})",
                                    where, line))
            continue
        try:
            fdef = _compile_feature(fname, spec, raw)
        except _Problems as p:
            errors.extend(RuleError(fname, m, where, ln or line, col) for m, ln, col in p.items)
            continue
        features[spec.name] = fdef
    # Tags are checked against every declared feature, even one with errors of its own, so a
    # broken feature is reported once (above) and not again as "unknown" in each tag.
    declared = sorted({spec.name for _, spec, _ in raw_features})
    since_names = {spec.name for _, spec, _ in raw_features if spec.agg == "since_last"}

    tags: dict[str, TagDef] = {}
    for fname, tspec, raw in raw_tags:
        where = f"tag '{tspec.name}'"
        line = getattr(raw, "line", None)
        if tspec.name in tags:
            errors.append(RuleError(fname, f"duplicate tag name (first in {tags[tspec.name].file})", where, line))
            continue
        try:
            when = compile_expr(tspec.when, names=declared, kind="when",
                                threshold_names=since_names, filename=f"{fname}:{tspec.name}")
        except ExprError as exc:
            ln, col = _expr_pos(raw, "when", exc)
            errors.append(RuleError(fname, f"when: {exc.message}", where, ln or line, col))
            continue
        tags[tspec.name] = TagDef(tspec.name, when, tuple(sorted(when.names)), tspec.description, fname)

    if not tags and not errors:
        errors.append(RuleError(",".join(f for f, _, _ in parsed) or "<rules>", "the rule set declares no tags"))
    if errors:
        raise RuleSetError(errors)
    return CompiledRuleSet(version, features, tags, tuple(f for f, _, _ in parsed))


class _Problems(Exception):
    def __init__(self, items: list[tuple[str, int | None, int | None]]) -> None:
        self.items = items


def _compile_feature(fname: str, spec: FeatureSpec, raw: Mapping[str, Any]) -> FeatureDef:
    problems: list[tuple[str, int | None, int | None]] = []

    def pos(key: str) -> tuple[int | None, int | None]:
        vp = getattr(raw, "value_pos", {})
        return vp.get(key, (None, None))

    window_ms: int | None = None
    if spec.window not in (None, "lifetime"):
        try:
            window_ms = parse_duration_ms(spec.window)  # type: ignore[arg-type]
            if window_ms <= 0:
                raise ValueError("a window must be longer than 0")
        except ValueError as exc:
            problems.append((f"window: {exc}", *pos("window")))
    resolution_ms: int | None = None
    if spec.resolution is not None:
        try:
            resolution_ms = parse_duration_ms(spec.resolution)
            if resolution_ms <= 0:
                raise ValueError("resolution must be longer than 0")
            if window_ms is not None and resolution_ms > window_ms:
                raise ValueError(f"resolution {spec.resolution} is longer than the window {spec.window}")
        except ValueError as exc:
            problems.append((f"resolution: {exc}", *pos("resolution")))
        if spec.window in (None, "lifetime"):
            problems.append(("resolution: only windowed features have a resolution", *pos("resolution")))
    if spec.agg == "since_last" and spec.window not in (None, "lifetime"):
        problems.append(("window: since_last is measured over the customer's whole history; drop the window "
                         "and compare it with a constant in the tag (e.g. x >= days(30))", *pos("window")))
    if spec.field is not None and spec.field not in CANONICAL_FIELD_TYPES:
        known = ", ".join(sorted(CANONICAL_FIELD_TYPES))
        problems.append((f"field: unknown event field '{spec.field}'; known: {known}", *pos("field")))
    elif spec.agg in NEEDS_FIELD and spec.field is None:
        problems.append((f"{spec.agg} needs a 'field'", *pos("agg")))
    elif spec.agg in NEEDS_NUMERIC and CANONICAL_FIELD_TYPES[spec.field] not in NUMERIC_TYPES:  # type: ignore[index]
        problems.append((f"field: {spec.agg} needs a numeric field; '{spec.field}' is "
                         f"{CANONICAL_FIELD_TYPES[spec.field]}", *pos("field")))  # type: ignore[index]
    elif spec.agg == "since_last" and spec.field is not None:
        problems.append(("field: since_last takes no field (it reads the event time)", *pos("field")))
    where_expr = None
    if spec.where is not None:
        try:
            where_expr = compile_expr(spec.where, names=CANONICAL_FIELD_TYPES, kind="where",
                                      filename=f"{fname}:{spec.name}")
        except ExprError as exc:
            ln, col = _expr_pos(raw, "where", exc)
            problems.append((f"where: {exc.message}", ln, col))
    if problems:
        raise _Problems(problems)
    sources = frozenset(spec.sources)
    fingerprint = orjson.dumps([spec.agg, spec.field, window_ms, resolution_ms, sorted(sources),
                                " ".join((spec.where or "").split())])
    key = hashlib.sha1(fingerprint).hexdigest()[:8]
    return FeatureDef(spec.name, key, spec.agg, spec.field, window_ms, resolution_ms, sources, where_expr, fname)


def _raw_item(doc: Any, section: str, index: int) -> Mapping[str, Any]:
    try:
        item = doc[section][index]
    except (KeyError, IndexError, TypeError):
        return {}
    return item if isinstance(item, Mapping) else {}


def _expr_pos(raw: Mapping[str, Any], key: str, exc: ExprError) -> tuple[int | None, int | None]:
    """Position of an expression error in the file (single-line expressions are exact)."""
    vp = getattr(raw, "value_pos", {})
    if key not in vp:
        return None, None
    line, col = vp[key]
    if exc.line is None:
        return line, col
    if exc.line == 1:
        return line, col + (exc.col or 1) - 1
    return line + exc.line - 1, exc.col


def _validation_errors(fname: str, doc: Any, exc: ValidationError) -> list[RuleError]:
    out = []
    for err in exc.errors():
        loc = err["loc"]
        rule = None
        line = getattr(doc, "line", None)
        col = None
        if len(loc) >= 2 and loc[0] in ("features", "tags") and isinstance(loc[1], int):
            raw = _raw_item(doc, str(loc[0]), loc[1])
            kind = "feature" if loc[0] == "features" else "tag"
            name = raw.get("name") if isinstance(raw, Mapping) else None
            rule = f"{kind} '{name}'" if name else f"{kind} #{loc[1] + 1}"
            line = getattr(raw, "line", line)
            if len(loc) >= 3 and isinstance(loc[2], str):
                line, col = getattr(raw, "value_pos", {}).get(loc[2], (line, None))
        field_path = ".".join(str(p) for p in loc[2:] if not isinstance(p, int) or True) if len(loc) > 2 else \
            ".".join(str(p) for p in loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        out.append(RuleError(fname, f"{field_path}: {msg}" if field_path else msg, rule, line, col))
    return out
