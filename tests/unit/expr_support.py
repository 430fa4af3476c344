"""Shared by the rule expression compiler tests (tests/unit/test_expr_*.py): the names expressions
may use, the time-since ones among them, and shorthands to compile and evaluate."""

from __future__ import annotations

from typing import Any

from tag_rules.expr import CompiledExpr, compile_expr

NAMES = ["a", "b", "c", "s", "items", "spend_30d", "orders_30d", "avg_basket", "top_categories",
         "since_last_purchase", "since_last_visit", "source", "type", "amount", "channel", "categories"]
SINCE = ["since_last_purchase", "since_last_visit"]


def comp(src: str, **kw: Any) -> CompiledExpr:
    kw.setdefault("names", NAMES)
    kw.setdefault("threshold_names", SINCE)
    return compile_expr(src, **kw)


def ev(src: str, **env: Any) -> Any:
    return comp(src)(env)
