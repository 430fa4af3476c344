"""Kafka record bytes -> validated source event (or identity record), or an EventDecodeError with a
short reason.

``decode_event`` and ``decode_identity`` never raise anything but EventDecodeError, whatever the
bytes: the stream worker sends the record to the dead-letter topic with ``reason``/``message`` as
headers and moves on.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .events import MODEL_BY_SOURCE, SOURCES, TIMESTAMP_ERROR, ClickstreamEvent, OrderEvent, PosEvent
from .identity import IdentityRecord

EVENT_REASONS = (
    "invalid_json", "not_an_object", "missing_field", "invalid_field", "bad_timestamp", "unknown_source",
    "bad_contact_hash",
)
"""Reasons of ``decode_event`` (``bad_contact_hash``: an ``email_sha256``/``phone_sha256`` that is not
64 hex characters)."""
IDENTITY_REASONS = ("unknown_id_type", "junk_id", "too_few_ids", "too_many_ids", "duplicate_id")
"""Reasons only ``decode_identity`` gives, besides those of EVENT_REASONS (docs/contracts.md)."""
REASONS = EVENT_REASONS + IDENTITY_REASONS
"""Every ``EventDecodeError.reason``."""
_OWN_REASONS = frozenset(("bad_contact_hash", "junk_id", "duplicate_id"))
"""Error types our validators raise under the reason of the same name."""
_M = TypeVar("_M", bound=BaseModel)

MAX_MESSAGE_CHARS = 500
_MAX_ERRORS_LISTED = 5
_MAX_INPUT_REPR = 60


class EventDecodeError(Exception):
    """An event that cannot be decoded.

    ``reason`` is a short machine category (one of REASONS, fit for a metric label and the
    ``ts.reason`` DLQ header); ``message`` is human readable, names the field path(s) and is
    at most MAX_MESSAGE_CHARS long (it never echoes a large input).
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = _truncate(message, MAX_MESSAGE_CHARS)
        super().__init__(f"{reason}: {self.message}")


def decode_event(source: str, raw: bytes) -> ClickstreamEvent | PosEvent | OrderEvent:
    """Parses and validates one record value of ``source`` ("clickstream", "pos" or "orders").

    Raises EventDecodeError (and nothing else) for any input it does not accept.
    """
    model = MODEL_BY_SOURCE.get(source) if isinstance(source, str) else None
    if model is None:
        raise EventDecodeError("unknown_source",
                               f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    return _validate(model, raw)


def decode_identity(raw: bytes) -> IdentityRecord:
    """Parses and validates one record value of ``events.identity``.

    Raises EventDecodeError (and nothing else) for any input it does not accept.
    """
    return _validate(IdentityRecord, raw)


def _validate(model: type[_M], raw: bytes) -> _M:
    if isinstance(raw, bytearray | memoryview):
        raw = bytes(raw)
    elif not isinstance(raw, bytes | str):
        raise EventDecodeError("invalid_json", f"expected bytes, got {type(raw).__name__}")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _from_validation_error(exc) from None
    except (RecursionError, ValueError, TypeError, OverflowError, MemoryError) as exc:
        # pydantic-core guards recursion and number sizes itself; this is belt and braces so a
        # pathological record can never take a worker down.
        raise EventDecodeError("invalid_json", f"undecodable input ({type(exc).__name__})") from None


def _from_validation_error(exc: ValidationError) -> EventDecodeError:
    try:
        errors = exc.errors(include_url=False, include_context=False)
    except Exception:  # rendering an error must not become a new failure mode
        return EventDecodeError("invalid_field", "invalid event")
    if not errors:
        return EventDecodeError("invalid_field", "invalid event")
    reason = _reason(errors[0])
    parts = [_describe(e) for e in errors[:_MAX_ERRORS_LISTED]]
    if len(errors) > _MAX_ERRORS_LISTED:
        parts.append(f"... and {len(errors) - _MAX_ERRORS_LISTED} more")
    return EventDecodeError(reason, "; ".join(parts))


def _reason(err: Any) -> str:
    etype, loc = err["type"], err["loc"]
    if etype == "json_invalid":
        return "invalid_json"
    if not loc and etype in ("model_type", "model_attributes_type", "dict_type"):
        return "not_an_object"
    if etype in ("missing", "missing_identity", "union_tag_not_found"):
        return "missing_field"
    if etype in _OWN_REASONS:
        return str(etype)
    if etype == "union_tag_invalid":
        return "unknown_id_type"
    if tuple(loc) == ("ids",) and etype in ("too_short", "too_long"):
        return "too_few_ids" if etype == "too_short" else "too_many_ids"
    if etype == TIMESTAMP_ERROR or (loc and loc[0] == "ts"):
        return "bad_timestamp"
    return "invalid_field"


def _describe(err: Any) -> str:
    etype, loc, msg = err["type"], err["loc"], _truncate(str(err["msg"]), 200)
    if etype == "json_invalid":
        return msg
    if etype == "missing_identity":
        return f"fields 'user_id'/'anonymous_id': {msg}"
    if not loc:
        return msg
    text = f"field '{'.'.join(str(p) for p in loc)}': {msg}"
    value = err.get("input")
    if etype == "string_too_long" and isinstance(value, str):
        text += f" (got {len(value)})"  # the size is the news; the content is noise
    elif etype == "too_long":
        pass  # pydantic's message already gives the length ("... at most 1000 items ..., not 5000")
    elif etype != "missing":
        text += f" (got {_short_repr(value)})"
    return text


def _short_repr(value: Any) -> str:
    # Never repr a container (it may be huge or deep); a type name is enough to fix the producer.
    if isinstance(value, dict | list | tuple):
        return f"{type(value).__name__} of {len(value)}"
    if isinstance(value, str):
        return repr(_truncate(value, _MAX_INPUT_REPR))
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return "a very large integer"
    return _truncate(repr(value), _MAX_INPUT_REPR)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
