"""Identifier rules shared by rule names and expressions.

Python's parser NFKC-normalizes identifiers, so in an expression ``spend`` written with a
fullwidth ``s`` (U+FF53) silently reads ``spend``. Rule names and the names written in expressions are therefore plain
ASCII, and a feature may not be called like a literal (``null``, ``true``...) or a Python keyword:
an expression could not read it, or would read the literal instead.
"""

from __future__ import annotations

import difflib
import keyword
import unicodedata
from collections.abc import Collection

LITERAL_NAMES = frozenset({"null", "true", "false", "none"})
"""Literal words of the expression language (any case): never a feature name."""
MAX_NAMES_LISTED = 20
"""An unknown-name message lists at most this many known names."""


def describe_non_ascii(text: str) -> str:
    """Why ``text`` (a name as written) is refused: it is not ASCII, perhaps a look-alike."""
    bad = next((c for c in text if not c.isascii()), "")
    what = f"'{bad}' (U+{ord(bad):04X})" if bad else "a non-ASCII character"
    folded = unicodedata.normalize("NFKC", text)
    if folded != text and folded.isascii():
        return (f"'{text}' contains the look-alike character {what}: Python would read it as "
                f"'{folded}'; names must be plain ASCII")
    return f"'{text}' contains the non-ASCII character {what}; names must be plain ASCII"


def name_problem(name: str, kind: str) -> str | None:
    """What is wrong with ``name`` as the name of a ``kind`` ("feature" or "tag"), or None."""
    if not name.isascii():
        return describe_non_ascii(name)
    if unicodedata.normalize("NFKC", name) != name:  # pragma: no cover - ASCII is NFKC-stable
        return f"'{name}' is not in normalized form (NFKC)"
    if kind == "feature" and name.lower() in LITERAL_NAMES:
        return f"'{name}' is a literal in expressions (null, true, false, none); choose another name"
    if kind == "feature" and keyword.iskeyword(name):
        return f"'{name}' is a Python keyword, so expressions could not read it; choose another name"
    return None


def unknown_message(head: str, ident: str, known: Collection[str], what: str, label: str = "known") -> str:
    """``head``, a "did you mean" for ``ident`` and the ``known`` names (``what`` reads them)."""
    close = difflib.get_close_matches(ident, sorted(known), n=1, cutoff=0.6)
    msg = head + (f"; did you mean '{close[0]}'?" if close else "")
    listed = sorted(known)
    if not listed:
        return msg + f" (this {what} cannot read any names)"
    more = f", ... ({len(listed) - MAX_NAMES_LISTED} more)" if len(listed) > MAX_NAMES_LISTED else ""
    return msg + f"{' ' if close else '; '}{label}: {', '.join(listed[:MAX_NAMES_LISTED])}{more}"
