"""Repeated links, kept off the links topic.

Every click of a logged-in visitor carries both its ``user_id`` and its device's ``anonymous_id``: a
link, and nearly always the same one again (in the reference stream, 9,905 links name 2,167 sets of
ids). All links go through the one partition of the links topic and the one worker that decides
merges (streams/app/identity_stage.py), where a repeat changes nothing. Ingest therefore remembers,
per set of ids, the links it already put on the topic, and does not send a link again when

* a link naming exactly the same ids (in any order) was **acknowledged by the broker** — never
  merely sent: a batch that fails is read again, and its links must then go out —
* with an event time no later than this one's (the graph keeps, per id, the earliest time a link
  named it: an earlier repeat can still change a canonical id, and is sent),
* within ``window_ms`` of wall-clock time (each set is sent again at least that often).

What the graph decides is the same with and without this: a link accepted once leaves nothing for
its repeats to change (clusters only grow; a forgotten id refuses every link naming it), and a link
refused once is refused again (a cap is only ever further exceeded). What differs is the record of
the repeats: they are counted ``repeat`` at ingest instead of ``unchanged`` or ``refused`` by the
identity stage, and a refused one is dead-lettered once per window instead of once per click.

At most ``max_entries`` sets are remembered (the oldest sent go first); each worker remembers its
own, and a restarted one starts empty: at worst, a repeat is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class LinkRepeats:
    """The sets of ids this worker's links went out with, for ``window_ms`` (see the module docstring)."""

    def __init__(self, window_ms: int, max_entries: int, clock: Callable[[], int]) -> None:
        if window_ms <= 0 or max_entries <= 0:
            raise ValueError(f"a repeat window ({window_ms} ms) and a size ({max_entries}) above 0 are needed")
        self.window_ms = window_ms
        self.max_entries = max_entries
        self._clock = clock
        self._acked: dict[tuple[str, ...], tuple[int, int]] = {}
        """ids -> (earliest event time sent, when sent: wall-clock ms), oldest sent first."""
        self._pending: dict[tuple[str, ...], int] = {}
        """ids -> earliest event time, for the links of the batch not yet acknowledged."""

    def __len__(self) -> int:
        return len(self._acked)

    def repeat(self, ids: Sequence[str], ts_ms: int) -> bool:
        """True: a link with these ids and ``ts_ms`` changes nothing a link already on the topic (or
        already in this batch) did not; False: it is to be sent, and is remembered as pending."""
        key = tuple(sorted(ids))
        pending = self._pending.get(key)
        if pending is not None and pending <= ts_ms:
            return True
        acked = self._acked.get(key)
        if pending is None and acked is not None and acked[0] <= ts_ms \
                and self._clock() - acked[1] < self.window_ms:
            return True
        self._pending[key] = ts_ms if pending is None else min(pending, ts_ms)
        return False

    def acknowledged(self) -> None:
        """The pending links are on the broker: remembered from now on."""
        now = self._clock()
        acked = self._acked
        for key, ts_ms in self._pending.items():
            acked.pop(key, None)  # to the end: the order is the order sent
            acked[key] = (ts_ms, now)
        self._pending.clear()
        horizon = now - self.window_ms
        while acked:
            oldest = next(iter(acked))
            if len(acked) <= self.max_entries and acked[oldest][1] > horizon:
                break
            del acked[oldest]

    def discard(self) -> None:
        """The pending links were not acknowledged (the batch failed): they will be sent again."""
        self._pending.clear()
