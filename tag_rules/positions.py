"""Where a value of a rule file sits (line, column), for ``file:line:col`` errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .expr import ExprError


def value_pos(raw: Any, key: str, default_line: int | None = None) -> tuple[int | None, int | None]:
    """Line and column of ``raw[key]``'s value (``default_line``, None when unknown)."""
    vp: dict[str, tuple[int, int]] = getattr(raw, "value_pos", {})
    line, col = vp.get(key, (default_line, None))
    return line, col


def expr_pos(raw: Mapping[str, Any], key: str, exc: ExprError) -> tuple[int | None, int | None]:
    """Position of an expression error in the file (single-line expressions are exact)."""
    line, col = value_pos(raw, key)
    if line is None or col is None:
        return None, None
    if exc.line is None:
        return line, col
    if exc.line == 1:
        return line, col + (exc.col or 1) - 1
    return line + exc.line - 1, exc.col
