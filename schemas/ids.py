"""Typed identifiers: the kinds of id a customer can be known by, what makes a value junk, and the
shape of a hashed contact id.

A customer may be known by several ids of different *types* (docs/identity.md):

==============  ===========================================================================
``member``      a loyalty / POS card (``pos.member_id``)
``user``        an online account (``clickstream.user_id``, ``orders.user_id``)
``email_sha256`` SHA-256 of a normalised e-mail address, 64 hex characters
``phone_sha256`` SHA-256 of a normalised phone number, 64 hex characters
``anonymous``   a device or cookie id (``clickstream.anonymous_id``)
==============  ===========================================================================

tagstream never accepts a raw e-mail address or phone number: a contact id that is not 64 hex
characters is rejected (reason ``bad_contact_hash``). Hashes are compared in lower case.

JUNK_PATTERN is both what the decoder checks (``re.fullmatch``) and the ``not``-pattern of the JSON
Schema, so the two cannot differ (the same approach as ``schemas.events.TS_PATTERN``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

IdType = Literal["member", "user", "email_sha256", "phone_sha256", "anonymous"]
ID_TYPES: tuple[IdType, ...] = get_args(IdType)
"""Every id type, in canonical-id priority order (the first wins, docs/identity.md)."""
CONTACT_TYPES: tuple[IdType, ...] = ("email_sha256", "phone_sha256")
"""The hashed contact id types: their values are 64 hex characters."""

CONTACT_HASH_CHARS = 64
_HEX = frozenset("0123456789abcdefABCDEF")

JUNK_WORDS: tuple[str, ...] = ("0", "-", "null", "nil", "none", "undefined", "unknown", "n/a", "na", "nan",
                               "test", "anonymous", "guest", "default", "false", "true")
"""Placeholder values producers send when they have no id (compared after trimming ASCII
whitespace, ASCII case ignored). Values made of one repeated character ("", "000000", "xxxx",
"-----") are junk too."""
JUNK_HASHES: tuple[str, ...] = tuple(hashlib.sha256(w.encode()).hexdigest()
                                     for w in ("", "0", "null", "none", "undefined", "unknown", "test"))
"""SHA-256 of the empty string and of the commonest junk words: what a producer that hashes a missing
contact sends."""

_WS = r"[ \t\r\n]*"


def _any_case(text: str) -> str:
    """A regex matching ``text`` with ASCII letters in either case (no inline flags: JSON Schema
    patterns are ECMA-262, which has none)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isascii() and c.isalpha() else re.escape(c) for c in text)


JUNK_PATTERN = (rf"^{_WS}(?:(?:{'|'.join(_any_case(w) for w in (*JUNK_WORDS, *JUNK_HASHES))})"
                rf"|([\s\S])\1*)?{_WS}$")
"""An id value that identifies nobody (JUNK_WORDS, JUNK_HASHES, one repeated character, blank)."""
_JUNK = re.compile(JUNK_PATTERN)


JUNK_VALUES = frozenset(w.lower() for w in (*JUNK_WORDS, *JUNK_HASHES))
"""``JUNK_WORDS`` and ``JUNK_HASHES`` in lower case: ``is_junk``'s set (and the Rust core's, given it)."""


def is_junk(value: str) -> bool:
    """True when ``value`` identifies nobody: a placeholder word, the hash of one, one character
    repeated, or blank (docs/identity.md, *Protection*).

    The same answer as ``JUNK_PATTERN`` (``matches_junk_pattern``; a unit test compares the two),
    about four times faster: ingest asks it for every id of every event."""
    v = value.strip(" \t\r\n")  # JUNK_PATTERN's _WS
    if not v:
        return True
    if v.isascii() and v.lower() in JUNK_VALUES:  # ASCII only, as _any_case: "K" (Kelvin) is no "k"
        return True
    return v.count(v[0]) == len(v)


def matches_junk_pattern(value: str) -> bool:
    """``JUNK_PATTERN`` applied as the JSON Schema does: the definition ``is_junk`` implements."""
    return _JUNK.fullmatch(value) is not None


def contact_hash_problem(value: str, id_type: str) -> str | None:
    """Why ``value`` is not a hashed contact id (None when it is 64 hex characters)."""
    if len(value) == CONTACT_HASH_CHARS and _HEX.issuperset(value):
        return None
    what = "e-mail address" if id_type == "email_sha256" else "phone number"
    if "@" in value:
        hint = "it looks like a raw e-mail address, which is never accepted"
    elif value.lstrip("+").replace(" ", "").replace("-", "").isdigit():
        hint = "it looks like a raw phone number, which is never accepted"
    else:
        hint = f"got {len(value)} characters" if len(value) != CONTACT_HASH_CHARS else "got a non-hex character"
    return f"must be the SHA-256 of the normalised {what} as {CONTACT_HASH_CHARS} hex characters; {hint}"


def _contact_hash(id_type: str) -> Any:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise PydanticCustomError("string_type", "Input should be a valid string")
        problem = contact_hash_problem(value, id_type)
        if problem is not None:
            raise PydanticCustomError("bad_contact_hash", problem)
        return value  # kept as sent (so duplicates mean what JSON Schema's uniqueItems says); id_key lowers it

    return check


def contact_hash_type(id_type: IdType) -> Any:
    """The annotated type of a ``<id_type>`` value: 64 hex characters (either case, compared in lower
    case by ``id_key``)."""
    return Annotated[
        str,
        PlainValidator(_contact_hash(id_type)),
        WithJsonSchema({
            "type": "string",
            # min/maxLength as well as the pattern: a validator whose "$" matches before a final
            # newline still rejects 64 hex characters followed by "\n".
            "minLength": CONTACT_HASH_CHARS, "maxLength": CONTACT_HASH_CHARS,
            "pattern": f"^[0-9a-fA-F]{{{CONTACT_HASH_CHARS}}}$",
            "description": f"SHA-256 ({CONTACT_HASH_CHARS} hex characters, either case) of the normalised "
                           f"{'e-mail address' if id_type == 'email_sha256' else 'phone number'}; "
                           "raw values are rejected",
        }, mode="validation"),
    ]


EmailSha256 = contact_hash_type("email_sha256")
PhoneSha256 = contact_hash_type("phone_sha256")


def _not_junk(value: str) -> str:
    if is_junk(value):
        raise PydanticCustomError("junk_id", "a placeholder that identifies nobody (null, unknown, 0 …, the "
                                  "SHA-256 of one, a blank value or one character repeated)")
    return value


NOT_JUNK_SCHEMA: dict[str, Any] = {"not": {"pattern": JUNK_PATTERN}}
"""JSON Schema of a value that is not junk (JUNK_PATTERN, as the decoder checks it)."""
NotJunk = AfterValidator(_not_junk)
"""Rejects a junk value with error type ``junk_id`` (an ``Annotated`` metadata item)."""


def id_key(id_type: IdType, value: str) -> str:
    """The one string naming a typed id everywhere (graph, state keys, logs): ``"<type>:<value>"``,
    hashes in lower case. Type names hold no ``:``, so ``parse_id_key`` splits at the first one."""
    return f"{id_type}:{value.lower() if id_type in CONTACT_TYPES else value}"


def parse_id_key(key: str) -> tuple[IdType, str]:
    """``id_key``'s inverse; raises ValueError for a string that is not an id key."""
    id_type, sep, value = key.partition(":")
    if not sep or id_type not in ID_TYPES:
        raise ValueError(f"not an id key: {key[:80]!r}")
    return id_type, value
