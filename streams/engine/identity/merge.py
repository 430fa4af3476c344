"""Merging two customers' state when the identity graph joins them (docs/identity.md, *State merge*).

Pure: the caller passes both states, the engine and the instant. Feature data merges bucket by
bucket with each feature's own ``merge`` (counts and sums add, min/max, distinct sets union under
their cap, first/last by event time, recency by the latest, sequence/absence by their event times),
the de-duplication memories join, and the engine re-evaluates every tag of the survivor with
``cause: "merge"``; the absorbed id loses all its tags (``cause: "merge"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import Change, TagEngine


@dataclass
class MergeOutcome:
    """What a merge published and what it could not undo."""

    survivor_changes: list[Change] = field(default_factory=list)
    """The survivor's tag changes: due ones that fell before the merge (``expiry``, at their own
    instants), then the merge's (``merge``)."""
    absorbed_changes: list[Change] = field(default_factory=list)
    """The absorbed id's: due ones before the merge, then the removal of every tag it held."""
    overlap: int = 0
    """Event ids both customers had already counted (within the de-duplication memory): counted twice
    in the merged features. Routing by canonical id keeps it at 0; a metric should watch it."""


def merge_customers(engine: TagEngine, survivor: CustomerState, survivor_id: str, absorbed: CustomerState,
                    absorbed_id: str, now_ms: int, merge_id: str) -> MergeOutcome:
    """Folds ``absorbed`` into ``survivor`` (in place) at ``now_ms``; ``absorbed`` is left empty.

    ``merge_id`` identifies the merge in the changes' ``change_id``: a replayed merge publishes the
    same ids. Both states are first brought to ``now_ms`` (their due changes happen first, at their
    own instants) and to the engine's rule set.
    """
    out = MergeOutcome()
    out.survivor_changes += engine.catch_up(survivor, survivor_id, now_ms)
    out.absorbed_changes += engine.catch_up(absorbed, absorbed_id, now_ms)
    if absorbed.is_empty() and not absorbed.seen_log:
        return out  # nothing to bring: the survivor is unchanged (and a fresh one stays unevaluated)
    feats, theirs = survivor.features, absorbed.features
    for rt in engine.runtimes:
        data = rt.merge(feats.get(rt.key), theirs.get(rt.key), now_ms)
        if data is None:
            feats.pop(rt.key, None)
        else:
            feats[rt.key] = data
    for key in [k for k in feats if k not in engine.keys]:  # left by an older rule set
        del feats[key]
    out.overlap = survivor.absorb_seen(absorbed, engine.dedup_max_ids)
    _merge_removed(survivor, absorbed)
    survivor.next_change = None
    survivor.value_cache = None
    out.survivor_changes += engine.reevaluate(survivor, survivor_id, now_ms, "merge", merge_id)
    out.absorbed_changes += engine.release(absorbed, absorbed_id, now_ms, "merge", merge_id)
    absorbed.features.clear()
    absorbed.absorb_seen(CustomerState(), max_ids=0)  # empties its de-duplication memory
    return out


def _merge_removed(survivor: CustomerState, absorbed: CustomerState) -> None:
    """Cooldowns: the later removal of a tag the survivor does not hold (a held tag has none)."""
    for name, removed_at in absorbed.removed.items():
        if name not in survivor.tags and removed_at > survivor.removed.get(name, removed_at - 1):
            survivor.removed[name] = removed_at
