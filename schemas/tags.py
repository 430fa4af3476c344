"""Output shapes: the tag-change topic value, the Redis tag hash value, the dead-letter headers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal, NotRequired, TypedDict

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

DLQ_HEADER_PREFIX = "ts."

TagOp = Literal["add", "remove"]
ChangeCause = Literal["event", "expiry", "rule_change", "merge", "erasure"]
"""Why a tag changed: an event, time alone, a new rule set, an identity merge, or the erasure of the
person (``tagstream forget``, docs/identity.md)."""


class TagChange(BaseModel):
    """Value of a record on the tag-change topic (JSON): a customer gained or lost a tag.

    The topic is at-least-once; ``change_id`` is deterministic for the same cause, so consumers
    drop duplicates by it.
    """

    # Readers ignore unknown keys so the producer can add fields without breaking consumers.
    model_config = ConfigDict(extra="ignore", frozen=True)

    customer_id: Annotated[str, Field(min_length=1)]
    tag: Annotated[str, Field(min_length=1)]
    op: TagOp
    at_ms: int
    """When the change happened (processing time for expiry, event time for events), epoch ms."""
    event_ts_ms: int | None
    """Business time of the triggering event; None when the clock or a rule change caused it."""
    cause: ChangeCause
    rule_version: str
    features: dict[str, float | int | str | None]
    """The feature values the tag's rule read, at the time of the change."""
    event_id: str | None
    change_id: Annotated[str, Field(min_length=1)]
    via: str | None = None
    """Identity resolution only (docs/identity.md): the id the change came in under when it is not
    ``customer_id`` — the id an event named before it was forwarded to its canonical customer, or the
    id a ``merge`` change absorbed. Absent otherwise."""


class TagChangeDict(TypedDict):
    """The engine's tag change before it is encoded: exactly the fields of :class:`TagChange`
    (tests/unit/test_schemas_models.py holds the two together), a plain dict on the hot path."""

    customer_id: str
    tag: str
    op: TagOp
    at_ms: int
    event_ts_ms: int | None
    cause: ChangeCause
    rule_version: str
    features: dict[str, float | int | str | None]
    event_id: str | None
    change_id: str
    via: NotRequired[str]


class TagValue(BaseModel):
    """Value of one field (= tag name) of a customer's Redis tag hash (JSON)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    since_ms: int
    rule_version: str


DLQ_MAX_ERROR_CHARS = 1000
"""``ts.error`` is cut to this many characters (a plain cut, as the worker always did)."""


def _cut_error(value: object) -> object:
    return value[:DLQ_MAX_ERROR_CHARS] if isinstance(value, str) else value


class DeadLetter(BaseModel):
    """Headers of a record on the dead-letter topic: the one definition of their names and order.

    The dead-letter record keeps the original value bytes unchanged and the original key; these
    headers (names prefixed ``ts.``, values UTF-8) say where it came from and why it was rejected.
    When the copy had to be cut (see docs/contracts.md), the optional fields say so. The worker
    builds them with ``DeadLetter(source_topic=..., ..., error=...).to_headers()``.
    """

    model_config = ConfigDict(frozen=True)

    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp_ms: int | None = None
    """Kafka timestamp of the source record; the header is left out when None."""
    reason: str
    """Short machine category, e.g. an EventDecodeError reason, ``future_timestamp``, ``internal_error``."""
    error: Annotated[str, BeforeValidator(_cut_error)]
    """Human readable message, cut to DLQ_MAX_ERROR_CHARS characters."""
    key_truncated_from_bytes: Annotated[int, Field(ge=0)] | None = None
    """Size of the source key when the dead-letter copy of the key was cut."""
    truncated_from_bytes: Annotated[int, Field(ge=0)] | None = None
    """Size of the source value when the dead-letter copy of the value was cut."""
    value_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """SHA-256 (hex) of the whole source value, given with ``truncated_from_bytes``."""

    def to_headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers in DLQ_HEADERS order; headers whose field is None are left out.

        Values are ``str(value)`` as UTF-8 (a lone surrogate becomes ``?``, as in the worker).
        """
        out = []
        for name in _DLQ_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out.append((DLQ_HEADER_PREFIX + name, str(value).encode("utf-8", "replace")))
        return out

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | str | None]]) -> DeadLetter:
        """Parses the ``ts.*`` headers of a dead-letter record; other headers are ignored.

        Raises pydantic.ValidationError (a ValueError) when a required header is missing or malformed.
        """
        values: dict[str, str] = {}
        for key, raw in headers:
            if not key.startswith(DLQ_HEADER_PREFIX):
                continue
            name = key[len(DLQ_HEADER_PREFIX):]
            if name in _DLQ_FIELDS and name not in values and raw is not None:
                values[name] = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return cls.model_validate(values)


_DLQ_FIELDS = ("source_topic", "source_partition", "source_offset", "source_timestamp_ms", "reason", "error",
               "key_truncated_from_bytes", "truncated_from_bytes", "value_sha256")
DLQ_HEADERS: tuple[str, ...] = tuple(DLQ_HEADER_PREFIX + f for f in _DLQ_FIELDS)
"""Every dead-letter header name, in the order ``to_headers`` writes them. Always present:
source_topic/partition/offset, reason, error; ``ts.source_timestamp_ms`` when known; the last
three only when the dead-letter copy of the key or value was cut."""
