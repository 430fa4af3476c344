"""The changelog encoding of CustomerState (compact JSON via orjson), registered with faust."""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from streams.engine.features.state import CustomerState

STATE_CODEC = "tagstate"


class StateCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        state: CustomerState = obj
        return state.dumps()

    def _loads(self, s: bytes) -> Any:
        return CustomerState.loads(s)


codecs.register(STATE_CODEC, StateCodec())
