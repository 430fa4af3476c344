"""A tag change on its way out of the customer stage (``Published``), and a batch's changes
counted for the stage's metrics (``tally``)."""

from __future__ import annotations

import operator
from collections import Counter as CountOf
from dataclasses import dataclass

from streams.engine.tag_change import Change


@dataclass(slots=True)  # one per tag change: no __dict__ to allocate and free
class Published:
    """A tag change with the source record's Kafka timestamp (None for clock-driven ones)."""

    change: Change
    src_ts_ms: int | None


_LABELS = operator.itemgetter("tag", "op", "cause")
"""A change's labels of ``tagstream_tag_changes_total``."""
_SRC_TS = operator.attrgetter("src_ts_ms")


def tally(published: list[Published]) -> tuple[CountOf[tuple[str, str, str]], CountOf[int], CountOf[int]]:
    """A batch's changes counted per (tag, op, cause), per source record timestamp (caused by an
    event) and per instant (clock-driven: ``at_ms``). Counted by ``Counter``'s own loop (C) over C
    iterators: a Python loop with three dictionary updates per change was ~1 µs per change with
    1,000 tags (py-spy)."""
    counts: CountOf[tuple[str, str, str]] = CountOf(map(_LABELS, [p.change for p in published]))
    from_events: CountOf[int] = CountOf(map(_SRC_TS, published))
    from_clock: CountOf[int] = CountOf()
    if None in from_events:
        del from_events[None]
        from_clock.update([p.change["at_ms"] for p in published if p.src_ts_ms is None])
    return counts, from_events, from_clock
