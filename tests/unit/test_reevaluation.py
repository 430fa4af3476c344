"""Re-evaluation after a rule change goes out in bounded slices (streams/engine/reevaluation.py)."""

from __future__ import annotations

from streams.engine.reevaluation import Reevaluation


def test_at_most_a_slice_is_in_flight() -> None:
    r = Reevaluation(3)
    assert r.start(b"abcdefg"[i:i + 1] for i in range(7)) == 7
    assert r.take(0) == [b"a", b"b", b"c"]
    assert r.take(1) == []  # nothing done yet
    r.done(2, 2)
    assert r.take(3) == [b"d", b"e"]
    assert r.pending == 5
    r.done(3, 4)
    assert r.take(5) == [b"f", b"g"] and r.take(6) == []
    r.done(2, 7)
    assert r.pending == 0


def test_a_new_rule_change_restarts_the_queue() -> None:
    r = Reevaluation(2)
    r.start([b"a", b"b", b"c"])
    r.take(0)
    r.start([b"x"])
    assert r.pending == 3  # x waits, a and b are still in flight
    r.done(2, 1)
    assert r.take(1) == [b"x"]


def test_ticks_that_never_come_back_are_written_off_after_the_stall_time() -> None:
    r = Reevaluation(2, stall_ms=1000)
    r.start([b"a", b"b", b"c"])
    assert r.take(0) == [b"a", b"b"]
    assert r.take(999) == []
    assert r.take(1000) == [b"c"]  # a and b went to a partition that moved away


def test_done_never_goes_below_zero_and_clear_forgets_everything() -> None:
    r = Reevaluation(2)
    r.done(5, 0)
    r.start([b"a"])
    assert r.take(0) == [b"a"]
    r.clear()
    assert r.pending == 0 and r.take(1) == []
