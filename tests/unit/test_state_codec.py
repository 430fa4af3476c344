"""The changelog codec of CustomerState (streams/app/codec.py): the bytes the customer stage made
when it checked a state are the ones written, for that very state and that write only."""

from __future__ import annotations

from faust.serializers import codecs

from streams.app.codec import STATE_CODEC, encoded_as
from streams.engine.features.state import CustomerState


def test_the_stage_s_encoding_is_used_for_that_state_within_the_write_only() -> None:
    codec = codecs.get_codec(STATE_CODEC)
    state, other = CustomerState(due_ms=5), CustomerState(due_ms=7)
    made = state.dumps()
    with encoded_as(state, made):
        assert codec.dumps(state) is made
        assert codec.dumps(other) == other.dumps()  # another object is encoded as usual
    state.due_ms = 6  # a later batch changed it: no stale bytes outside the block
    assert codec.dumps(state) == state.dumps() != made
    with encoded_as(state, None):
        assert codec.dumps(state) == state.dumps()
    assert CustomerState.loads(codec.dumps(state)).due_ms == 6
