"""Compiling a rule set for a command: the errors as ``rules check`` prints them, or the rules."""

from __future__ import annotations

import sys
from pathlib import Path

from tag_rules import RuleSetError, load_rules
from tag_rules.compiler import CompiledRuleSet


def load_or_report(path: str | Path, summary: str) -> CompiledRuleSet | None:
    """The compiled rule set at ``path``, or None after printing every error (``file:line:col``,
    stdout) and ``summary`` (stderr; ``{n}`` = the number of errors, ``{path}``)."""
    try:
        return load_rules(path)
    except RuleSetError as exc:
        for e in exc.errors:
            print(e)
        print(summary.format(n=len(exc.errors), path=path), file=sys.stderr)
        return None
