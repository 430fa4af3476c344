"""Durations in rule files ("90s", "24h", "30d"): parsing with a length guard, and printing."""

from __future__ import annotations

from schemas.rules import parse_duration_ms

MAX_DURATION_MS = 3650 * 86_400_000
"""Longest duration a rule may give (3650d, 10 years): keeps every bucket and due time in 64 bits."""
MAX_DURATION_CHARS = 24
"""Longest duration text: more digits can only be an overflow."""


def duration_ms(text: str) -> int:
    """parse_duration_ms, but a digit string too long for any sane duration is refused before int()."""
    if isinstance(text, str) and len(text.strip()) > MAX_DURATION_CHARS:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ValueError(f"invalid duration {shown!r}: too long (the longest is {fmt_ms(MAX_DURATION_MS)})")
    return parse_duration_ms(text)


def fmt_ms(ms: int) -> str:
    """Milliseconds in the largest unit that divides them: 86400000 -> "1d", 1500 -> "1500ms"."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
