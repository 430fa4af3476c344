"""Errors raised while loading and compiling rule files. They name the file, rule and position."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleError:
    """One problem in a rule file."""

    file: str
    message: str
    rule: str | None = None
    """``feature 'spend_30d'`` or ``tag 'high_value'``; None for file-level problems."""
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return _printable(f"{where}: {self.rule + ': ' if self.rule else ''}{self.message}")


def _printable(text: str) -> str:
    """Escapes control characters and lone surrogates (from YAML escapes such as "\\ud800"): a message
    must print on any terminal and encode as UTF-8."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else ascii(c)[1:-1] for c in text)


class RuleSetError(Exception):
    """A rule set could not be compiled; ``errors`` lists every problem found, not just the first."""

    retriable = False

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))
