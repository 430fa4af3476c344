"""The match rate of an identity stream: how much of the traffic a known customer explains, before
and after identity resolution (docs/identity.md, *Synthetic identity traffic and the match rate*).

Pure: :func:`measure` takes decoded records — source events and ``events.identity`` records —
in stream order, builds :class:`~streams.engine.identity.graph.IdentityGraph` from their links
(events carrying two ids or more, ``schemas.event_ids``; identity records, ``IdentityRecord.keys``)
and compares:

* **before**: the share of source events attributed to a known customer — one of the event's own
  ids is a loyalty card or an online account (``member`` / ``user``, not junk) — and the share of
  POS tickets with a card whose card is linked to an online account (none: a ticket carries no
  account);
* **after**: the same with each id replaced by its cluster in the final graph (every link known,
  so earlier anonymous events count too); the number of clusters, their sizes and the refused links
  by reason; with the generator's ground truth, how many people are one cluster and how many
  clusters mix people.

``python -m streams.tools.match_rate --events N --seed S`` prints it for the identity mode of the
synthetic generator.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from schemas.decode import EventDecodeError, decode_event, decode_identity
from schemas.events import SOURCES, ClickstreamEvent, OrderEvent, PosEvent
from schemas.identity import IDENTITY_SOURCE, IdentityRecord, event_ids
from schemas.ids import is_junk, parse_id_key
from streams.engine.identity.graph import GraphLimits, IdentityGraph
from streams.tools.records import GeneratedEvent

__all__ = ["MatchReport", "Record", "Share", "TruthCheck", "decode_stream", "main", "measure", "measure_events",
           "render"]

Record = ClickstreamEvent | PosEvent | OrderEvent | IdentityRecord
KNOWN_TYPES = frozenset(("member", "user"))
"""Id types that name a customer (a loyalty card, an online account)."""
SIZE_BUCKETS: tuple[tuple[int, int], ...] = ((2, 2), (3, 3), (4, 5), (6, 10), (11, 20), (21, 10**9))
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: the CLI's stream is reproducible


@dataclass
class Share:
    """``hits`` of ``total``."""

    hits: int = 0
    total: int = 0

    def add(self, hit: bool) -> None:
        self.hits += hit
        self.total += 1

    @property
    def rate(self) -> float:
        return self.hits / self.total if self.total else 0.0


@dataclass(frozen=True)
class TruthCheck:
    """The final graph against the ground truth (person -> id keys)."""

    people: int
    """People with two ids or more in the stream."""
    one_cluster: int
    """Of them, people whose ids in the stream all resolve to one canonical id."""
    mixed_clusters: int
    """Clusters holding ids of two people or more (false merges)."""


@dataclass
class MatchReport:
    """What :func:`measure` found; the shares are keyed ``all`` and by source."""

    before: dict[str, Share] = field(default_factory=lambda: {k: Share() for k in ("all", *SOURCES)})
    after: dict[str, Share] = field(default_factory=lambda: {k: Share() for k in ("all", *SOURCES)})
    pos_online_before: Share = field(default_factory=Share)
    pos_online_after: Share = field(default_factory=Share)
    pos_online_possible: Share = field(default_factory=Share)
    """After resolution, of the tickets whose card holder also has an online account (ground truth
    needed): the share a resolution can reach at most is 100 %."""
    identity_records: int = 0
    undecodable: int = 0
    links: int = 0
    """Links offered to the graph (events with two ids or more, identity records)."""
    clusters: int = 0
    cluster_sizes: Counter[int] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    truth: TruthCheck | None = None


def decode_stream(events: Iterable[GeneratedEvent]) -> tuple[list[tuple[str, Record]], int]:
    """(source, decoded record) of every event the schemas accept, in order, and how many they reject."""
    out: list[tuple[str, Record]] = []
    rejected = 0
    for ev in events:
        try:
            record = decode_identity(ev.value) if ev.source == IDENTITY_SOURCE else decode_event(ev.source, ev.value)
        except EventDecodeError:
            rejected += 1
            continue
        out.append((ev.source, record))
    return out, rejected


def measure(records: Iterable[tuple[str, Record]], *, limits: GraphLimits | None = None,
            truth: Mapping[str, Iterable[str]] | None = None) -> MatchReport:
    """The match rate of ``records`` (stream order: first come, first kept when a cap refuses)."""
    report = MatchReport()
    graph = IdentityGraph(limits)
    events: list[tuple[str, list[str]]] = []
    for source, record in records:
        keys = _ids_of(record)
        if len(keys) >= 2:
            report.links += 1
            report.refused.update(r.reason for r in graph.link(keys, record.ts_ms).refused)
        if isinstance(record, IdentityRecord):
            report.identity_records += 1
        else:
            events.append((source, [k for k in keys if not is_junk(parse_id_key(k)[1])]))
    known, online = _cluster_facts(graph, report)
    account_cards = _account_cards(truth or {})
    for source, keys in events:
        _attribute(report, graph, known, source, keys)
        if source == "pos":
            _pos_online(report, graph, online, keys, account_cards)
    if truth is not None:
        report.truth = _check_truth(graph, truth, {k for _, keys in events for k in keys})
    return report


def measure_events(events: Iterable[GeneratedEvent], *, limits: GraphLimits | None = None,
                   truth: Mapping[str, Iterable[str]] | None = None) -> MatchReport:
    """:func:`measure` of generated events (their ``source`` and ``value`` bytes), decoded by the
    schemas; what they reject is counted (``undecodable``) and left out."""
    records, rejected = decode_stream(events)
    report = measure(records, limits=limits, truth=truth)
    report.undecodable = rejected
    return report


def _ids_of(record: Record) -> list[str]:
    return record.keys if isinstance(record, IdentityRecord) else event_ids(record)


def _type(key: str) -> str:
    return parse_id_key(key)[0]


def _cluster_facts(graph: IdentityGraph, report: MatchReport) -> tuple[dict[str, bool], dict[str, bool]]:
    """Per canonical id: does its cluster hold a customer id, an online account? Counts the clusters."""
    known: dict[str, bool] = {}
    online: dict[str, bool] = {}
    for cluster in graph.clusters():
        types = {_type(k) for k in cluster.members}
        known[cluster.canonical] = not types.isdisjoint(KNOWN_TYPES)
        online[cluster.canonical] = "user" in types
        report.clusters += 1
        report.cluster_sizes[len(cluster.members)] += 1
    return known, online


def _attribute(report: MatchReport, graph: IdentityGraph, known: Mapping[str, bool], source: str,
               keys: list[str]) -> None:
    before = any(_type(k) in KNOWN_TYPES for k in keys)
    after = before or any(known.get(graph.resolve(k), False) for k in keys)
    for name in ("all", source):
        report.before[name].add(before)
        report.after[name].add(after)


def _pos_online(report: MatchReport, graph: IdentityGraph, online: Mapping[str, bool], keys: list[str],
                account_cards: set[str]) -> None:
    members = [k for k in keys if _type(k) == "member"]
    if not members:  # a walk-in
        return
    linked = any(online.get(graph.resolve(k), False) for k in members)
    report.pos_online_before.add(False)  # a ticket never carries an online account
    report.pos_online_after.add(linked)
    if not account_cards.isdisjoint(members):
        report.pos_online_possible.add(linked)


def _account_cards(truth: Mapping[str, Iterable[str]]) -> set[str]:
    """Cards whose holder also has an online account."""
    cards: set[str] = set()
    for keys in truth.values():
        types = {k: _type(k) for k in keys}
        if "user" in types.values():
            cards.update(k for k, t in types.items() if t == "member")
    return cards


def _check_truth(graph: IdentityGraph, truth: Mapping[str, Iterable[str]], seen: set[str]) -> TruthCheck:
    owner: dict[str, str] = {}
    people = one_cluster = 0
    for person, keys in truth.items():
        present = [k for k in keys if k in seen]
        owner.update(dict.fromkeys(present, person))
        if len(present) >= 2:
            people += 1
            one_cluster += len({graph.resolve(k) for k in present}) == 1
    mixed = sum(len({owner[k] for k in c.members if k in owner}) >= 2 for c in graph.clusters())
    return TruthCheck(people, one_cluster, mixed)


def render(report: MatchReport, title: str = "") -> str:
    """A short readable table of ``report``."""
    n = report.before["all"].total
    lines = [title or "match rate",
             f"{n:,} source events, {report.identity_records:,} identity records, "
             f"{report.undecodable:,} undecodable (left out)", "",
             f"{'':42}{'before':>9}{'after':>9}"]

    def row(label: str, before: Share, after: Share) -> None:
        lines.append(f"{label:42}{before.rate:>8.1%}{after.rate:>9.1%}")

    row("events attributed to a customer", report.before["all"], report.after["all"])
    for source in SOURCES:
        row(f"  {source}", report.before[source], report.after[source])
    row("POS tickets with a card linked online", report.pos_online_before, report.pos_online_after)
    if report.pos_online_possible.total:
        row("  of cards whose holder has an account", Share(0, report.pos_online_possible.total),
            report.pos_online_possible)
    lines += ["", f"links {report.links:,}, clusters {report.clusters:,}; sizes "
              + ", ".join(f"{_bucket(lo, hi)}: {n:,}" for (lo, hi), n in _sizes(report).items() if n)]
    refused = ", ".join(f"{reason} {n:,}" for reason, n in sorted(report.refused.items())) or "none"
    lines.append(f"refused: {refused}")
    if report.truth is not None:
        t = report.truth
        lines.append(f"ground truth: {t.one_cluster:,} of {t.people:,} people with 2+ ids "
                     f"({t.one_cluster / t.people if t.people else 0:.1%}) are one cluster; "
                     f"{t.mixed_clusters:,} clusters mix people")
    return "\n".join(lines)


def _sizes(report: MatchReport) -> dict[tuple[int, int], int]:
    return {(lo, hi): sum(n for size, n in report.cluster_sizes.items() if lo <= size <= hi)
            for lo, hi in SIZE_BUCKETS}


def _bucket(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}+" if hi >= 10**9 else f"{lo}-{hi}"


def main(argv: list[str] | None = None) -> int:
    """``python -m streams.tools.match_rate``: the match rate of the generator's identity mode."""
    from streams.tools.generator import RetailGenerator

    p = argparse.ArgumentParser(description="Match rate of synthetic identity traffic, before and after resolution.")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--customers", type=int, default=10_000)
    args = p.parse_args(argv)
    if args.events < 1 or args.customers < 1:
        p.error("--events and --customers must be >= 1")
    gen = RetailGenerator(seed=args.seed, customers=args.customers, start_ms=START_MS, identity=True)
    report = measure_events(gen.take(args.events), truth=gen.ground_truth())
    print(render(report, f"match rate: {args.events:,} generated events, seed {args.seed}, "
                         f"{args.customers:,} customers"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
