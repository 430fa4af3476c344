"""The due-time index: customers ordered by the next instant a tag may change with time alone.

A timer pops the customers that are due; cost is proportional to the due customers, never a
scan of all of them. Entries are never updated in place: a newer due time for a customer just
pushes a new entry and the stale one is skipped when popped (``_latest`` says which is live).
"""

from __future__ import annotations

import heapq


class DueIndex:
    __slots__ = ("_heap", "_latest")

    def __init__(self) -> None:
        self._heap: list[tuple[int, bytes]] = []
        self._latest: dict[bytes, int] = {}

    def schedule(self, key: bytes, due_ms: int | None) -> None:
        """Sets (or clears, with None) the due time of ``key``."""
        if due_ms is None:
            self._latest.pop(key, None)
            return
        if self._latest.get(key) == due_ms:
            return
        self._latest[key] = due_ms
        heapq.heappush(self._heap, (due_ms, key))
        if len(self._heap) > 4 * len(self._latest) + 1024:
            self._compact()

    def pop_due(self, now_ms: int, limit: int = 10_000) -> list[tuple[bytes, int]]:
        """Removes and returns up to ``limit`` ``(key, due_ms)`` pairs with ``due_ms <= now_ms``."""
        out: list[tuple[bytes, int]] = []
        heap, latest = self._heap, self._latest
        while heap and heap[0][0] <= now_ms and len(out) < limit:
            due_ms, key = heapq.heappop(heap)
            if latest.get(key) == due_ms:
                del latest[key]
                out.append((key, due_ms))
        return out

    def clear(self) -> None:
        self._heap.clear()
        self._latest.clear()

    def __len__(self) -> int:
        return len(self._latest)

    def _compact(self) -> None:
        self._heap = [(d, k) for k, d in self._latest.items()]
        heapq.heapify(self._heap)
