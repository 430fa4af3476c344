"""Typed shape of a rule file (YAML, see docs/rules.md). Unknown keys are errors, so typos
(``windw: 7d``) are reported instead of silently ignored.

Only the shape is checked here; tag_rules.compiler checks meaning (durations, field names,
expressions) and reports each problem with its position in the file.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .events import SOURCES, Source

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
NAME_MAX_LENGTH = 64

Agg = Literal["count", "sum", "min", "max", "avg", "distinct_count", "first", "last", "since_last",
              "sequence", "absence"]
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=NAME_MAX_LENGTH)]

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)", re.ASCII)


def parse_duration_ms(text: str) -> int:
    """``"<int><unit>"`` -> milliseconds; units ms, s, m, h, d, w (e.g. "90s", "1h", "30d").

    Raises ValueError for anything else (fractions, spaces inside, missing unit, "lifetime").
    """
    if not isinstance(text, str):
        raise ValueError(f"a duration is a string like '30d', not {type(text).__name__} {text!r}")
    m = _DURATION.fullmatch(text.strip())
    if m is None:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ValueError(f"invalid duration {shown!r}: expected a whole number and a unit "
                         "(ms, s, m, h, d, w), e.g. 90s, 10m, 24h, 30d")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def _one_or_many(value: Any) -> Any:
    # ``sources: pos`` reads naturally in YAML; treat it as ``sources: [pos]``.
    return [value] if isinstance(value, str) else value


class EventMatchSpec(BaseModel):
    """One side of a sequence or absence feature: which events are ``A`` (``first``) or ``B``
    (``then``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: Annotated[list[Source], BeforeValidator(_one_or_many), Field(min_length=1)] = Field(
        default_factory=lambda: list(SOURCES))
    where: str | None = None
    """Filter expression over canonical event fields."""


class FeatureSpec(BaseModel):
    """A rolling aggregation over canonical events of one customer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    agg: Agg
    field: str | None = None
    """Canonical event field to aggregate (not used by count and since_last)."""
    window: str | None = None
    """A duration ("10m", "24h", "30d") or "lifetime"; None means lifetime."""
    resolution: str | None = None
    """Bucket size of a windowed feature (a duration); None: a default derived from the window."""
    sources: Annotated[list[Source], BeforeValidator(_one_or_many), Field(min_length=1)] = Field(
        default_factory=lambda: list(SOURCES))
    where: str | None = None
    """Filter expression over canonical event fields."""
    first: EventMatchSpec | None = None
    """sequence / absence: the events that start it (``A``)."""
    then: EventMatchSpec | None = None
    """sequence / absence: the events that complete (sequence) or cancel (absence) it (``B``)."""
    within: str | None = None
    """sequence / absence: how long after ``A`` a ``B`` counts (a duration)."""
    description: str | None = None


class TagSpec(BaseModel):
    """A tag: held by a customer while ``when`` (an expression over features) is true, or, with
    hysteresis, added when ``enter`` holds and removed when ``exit`` holds. ``min_duration`` and
    ``cooldown`` damp flapping (docs/rules.md, *Flap control*). Which combinations are allowed is
    checked by tag_rules.compiler, with positions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    when: Annotated[str, Field(min_length=1)] | None = None
    enter: Annotated[str, Field(min_length=1)] | None = None
    """Hysteresis: the condition that adds the tag while it is absent (with ``exit``, instead of ``when``)."""
    exit: Annotated[str, Field(min_length=1)] | None = None
    """Hysteresis: the condition that removes the tag while it is present."""
    min_duration: str | None = None
    """A duration: once added, the tag stays at least this long."""
    cooldown: str | None = None
    """A duration: once removed, the tag cannot come back before this long."""
    description: str | None = None


class RuleFile(BaseModel):
    """One rule file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str | None = None
    description: str | None = None
    features: list[FeatureSpec] = Field(default_factory=list)
    tags: list[TagSpec] = Field(default_factory=list)
