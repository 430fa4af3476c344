"""The changelog encoding of CustomerState (compact JSON via orjson), registered with faust.

The customer stage serializes each state once per batch, to fail a customer whose state cannot be
saved before anything is published; ``encoded_as`` hands those bytes to the codec for the table
write that follows, so faust's changelog record does not serialize the state a second time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.serializers import codecs

from streams.engine.features.state import CustomerState

STATE_CODEC = "tagstate"

_encoded: tuple[object, bytes] | None = None
"""(state, its bytes) during ``encoded_as``: one table write on the event loop's thread."""


@contextmanager
def encoded_as(state: object, raw: bytes | None) -> Iterator[None]:
    """Within the block the codec encodes ``state`` (this very object) as ``raw`` (None: as usual)."""
    global _encoded
    _encoded = None if raw is None else (state, raw)
    try:
        yield
    finally:
        _encoded = None


class StateCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        if _encoded is not None and _encoded[0] is obj:
            return _encoded[1]
        state: CustomerState = obj
        return state.dumps()

    def _loads(self, s: bytes) -> Any:
        return CustomerState.loads(s)


codecs.register(STATE_CODEC, StateCodec())
