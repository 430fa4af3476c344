"""What one event did to a customer (``Outcome``): the tag engine's answer to ``process_event``,
``fold_only`` and ``process_backfill`` (streams/engine/tag_engine.py)."""

from __future__ import annotations

from streams.engine.tag_change import Change


class Outcome:
    """What one event did: its tag changes and how it was taken. A plain class with its own
    ``__init__``, compiled: a dataclass's generated ``__init__`` is interpreted Python, ~2,000
    instructions at every event."""

    def __init__(self, changes: list[Change] | None = None, late: bool = False, duplicate: bool = False,
                 backfilled: int = 0) -> None:
        self.changes: list[Change] = [] if changes is None else changes
        self.late = late
        """The event was outside at least one window it feeds (it still fed longer ones)."""
        self.duplicate = duplicate
        """The event id was already seen within the de-duplication horizon; it changed nothing."""
        self.backfilled = backfilled
        """A replayed event (``process_backfill``): the features it was applied to."""

    def __repr__(self) -> str:
        return (f"Outcome(changes={self.changes!r}, late={self.late}, duplicate={self.duplicate}, "
                f"backfilled={self.backfilled})")
