"""Sequence and absence features: "A then B within T" and "A and no B within T after it".

Their two sides (``first``: the A events, ``then``: the B events) each carry their own
``sources`` and ``where``; ``within`` is T. This module checks those keys and compiles the two
filters, reporting each problem at its position; the run-time semantics are in
streams/engine/features/sequences.py and docs/rules.md, *Sequences and absence*.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.canonical import CANONICAL_FIELD_TYPES
from schemas.rules import EventMatchSpec, FeatureSpec

from .durations import MAX_DURATION_MS, duration_ms, fmt_ms
from .expr import CompiledExpr, ExprError, compile_expr
from .positions import expr_pos, value_pos

PATTERN_AGGS = frozenset({"sequence", "absence"})
MIN_WITHIN_MS = 1000
"""Shortest ``within`` (1s)."""

Problem = tuple[str, int | None, int | None]


@dataclass(frozen=True)
class EventMatch:
    """One side of a pattern: events of ``sources`` for which ``where`` holds."""

    sources: frozenset[str]
    where: CompiledExpr | None

    def matches(self, event: Mapping[str, Any]) -> bool:
        if event["source"] not in self.sources:
            return False
        return self.where is None or bool(self.where(event))

    def fingerprint(self) -> list[Any]:
        return [sorted(self.sources), " ".join((self.where.source if self.where else "").split())]


@dataclass(frozen=True)
class Pattern:
    """A compiled sequence or absence: A (``first``), B (``then``) and T (``within_ms``)."""

    first: EventMatch
    then: EventMatch
    within_ms: int


def compile_pattern(fname: str, spec: FeatureSpec, raw: Mapping[str, Any], window_ms: int | None,
                    problems: list[Problem]) -> Pattern | None:
    """The pattern of a sequence/absence feature (None for other aggs, or when it has problems,
    which are appended to ``problems``). Other aggs may not use ``first``/``then``/``within``."""
    line = getattr(raw, "line", None)
    if spec.agg not in PATTERN_AGGS:
        for key in ("first", "then", "within"):
            if getattr(spec, key) is not None:
                problems.append((f"{key}: only sequence and absence features take '{key}' "
                                 f"(this is a {spec.agg} feature)", *value_pos(raw, key, line)))
        return None
    before = len(problems)
    for key, why in (("field", "counts events"), ("where", "filters each side in 'first' and 'then'"),
                     ("sources", "takes its sources in 'first' and 'then'")):
        if key in raw:
            problems.append((f"{key}: {_a(spec.agg)} feature {why}, not with '{key}'", *value_pos(raw, key, line)))
    if spec.agg == "absence" and spec.resolution is not None and window_ms is not None:
        problems.append(("resolution: an absence feature keeps event times, not buckets; drop 'resolution'",
                         *value_pos(raw, "resolution", line)))
    first = _side(fname, spec, raw, "first", "the events that start it (A)",
                  '{sources: [clickstream], where: type == "add_to_cart"}', problems)
    then = _side(fname, spec, raw, "then", "the events that " +
                 ("complete it (B)" if spec.agg == "sequence" else "cancel it (B)"),
                 '{sources: [orders], where: type == "paid"}', problems)
    within_ms = _within(spec, raw, window_ms, problems)
    if len(problems) > before or first is None or then is None or within_ms is None:
        return None
    return Pattern(first, then, within_ms)


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _side(fname: str, spec: FeatureSpec, raw: Mapping[str, Any], key: str, what: str, example: str,
          problems: list[Problem]) -> EventMatch | None:
    side: EventMatchSpec | None = getattr(spec, key)
    if side is None:
        problems.append((f"{spec.agg} needs '{key}': {what}, e.g. {key}: {example}",
                         *value_pos(raw, "agg", getattr(raw, "line", None))))
        return None
    raw_side = raw.get(key)
    raw_side = raw_side if isinstance(raw_side, Mapping) else {}
    where = None
    if side.where is not None:
        try:
            where = compile_expr(side.where, names=CANONICAL_FIELD_TYPES, kind="where",
                                 filename=f"{fname}:{spec.name}.{key}")
        except ExprError as exc:
            ln, col = expr_pos(raw_side, "where", exc)
            problems.append((f"{key}.where: {exc.message}", ln or getattr(raw_side, "line", None), col))
            return None
    return EventMatch(frozenset(side.sources), where)


def _within(spec: FeatureSpec, raw: Mapping[str, Any], window_ms: int | None,
            problems: list[Problem]) -> int | None:
    line = getattr(raw, "line", None)
    if spec.within is None:
        problems.append((f"{spec.agg} needs 'within': how long after A a B counts (e.g. within: 24h)",
                         *value_pos(raw, "agg", line)))
        return None
    try:
        ms = duration_ms(spec.within)
    except ValueError as exc:
        problems.append((f"within: {exc}", *value_pos(raw, "within", line)))
        return None
    bound = _within_bound(spec, ms, window_ms)
    if bound is not None:
        problems.append((f"within: {bound}", *value_pos(raw, "within", line)))
        return None
    return ms


def _within_bound(spec: FeatureSpec, ms: int, window_ms: int | None) -> str | None:
    if ms < MIN_WITHIN_MS:
        return f"{spec.within} is shorter than the minimum, {fmt_ms(MIN_WITHIN_MS)}"
    if ms > MAX_DURATION_MS:
        return f"{spec.within} is longer than the maximum, {fmt_ms(MAX_DURATION_MS)}"
    if spec.agg == "absence" and window_ms is not None and window_ms <= ms:
        return (f"{spec.within} is not shorter than the window {spec.window}: an absence is true from "
                "A + within until A + window, so the window must be longer")
    return None

