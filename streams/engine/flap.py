"""Flap control at run time: hysteresis, ``min_duration`` and ``cooldown`` (docs/rules.md).

Pure functions over a customer's held tags (tag -> added_at_ms) and recently removed tags
(tag -> removed_at_ms, kept only for tags with a cooldown and only until it has passed). A change
held back by a bound happens at the bound's instant (the *gate*), which is part of the engine's
next due time, so the timer re-evaluates the customer exactly then: no polling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schemas.tags import TagOp
from tag_rules import TagDef


def step(tag: TagDef, values: Mapping[str, Any], held: dict[str, int], removed: dict[str, int],
         at_ms: int) -> TagOp | None:
    """Applies ``tag``'s rule at ``at_ms``: updates ``held``/``removed`` and returns the change.

    Present: removed when ``exit`` holds (no ``exit``: when ``when`` is false), not before
    added_at + min_duration. Absent: added when ``when`` (``enter``) holds, not before
    removed_at + cooldown. Otherwise it stays as it is.
    """
    name = tag.name
    added_at = held.get(name)
    if added_at is not None:
        leave = truthy(tag.exit(values)) if tag.exit is not None else not truthy(tag.when(values))
        if not leave or at_ms < added_at + tag.min_duration_ms:
            return None
        del held[name]
        if tag.cooldown_ms:
            removed[name] = at_ms
        return "remove"
    if not truthy(tag.when(values)):
        return None
    removed_at = removed.get(name)
    if removed_at is not None:
        if at_ms < removed_at + tag.cooldown_ms:
            return None
        del removed[name]
    held[name] = at_ms
    return "add"


def next_gate_ms(tags: Iterable[TagDef], held: Mapping[str, int], removed: Mapping[str, int],
                 now_ms: int) -> int | None:
    """The earliest instant after ``now_ms`` at which a min_duration or cooldown ends."""
    best: int | None = None
    for tag in tags:
        added_at = held.get(tag.name)
        if added_at is not None:
            gate = added_at + tag.min_duration_ms if tag.min_duration_ms else None
        else:
            removed_at = removed.get(tag.name)
            gate = removed_at + tag.cooldown_ms if removed_at is not None and tag.cooldown_ms else None
        if gate is not None and gate > now_ms and (best is None or gate < best):
            best = gate
    return best


class Gates:
    """``next_gate_ms`` of a fixed set of tags, looking only where a gate can be: the held tags
    with a ``min_duration`` and the recently removed ones (a tag with a cooldown). The engine asks
    after every event; with 1,000 tags (45 flap-controlled) walking them all was ~4 % of it."""

    def __init__(self, tags: Iterable[TagDef]) -> None:
        tags = list(tags)
        self.min_durations = [(t.name, t.min_duration_ms) for t in tags if t.min_duration_ms]
        self._min_duration = dict(self.min_durations)
        self.cooldowns = {t.name: t.cooldown_ms for t in tags if t.cooldown_ms}

    def __bool__(self) -> bool:
        return bool(self.min_durations or self.cooldowns)

    def next_ms(self, held: Mapping[str, int], removed: Mapping[str, int], now_ms: int) -> int | None:
        """Equals ``next_gate_ms(tags, held, removed, now_ms)``."""
        best: int | None = None
        if len(held) < len(self.min_durations):  # a customer holds a few of 1,000 tags
            min_duration = self._min_duration
            pairs = [(added_at, min_duration[name]) for name, added_at in held.items() if name in min_duration]
        else:
            pairs = [(held[name], ms) for name, ms in self.min_durations if name in held]
        for added_at, min_duration_ms in pairs:
            gate = added_at + min_duration_ms
            if gate > now_ms and (best is None or gate < best):
                best = gate
        for name, removed_at in removed.items():
            cooldown_ms = self.cooldowns.get(name)
            if cooldown_ms and name not in held:
                gate = removed_at + cooldown_ms
                if gate > now_ms and (best is None or gate < best):
                    best = gate
        return best


def forget_passed(removed: dict[str, int], cooldown_ms: Mapping[str, int], at_ms: int) -> None:
    """Drops removal instants whose cooldown has passed at ``at_ms`` (or whose tag has none now),
    so the state stays bounded: at most one entry per tag with a cooldown."""
    for name in [n for n, t in removed.items() if at_ms >= t + cooldown_ms.get(n, 0)]:
        del removed[name]


def truthy(value: object) -> bool:
    """A rule's outcome as a bool; a value that cannot be one counts as false."""
    try:
        return bool(value)
    except Exception:
        return False
