"""Compiling a rule set for a command: the errors as ``rules check`` prints them, or the rules;
and the rule set in force (the deployed one, else the local one) for commands that evaluate or
name tags (``rules diff``, ``explain``, ``tags --audience``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tag_rules import RuleSetError, load_rules
from tag_rules.compiler import CompiledRuleSet

if TYPE_CHECKING:
    from streams.settings import Settings


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


def rules_in_force(settings: Settings, *, quiet: bool = False) -> CompiledRuleSet:
    """The deployed rule set (``rules deploy``) if the rules topic has one, else the local one
    (``TAGSTREAM_RULES_PATH``); the local one too when Kafka does not answer within a few seconds
    (said on stderr unless ``quiet``: a Redis-only command such as ``tags`` need not reach Kafka)."""
    from streams.app.rules_watch import deployed_rules  # Kafka and the worker's wiring: only when asked

    local = settings.load_rules()
    try:
        return deployed_rules(settings, local, timeout_s=5.0)[0]
    except Exception as exc:  # Kafka unreachable: go on with the local rules
        if not quiet:
            print(f"tagstream: could not read the deployed rules ({type(exc).__name__}); using "
                  f"{settings.rules_path or 'the shipped rules'}", file=sys.stderr)
        return local
