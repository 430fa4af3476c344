"""What a ``tagstream backfill`` run may do, decided before it sends anything (streams/tools/backfill.py).

The features asked for must be ones a deployment added recently enough (``resolve_targets``), every
live worker must run the deployed rule set (``check_workers``), the start (``--from``, ``--offsets``)
must parse, and the topics must still retain the records from that start (``check_retention``).
Each refusal is a ``BackfillRefused`` naming every problem (exit code 2, nothing sent).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tag_rules import CompiledRuleSet
from tag_rules.durations import duration_ms, fmt_ms

ALIVE_MS = 60_000
"""Workers that reported within this long must run the deployed rule set."""


class BackfillRefused(ValueError):
    """The backfill cannot be exact as asked: nothing was sent (exit code 2)."""


# -- what to backfill ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """The features to seed: their names, state keys, and when their deployment added them."""

    names: tuple[str, ...]
    keys: tuple[str, ...]
    births: Mapping[str, int]
    version: str


def resolve_targets(rules: CompiledRuleSet, births: Mapping[str, int], names: Sequence[str], *, now_ms: int,
                    window_ms: int) -> Target:
    """The features ``names`` of the deployed ``rules``; raises BackfillRefused naming every
    feature that cannot be backfilled and why."""
    read = {n for tag in rules.tags.values() for n in tag.features}
    newer = sorted(n for n in read if rules.features[n].key in births
                   and now_ms < births[rules.features[n].key] + window_ms)
    problems = []
    for name in names:
        fdef = rules.features.get(name)
        if fdef is None:
            problems.append(f"{name}: no such feature in the deployed rule set {rules.version}")
        elif name not in read:
            problems.append(f"{name}: no tag of {rules.version} reads it, so workers keep no state for it")
        elif fdef.key not in births:
            problems.append(f"{name}: not added by a deployment (it is in the rule set the workers started with, "
                            "and has counted every event since)")
        elif now_ms >= births[fdef.key] + window_ms:
            problems.append(f"{name}: added at {fmt_time(births[fdef.key])}, more than {fmt_ms(window_ms)} "
                            "(TAGSTREAM_ENGINE__BACKFILL_WINDOW_MS) ago: the workers no longer keep what it counted "
                            "live, so a backfill could count events twice")
    if problems:
        hint = f"features that can be backfilled now: {', '.join(newer)}" if newer else \
            "no feature of the deployed rule set can be backfilled now"
        raise BackfillRefused("\n".join([*problems, hint]))
    keys = tuple(dict.fromkeys(rules.features[n].key for n in names))
    return Target(tuple(names), keys, {k: births[k] for k in keys}, rules.version)


def check_workers(status: Mapping[str, Mapping[str, Any]], version: str, now_ms: int) -> None:
    """Every worker that reported lately runs ``version`` (a worker on older rules would ignore the
    replayed events of features it does not have yet)."""
    behind = sorted(f"{w} runs {s.get('version')}" for w, s in status.items()
                    if now_ms - int(s.get("seen_ms", 0)) < ALIVE_MS and s.get("version") != version)
    if behind:
        raise BackfillRefused(f"not every worker runs {version} yet ({'; '.join(behind)}): wait for "
                              "`tagstream rules deploy --wait` / `tagstream rules status`")


# -- where to start -----------------------------------------------------------------------------

def parse_from(text: str, now_ms: int) -> int | None:
    """``--from``: ``earliest`` (None), a duration before now (``3d``, ``36h``) or an RFC 3339
    time; epoch milliseconds of the source records' Kafka timestamps."""
    if text == "earliest":
        return None
    try:
        return now_ms - duration_ms(text)
    except ValueError:
        pass
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BackfillRefused(f"--from {text!r}: not 'earliest', a duration (3d, 36h) or an RFC 3339 time") from None
    if stamp.tzinfo is None:
        raise BackfillRefused(f"--from {text!r}: give the time zone (2026-11-02T00:00:00Z)")
    return int(stamp.timestamp() * 1000)


def parse_offsets(specs: Iterable[str]) -> dict[tuple[str, int], int]:
    """``--from-offset SOURCE:PARTITION=OFFSET`` (repeatable) -> {(source, partition): offset}."""
    out: dict[tuple[str, int], int] = {}
    for spec in specs:
        try:
            where, offset = spec.split("=")
            source, partition = where.split(":")
            out[(source, int(partition))] = int(offset)
        except ValueError:
            raise BackfillRefused(f"--from-offset {spec!r}: expected SOURCE:PARTITION=OFFSET, "
                                  "e.g. pos:0=1200") from None
    return out


@dataclass
class Range:
    """One source partition's replay: offsets ``start`` … ``end - 1``."""

    source: str
    topic: str
    partition: int
    start: int
    end: int
    beginning: int
    """The oldest offset the topic retains."""
    oldest_ts_ms: int | None
    """The Kafka timestamp of that record (None: the partition is empty)."""
    read: int = 0

    @property
    def total(self) -> int:
        return max(0, self.end - self.start)

    @property
    def name(self) -> str:
        return f"{self.topic}[{self.partition}]"


def check_retention(ranges: Sequence[Range], from_ms: int | None, offsets: Mapping[tuple[str, int], int]) -> None:
    """Refuses a start before the oldest retained record: those records are gone."""
    lost = []
    for r in ranges:
        asked = offsets.get((r.source, r.partition))
        if asked is not None and asked < r.beginning:
            lost.append(f"{r.name}: offsets {asked} … {r.beginning - 1} were deleted by retention "
                        f"(the oldest retained is {r.beginning})")
        elif asked is None and from_ms is not None and r.beginning > 0 and r.oldest_ts_ms is not None \
                and r.oldest_ts_ms > from_ms:
            lost.append(f"{r.name}: the oldest retained record (offset {r.beginning}) is from "
                        f"{fmt_time(r.oldest_ts_ms)}; offsets 0 … {r.beginning - 1} were deleted by retention, so "
                        f"its events from {fmt_time(from_ms)} until then are lost to a backfill")
    if lost:
        raise BackfillRefused("\n".join([*lost, "start later (--from), or replay what is retained: --from earliest"]))


def fmt_time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
