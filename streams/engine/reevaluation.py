"""Re-evaluation after a rule change, in bounded slices.

A deploy (or a restart onto new rules) must re-evaluate every customer a worker holds: a million
of them. Sending them all to the customer stage at once (one tick each) puts a million ticks in
the customer topic ahead of live events, which then wait minutes. Instead the customers wait
here and the due timer releases them a slice at a time: at most ``in_flight_max`` ticks are sent
and not yet processed, so a live event waits behind one slice at most, and the re-evaluation
goes as fast as the stage drains the slices between event batches.

Pure bookkeeping (no I/O): the timer calls ``take``, the customer stage ``done``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class Reevaluation:
    __slots__ = ("_in_flight", "_last_progress_ms", "_queue", "in_flight_max", "stall_ms")

    def __init__(self, in_flight_max: int, stall_ms: int = 30_000) -> None:
        self.in_flight_max = in_flight_max
        self.stall_ms = stall_ms
        """With ticks in flight and none done for this long (their partition moved away, a
        record was dead-lettered), they are written off and the next slice goes out."""
        self._queue: deque[bytes] = deque()
        self._in_flight = 0
        self._last_progress_ms = 0

    def start(self, keys: Iterable[bytes]) -> int:
        """Re-evaluate ``keys`` (replacing what was still waiting: a newer rule set needs them
        all anyway); returns how many."""
        self._queue = deque(keys)
        return len(self._queue)

    def take(self, now_ms: int) -> list[bytes]:
        """The next slice to send: as many waiting customers as the in-flight bound allows."""
        if self._in_flight and now_ms - self._last_progress_ms >= self.stall_ms:
            self._in_flight = 0
        if not self._in_flight:
            self._last_progress_ms = now_ms
        n = min(self.in_flight_max - self._in_flight, len(self._queue))
        if n <= 0:
            return []
        q = self._queue
        out = [q.popleft() for _ in range(n)]
        self._in_flight += n
        return out

    def done(self, n: int, now_ms: int) -> None:
        """``n`` ticks of a slice reached the customer stage."""
        if n:
            self._in_flight = max(0, self._in_flight - n)
            self._last_progress_ms = now_ms

    def clear(self) -> None:
        self._queue.clear()
        self._in_flight = 0

    @property
    def pending(self) -> int:
        """Customers not re-evaluated yet (waiting or in flight)."""
        return len(self._queue) + self._in_flight
