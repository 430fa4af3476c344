"""The counting filter in front of a state's remembered event ids (streams/engine/features/seen_filter.py):
``seen_before`` answers exactly as a plain search of the log would, whatever the ids, their order,
the horizon and the cap, and whatever changed the log behind its back."""

from __future__ import annotations

import hashlib
import random

import pytest

from streams.engine.features import seen_filter
from streams.engine.features.state import SEEN_ENTRY, CustomerState


def reference(events: list[tuple[str, int]], horizon_ms: int, max_ids: int) -> tuple[list[bool], bytes]:
    """seen_before's documented rule on a plain list: drop the entries over the cap or past the
    horizon, then the id is a repeat if an entry holds it, else it is appended."""
    entries: list[tuple[bytes, int]] = []
    answers = []
    for event_id, now_ms in events:
        start_s = (now_ms - horizon_ms) // 1000
        while entries and (len(entries) > max_ids - 1 or entries[0][1] <= start_s):
            entries.pop(0)
        fp = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
        if any(e[0] == fp for e in entries):
            answers.append(True)
            continue
        entries.append((fp, now_ms // 1000))
        answers.append(False)
    return answers, b"".join(fp + s.to_bytes(4, "big") for fp, s in entries)


@pytest.mark.parametrize("seed", range(6))
def test_seen_before_answers_as_the_plain_search(seed: int) -> None:
    rng = random.Random(seed)
    max_ids = rng.choice([70, 150, 400, 1000])
    horizon_ms = rng.choice([30_000, 600_000, 86_400_000])
    pool = [f"e-{seed}-{i}" for i in range(rng.choice([300, 2_000, 20_000]))]
    now_ms, events = 1_700_000_000_000, []
    for _ in range(4_000):
        now_ms += rng.choice([0, 10, 500, 5_000])
        events.append((rng.choice(pool), now_ms))
    want, log = reference(events, horizon_ms, max_ids)
    st = CustomerState()
    got = [st.seen_before(event_id, at, horizon_ms, max_ids) for event_id, at in events]
    assert got == want and bytes(st.seen_log) == log
    assert any(want) and not all(want)
    assert st.seen_filter is not None or len(st.seen_log) < seen_filter.FROM * SEEN_ENTRY
    if st.seen_filter is not None:  # kept up to date id by id: the filter a rebuild would make
        assert st.seen_filter == seen_filter.build(st.seen_log, len(st.seen_filter) // 8)


def test_a_log_changed_behind_its_back_is_not_trusted_to_the_filter() -> None:
    st = CustomerState()
    for i in range(200):
        assert not st.seen_before(f"a-{i}", 1_000_000, 86_400_000, 1000)
    assert st.seen_filter is not None
    # appended directly (as an older version or a test might): the filter does not count it
    st.seen_log += hashlib.blake2b(b"sneaked", digest_size=8).digest() + (1_000).to_bytes(4, "big")
    assert st.seen_before("sneaked", 1_000_000, 86_400_000, 1000)
    # replaced by a merge: the new log's ids are found, the old filter is gone
    other = CustomerState()
    for i in range(100):
        other.seen_before(f"b-{i}", 1_000_000, 86_400_000, 1000)
    st.absorb_seen(other, 1000)
    assert st.seen_before("b-7", 1_000_000, 86_400_000, 1000) and st.seen_before("a-7", 1_000_000, 86_400_000, 1000)
    # decoded from the changelog: no filter, the same answers
    again = CustomerState.loads(st.dumps())
    assert again.seen_filter is None
    assert again.seen_before("b-8", 1_000_000, 86_400_000, 1000) and not again.seen_before("c-1", 1_000_000,
                                                                                            86_400_000, 1000)


def test_the_filter_spares_most_searches_and_saturates_safely() -> None:
    rng = random.Random(11)
    counters = bytearray(seen_filter.size_for(1000))
    held = [rng.randbytes(8) for _ in range(1000)]
    for fp in held:
        seen_filter.add(counters, fp)
    assert all(seen_filter.may_hold(counters, fp) for fp in held)
    new = [rng.randbytes(8) for _ in range(10_000)]
    assert sum(seen_filter.may_hold(counters, fp) for fp in new) < 1_000  # ~3 %: most new ids skip the search
    same = bytes(8)  # one fingerprint added 300 times: its counters saturate and never go back to zero
    for _ in range(300):
        seen_filter.add(counters, same)
    for _ in range(300):
        seen_filter.remove(counters, same)
    assert seen_filter.may_hold(counters, same)
    for fp in held:
        seen_filter.remove(counters, fp)
    assert sum(counters) == 255  # every other counter back to zero: one counter (same's three) saturated
