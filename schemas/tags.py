"""Output shapes: the tag-change topic value, the Redis tag hash value, the dead-letter headers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

DLQ_HEADER_PREFIX = "ts."


class TagChange(BaseModel):
    """Value of a record on the tag-change topic (JSON): a customer gained or lost a tag.

    The topic is at-least-once; ``change_id`` is deterministic for the same cause, so consumers
    drop duplicates by it.
    """

    # Readers ignore unknown keys so the producer can add fields without breaking consumers.
    model_config = ConfigDict(extra="ignore", frozen=True)

    customer_id: Annotated[str, Field(min_length=1)]
    tag: Annotated[str, Field(min_length=1)]
    op: Literal["add", "remove"]
    at_ms: int
    """When the change happened (processing time for expiry, event time for events), epoch ms."""
    event_ts_ms: int | None
    """Business time of the triggering event; None when the clock or a rule change caused it."""
    cause: Literal["event", "expiry", "rule_change"]
    rule_version: str
    features: dict[str, float | int | str | None]
    """The feature values the tag's rule read, at the time of the change."""
    event_id: str | None
    change_id: Annotated[str, Field(min_length=1)]


class TagValue(BaseModel):
    """Value of one field (= tag name) of a customer's Redis tag hash (JSON)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    since_ms: int
    rule_version: str


class DeadLetter(BaseModel):
    """Headers of a record on the dead-letter topic.

    The dead-letter record keeps the original value bytes unchanged and the original key; these
    headers (names prefixed ``ts.``, values UTF-8) say where it came from and why it was rejected.
    """

    model_config = ConfigDict(frozen=True)

    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp_ms: int | None = None
    reason: str
    """Short machine category, e.g. an EventDecodeError reason."""
    error: str
    """Human readable message."""

    def to_headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers, in documented order; ``ts.source_timestamp_ms`` is left out when unknown."""
        out = []
        for name in _DLQ_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out.append((DLQ_HEADER_PREFIX + name, str(value).encode()))
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


_DLQ_FIELDS = ("source_topic", "source_partition", "source_offset", "source_timestamp_ms", "reason", "error")
DLQ_HEADERS: tuple[str, ...] = tuple(DLQ_HEADER_PREFIX + f for f in _DLQ_FIELDS)
"""The dead-letter header names."""
