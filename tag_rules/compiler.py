"""Rule spec -> compiled rule set, once, at load time.

Every problem is collected (not just the first) and reported with its file, rule and position,
so ``tagstream rules check`` can list them all and a worker never meets a bad rule at run time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.canonical import CANONICAL_FIELD_TYPES
from schemas.rules import FeatureSpec, RuleFile, TagSpec

from .durations import MAX_DURATION_MS, duration_ms, fmt_ms
from .errors import RuleError, RuleSetError
from .expr import CompiledExpr, ExprError, compile_expr
from .loader import load_yaml, rule_files
from .names import describe_non_ascii, name_problem
from .positions import expr_pos, value_pos
from .sequences import PATTERN_AGGS, EventMatch, Pattern, compile_pattern
from .tags import TagDef, TagProblems, compile_tag

__all__ = ["CompiledRuleSet", "EventMatch", "FeatureDef", "Pattern", "TagDef", "compile_rules", "load_rules"]

NUMERIC_TYPES = {"int", "float"}
NEEDS_NUMERIC = {"sum", "min", "max", "avg"}
NEEDS_FIELD = NEEDS_NUMERIC | {"distinct_count", "first", "last"}

MIN_WINDOW_MS = 5_000
"""Shortest window (5s): finer windows only multiply due times and buckets."""
MAX_WINDOW_MS = MAX_DURATION_MS
"""Longest window (3650d, 10 years); longer is lifetime. Keeps every bucket and due time in 64 bits."""
MAX_VERSION_LENGTH = 128
"""Longest ``version``: it is published with every tag change and stored with every customer."""


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
    """None: the default for the window (see streams.engine.features.windows)."""
    sources: frozenset[str]
    """Every source the feature reads (for sequence/absence: both sides')."""
    where: CompiledExpr | None
    file: str = ""
    pattern: Pattern | None = None
    """sequence / absence: A (``first``), B (``then``) and ``within``; None for other aggs."""


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
            for _, cond in tag.conditions():
                for name, values in cond.thresholds.items():
                    out.setdefault(name, set()).update(values)
        return {k: tuple(sorted(v)) for k, v in out.items()}


def load_rules(path: str | Path) -> CompiledRuleSet:
    """Loads and compiles the rule file(s) at ``path``; raises RuleSetError listing every problem."""
    files = rule_files(path)
    errors: list[RuleError] = []
    version_errors: list[RuleError] = []  # not fatal to the check: the rules are still compiled
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
            rf = RuleFile.model_validate(doc)
        except ValidationError as exc:
            errors.extend(_validation_errors(str(f), doc, exc))
            continue
        problem = _version_problem(rf.version)
        if problem:
            version_errors.append(RuleError(str(f), f"version: {problem}", None, *value_pos(doc, "version")))
        parsed.append((str(f), rf, doc))
    if errors:
        raise RuleSetError(errors + version_errors)
    versions = [rf.version for _, rf, _ in parsed if rf.version]
    version = versions[0] if len(versions) == 1 and len(parsed) == 1 else "sha-" + digest.hexdigest()[:12]
    try:
        rules = compile_rules(parsed, version=version)
    except RuleSetError as exc:
        raise RuleSetError(version_errors + exc.errors) from None
    if version_errors:
        raise RuleSetError(version_errors)
    return rules


def compile_rules(parsed: list[tuple[str, RuleFile, Any]], *, version: str) -> CompiledRuleSet:
    """Compiles validated rule files (``(file name, RuleFile, raw document)``) into one rule set."""
    errors: list[RuleError] = []
    raw_features: list[tuple[str, FeatureSpec, Mapping[str, Any]]] = []
    raw_tags: list[tuple[str, TagSpec, Mapping[str, Any]]] = []
    for fname, rf, doc in parsed:
        raw_features += [(fname, s, _raw_item(doc, "features", i)) for i, s in enumerate(rf.features)]
        raw_tags += [(fname, s, _raw_item(doc, "tags", i)) for i, s in enumerate(rf.tags)]
    features = _compile_features(raw_features, errors)
    tags = _compile_tags(raw_tags, raw_features, errors)
    if not tags and not errors:
        errors.append(RuleError(",".join(f for f, _, _ in parsed) or "<rules>", "the rule set declares no tags"))
    if errors:
        raise RuleSetError(errors)
    return CompiledRuleSet(version, features, tags, tuple(f for f, _, _ in parsed))


def _compile_features(raw_features: list[tuple[str, FeatureSpec, Mapping[str, Any]]],
                      errors: list[RuleError]) -> dict[str, FeatureDef]:
    features: dict[str, FeatureDef] = {}
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
    return features


def _compile_tags(raw_tags: list[tuple[str, TagSpec, Mapping[str, Any]]],
                  raw_features: list[tuple[str, FeatureSpec, Mapping[str, Any]]],
                  errors: list[RuleError]) -> dict[str, TagDef]:
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
        problem = name_problem(tspec.name, "tag")
        if problem:
            errors.append(RuleError(fname, f"name: {problem}", where, *value_pos(raw, "name", line)))
            continue
        try:
            tags[tspec.name] = compile_tag(fname, tspec, raw, declared, since_names)
        except TagProblems as p:
            errors.extend(RuleError(fname, m, where, ln or line, col) for m, ln, col in p.items)
    return tags


class _Problems(Exception):
    def __init__(self, items: list[tuple[str, int | None, int | None]]) -> None:
        self.items = items


def _compile_feature(fname: str, spec: FeatureSpec, raw: Mapping[str, Any]) -> FeatureDef:
    problems: list[tuple[str, int | None, int | None]] = []

    def problem(key: str, message: str) -> None:
        problems.append((message, *value_pos(raw, key)))

    name_issue = name_problem(spec.name, "feature")
    if name_issue:
        problem("name", f"name: {name_issue}")
    window_ms, resolution_ms = _window_and_resolution(spec, problem)
    pattern = compile_pattern(fname, spec, raw, window_ms, problems)
    if spec.agg not in PATTERN_AGGS:
        _check_field(spec, problem)
    where_expr = None
    if spec.where is not None and spec.agg not in PATTERN_AGGS:
        try:
            where_expr = compile_expr(spec.where, names=CANONICAL_FIELD_TYPES, kind="where",
                                      filename=f"{fname}:{spec.name}")
        except ExprError as exc:
            ln, col = expr_pos(raw, "where", exc)
            problems.append((f"where: {exc.message}", ln, col))
    if problems:
        raise _Problems(problems)
    sources: frozenset[str] = frozenset(spec.sources)
    shape: list[Any] = [spec.agg, spec.field, window_ms, resolution_ms, sorted(sources),
                        " ".join((spec.where or "").split())]
    if pattern is not None:
        sources = pattern.first.sources.union(pattern.then.sources)
        shape = [spec.agg, window_ms, resolution_ms, pattern.first.fingerprint(), pattern.then.fingerprint(),
                 pattern.within_ms]
    key = hashlib.sha1(orjson.dumps(shape)).hexdigest()[:8]
    return FeatureDef(spec.name, key, spec.agg, spec.field, window_ms, resolution_ms, sources, where_expr, fname,
                      pattern)


def _window_and_resolution(spec: FeatureSpec, problem: Callable[[str, str], None]) -> tuple[int | None, int | None]:
    """The window and resolution in ms (None: lifetime / the default); reports what is wrong."""
    lifetime = spec.window in (None, "lifetime")
    window_ms: int | None = None
    if spec.window is not None and not lifetime:
        try:
            window_ms = duration_ms(spec.window)
            if window_ms < MIN_WINDOW_MS:
                raise ValueError(f"{spec.window} is shorter than the minimum window, {fmt_ms(MIN_WINDOW_MS)}")
            if window_ms > MAX_WINDOW_MS:
                raise ValueError(f"{spec.window} is longer than the maximum window, {fmt_ms(MAX_WINDOW_MS)} "
                                 "(10 years); use lifetime (drop the window)")
        except ValueError as exc:
            window_ms = None
            problem("window", f"window: {exc}")
    resolution_ms: int | None = None
    if spec.resolution is not None:
        try:
            resolution_ms = duration_ms(spec.resolution)
            if resolution_ms <= 0:
                raise ValueError("resolution must be longer than 0")
            if window_ms is not None and resolution_ms > window_ms:
                raise ValueError(f"resolution {spec.resolution} is longer than the window {spec.window}")
        except ValueError as exc:
            problem("resolution", f"resolution: {exc}")
        if lifetime:
            problem("resolution", "resolution: only windowed features have a resolution")
    if spec.agg == "since_last" and not lifetime:
        problem("window", "window: since_last is measured over the customer's whole history; drop the window "
                "and compare it with a constant in the tag (e.g. x >= days(30))")
    return window_ms, resolution_ms


def _check_field(spec: FeatureSpec, problem: Callable[[str, str], None]) -> None:
    ftype = CANONICAL_FIELD_TYPES.get(spec.field) if spec.field is not None else None
    if spec.field is not None and ftype is None:
        known = ", ".join(sorted(CANONICAL_FIELD_TYPES))
        problem("field", f"field: unknown event field '{spec.field}'; known: {known}")
    elif spec.agg in NEEDS_FIELD and spec.field is None:
        problem("agg", f"{spec.agg} needs a 'field'")
    elif spec.agg in NEEDS_NUMERIC and ftype not in NUMERIC_TYPES:
        problem("field", f"field: {spec.agg} needs a numeric field; '{spec.field}' is {ftype}")
    elif spec.agg == "since_last" and spec.field is not None:
        problem("field", "field: since_last takes no field (it reads the event time)")


def _version_problem(version: str | None) -> str | None:
    """A version is published with every tag change and stored per customer: short, printable text."""
    if version is None:
        return None
    if len(version) > MAX_VERSION_LENGTH:
        return f"too long ({len(version)} characters; the maximum is {MAX_VERSION_LENGTH})"
    bad = next((c for c in version if not c.isprintable()), None)
    if bad is not None:
        kind = "a lone surrogate" if 0xD800 <= ord(bad) <= 0xDFFF else "a control or non-printable character"
        return f"contains {kind} ({bad!a}); a version is printable text such as retail-2026.11.1"
    return None


def _raw_item(doc: Any, section: str, index: int) -> Mapping[str, Any]:
    try:
        item = doc[section][index]
    except (KeyError, IndexError, TypeError):
        return {}
    return item if isinstance(item, Mapping) else {}


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
                line, col = value_pos(raw, loc[2], line)
        elif loc and isinstance(loc[0], str):
            line, col = value_pos(doc, loc[0], line)
        field_path = ".".join(str(p) for p in (loc[2:] if len(loc) > 2 else loc))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        elif err["type"] == "string_pattern_mismatch" and loc[-1] == "name":
            value = err.get("input")
            msg = (describe_non_ascii(value) if isinstance(value, str) and not value.isascii() else
                   "a name is lowercase ASCII letters, digits and _, starting with a letter ([a-z][a-z0-9_]*)")
        out.append(RuleError(fname, f"{field_path}: {msg}" if field_path else msg, rule, line, col))
    return out
