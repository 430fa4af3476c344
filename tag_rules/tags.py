"""Tags: their compiled form (``TagDef``) and how a tag spec compiles, with flap control.

A tag is written either with ``when`` (held while it is true) or with hysteresis, ``enter`` and
``exit`` (added when ``enter`` holds while absent, removed when ``exit`` holds while present);
``min_duration`` and ``cooldown`` damp flapping. The engine applies them
(streams/engine/flap.py); the semantics are in docs/rules.md, *Flap control*.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.rules import TagSpec

from .durations import MAX_DURATION_MS, duration_ms, fmt_ms
from .expr import CompiledExpr, ExprError, compile_expr
from .positions import expr_pos, value_pos

MIN_FLAP_MS = 1000
"""Shortest ``min_duration`` / ``cooldown`` (1s): below it, flap control is noise."""

Problem = tuple[str, int | None, int | None]
"""A message and its line and column in the rule file."""


@dataclass(frozen=True)
class TagDef:
    """A compiled tag. Without ``exit`` it holds while ``when`` is true; with ``exit`` (hysteresis)
    ``when`` is the ``enter`` condition and ``exit`` the one that removes it."""

    name: str
    when: CompiledExpr
    """The condition that adds the tag (``when:`` or ``enter:``)."""
    features: tuple[str, ...]
    """Feature names the rule reads (both conditions), in a stable order."""
    description: str | None = None
    file: str = ""
    exit: CompiledExpr | None = None
    """Hysteresis: the condition that removes the tag; None: it leaves when ``when`` is false."""
    min_duration_ms: int = 0
    """Once added, the tag stays at least this long (0: no minimum)."""
    cooldown_ms: int = 0
    """Once removed, the tag cannot come back before this long (0: no cooldown)."""

    @property
    def flap_controlled(self) -> bool:
        return bool(self.min_duration_ms or self.cooldown_ms)

    def conditions(self) -> list[tuple[str, CompiledExpr]]:
        """The tag's conditions by their rule-file key: ``[("when", …)]`` or ``[("enter", …), ("exit", …)]``."""
        if self.exit is None:
            return [("when", self.when)]
        return [("enter", self.when), ("exit", self.exit)]


class TagProblems(Exception):
    """Everything wrong with one tag spec."""

    def __init__(self, items: list[Problem]) -> None:
        self.items = items


def compile_tag(fname: str, spec: TagSpec, raw: Mapping[str, Any], declared: Collection[str],
                since_names: Collection[str]) -> TagDef:
    """Compiles one tag spec; raises TagProblems listing every problem with its position."""
    problems: list[Problem] = []
    line = getattr(raw, "line", None)
    exprs: dict[str, CompiledExpr] = {}
    for key in _condition_keys(spec, raw, problems, line):
        text = getattr(spec, key)
        try:
            exprs[key] = compile_expr(text, names=declared, kind=key, threshold_names=since_names,
                                      filename=f"{fname}:{spec.name}")
        except ExprError as exc:
            ln, col = expr_pos(raw, key, exc)
            problems.append((f"{key}: {exc.message}", ln or line, col))
    min_duration_ms = _flap_duration(spec, raw, "min_duration", problems)
    cooldown_ms = _flap_duration(spec, raw, "cooldown", problems)
    if problems:
        raise TagProblems(problems)
    when = exprs.get("when") or exprs["enter"]
    exit_ = exprs.get("exit")
    names = when.names | (exit_.names if exit_ is not None else frozenset())
    return TagDef(spec.name, when, tuple(sorted(names)), spec.description, fname, exit_,
                  min_duration_ms, cooldown_ms)


def _condition_keys(spec: TagSpec, raw: Mapping[str, Any], problems: list[Problem],
                    line: int | None) -> list[str]:
    """Which conditions the tag gives: ``["when"]`` or ``["enter", "exit"]``; reports bad mixes."""
    has = {k for k in ("when", "enter", "exit") if getattr(spec, k) is not None}
    if has == {"when"} or has == {"enter", "exit"}:
        return sorted(has, key=("when", "enter", "exit").index)
    if not has:
        problems.append(("a tag needs 'when' (or 'enter' and 'exit' for hysteresis)", line, None))
    elif "when" in has:
        key = "enter" if "enter" in has else "exit"
        problems.append((f"{key}: give either 'when' or 'enter'/'exit', not both ('when' is the same as "
                         "enter: <when>, exit: not <when>)", *value_pos(raw, key, line)))
    else:
        key, other = ("enter", "exit") if "enter" in has else ("exit", "enter")
        problems.append((f"{key}: '{key}' needs '{other}' too (hysteresis has two conditions; "
                         "for one, write 'when')", *value_pos(raw, key, line)))
    return []


def _flap_duration(spec: TagSpec, raw: Mapping[str, Any], key: str, problems: list[Problem]) -> int:
    text = getattr(spec, key)
    if text is None:
        return 0
    try:
        ms = duration_ms(text)
    except ValueError as exc:
        problems.append((f"{key}: {exc}", *value_pos(raw, key, getattr(raw, "line", None))))
        return 0
    if ms < MIN_FLAP_MS or ms > MAX_DURATION_MS:
        bound = (f"shorter than the minimum, {fmt_ms(MIN_FLAP_MS)} (leave '{key}' out for none)"
                 if ms < MIN_FLAP_MS else f"longer than the maximum, {fmt_ms(MAX_DURATION_MS)}")
        problems.append((f"{key}: {text} is {bound}", *value_pos(raw, key, getattr(raw, "line", None))))
        return 0
    return ms
