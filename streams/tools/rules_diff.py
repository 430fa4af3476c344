"""Shadow evaluation for ``tagstream rules diff``: which customers a new rule set would tag
differently from the current one, computed from the customers' stored states, before a deploy.

Pure: no Kafka, Redis or clock. The caller feeds ``(customer id, encoded state)`` pairs (the
changelog reader in ``streams.io.changelog_reader`` does in the CLI) and reads a ``DiffReport``.

Each state is decoded twice (two independent copies: nothing is written back anywhere) and
evaluated by both rule sets at the same instant ``now_ms`` through ``TagEngine.process_due``,
the path a worker takes for a customer whose ``rule_version`` differs after a deploy: state of
features the rule set no longer reads is dropped, every tag is evaluated, tags that no longer
exist are removed. The current rule set's result at ``now_ms`` is the baseline, so a tag that
is about to leave with time alone is not counted as a change of the rules; customers whose
stored tags differ from that baseline are reported apart (``drift``).
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from streams.engine.backfill import state_keys
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from tag_rules import CompiledRuleSet

DEFAULT_SAMPLES = 5

BackfillReason = Literal["new", "redefined", "unread"]
"""Why a feature of the new rule set has no state yet: a new name; a changed definition (its
state key differs); or a name the current rules define but no current tag reads (a worker keeps
no state for it)."""


@dataclass
class Samples:
    """A count and the ``limit`` smallest customer ids counted (sorted: stable across runs, whatever
    order the changelog's partitions are read in)."""

    limit: int
    count: int = 0
    ids: list[str] = field(default_factory=list)

    def add(self, customer_id: str) -> None:
        self.count += 1
        if len(self.ids) < self.limit:
            bisect.insort(self.ids, customer_id)
        elif self.ids and customer_id < self.ids[-1]:
            bisect.insort(self.ids, customer_id)
            self.ids.pop()

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "samples": list(self.ids)}


@dataclass
class TagDiff:
    """One tag: who would gain it, lose it, or keep it when the new rule set replaces the current one."""

    tag: str
    in_old: bool
    in_new: bool
    rule_changed: bool
    """Its ``when`` text or the definition of a feature it reads differs (False when only in one set)."""
    needs_backfill: dict[str, BackfillReason]
    """Features it reads that start empty under the new rules; the counts are without backfill."""
    added: Samples
    removed: Samples
    unchanged: Samples

    @property
    def status(self) -> str:
        if not self.in_new:
            return "only in old"
        if not self.in_old:
            return "only in new"
        return "changed" if self.rule_changed else "same"

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "status": self.status, "in_old": self.in_old, "in_new": self.in_new,
                "rule_changed": self.rule_changed, "needs_backfill": dict(self.needs_backfill),
                "added": self.added.to_json(), "removed": self.removed.to_json(),
                "unchanged": self.unchanged.to_json()}


@dataclass
class DiffReport:
    old_version: str
    new_version: str
    now_ms: int
    customers: int
    """States evaluated (deleted and unreadable ones excluded)."""
    deleted: int
    unreadable: int
    rule_versions: dict[str, int]
    """How many states each rule version wrote: another version than the current rule set's means
    TAGSTREAM_RULES_PATH is not what the workers run, or they have not re-evaluated yet."""
    drift: Samples
    """Customers whose stored tags differ from the current rule set's result at ``now_ms``."""
    tags: list[TagDiff]
    backfill: dict[str, BackfillReason]

    def to_json(self) -> dict[str, Any]:
        return {"old_version": self.old_version, "new_version": self.new_version, "now_ms": self.now_ms,
                "customers": self.customers, "deleted": self.deleted, "unreadable": self.unreadable,
                "rule_versions": dict(self.rule_versions), "drift": self.drift.to_json(),
                "needs_backfill": dict(self.backfill), "tags": [t.to_json() for t in self.tags]}


def backfill_features(old: CompiledRuleSet, new: CompiledRuleSet) -> dict[str, BackfillReason]:
    """Features the new rule set's tags read whose state the current states do not hold, by name."""
    kept = state_keys(old)
    out: dict[str, BackfillReason] = {}
    for name in sorted({n for tag in new.tags.values() for n in tag.features}):
        if new.features[name].key in kept:
            continue
        if name not in old.features:
            out[name] = "new"
        elif old.features[name].key != new.features[name].key:
            out[name] = "redefined"
        else:
            out[name] = "unread"
    return out


def rule_changed(old: CompiledRuleSet, new: CompiledRuleSet, tag: str) -> bool:
    """True when ``tag`` is in both sets and its ``when`` text or a feature it reads differs."""
    if tag not in old.tags or tag not in new.tags:
        return False
    a, b = old.tags[tag], new.tags[tag]
    if " ".join(a.when.source.split()) != " ".join(b.when.source.split()):
        return True
    return [old.features[n].key for n in a.features] != [new.features[n].key for n in b.features]


def shadow_tags(engine: TagEngine, state: CustomerState, customer_id: str, now_ms: int) -> set[str]:
    """The tags ``engine``'s rules give ``state`` at ``now_ms`` (``state`` is changed: pass a copy)."""
    engine.process_due(state, customer_id, now_ms, now_ms)
    return set(state.tags)


class RulesDiff:
    """Accumulates, customer by customer, the per-tag comparison of two rule sets."""

    def __init__(self, old: CompiledRuleSet, new: CompiledRuleSet, *, now_ms: int,
                 samples: int = DEFAULT_SAMPLES) -> None:
        self.old, self.new, self.now_ms, self.samples = old, new, now_ms, samples
        self._old_engine = TagEngine(old)
        self._new_engine = TagEngine(new)
        self.backfill = backfill_features(old, new)
        self._tags: dict[str, TagDiff] = {}
        for name in [*old.tags, *(t for t in new.tags if t not in old.tags)]:
            self._tag(name)
        self.customers = self.deleted = self.unreadable = 0
        self.rule_versions: Counter[str] = Counter()
        self.drift = Samples(samples)

    def _tag(self, name: str) -> TagDiff:
        diff = self._tags.get(name)
        if diff is None:
            tag = self.new.tags.get(name)
            backfill = {n: self.backfill[n] for n in tag.features if n in self.backfill} if tag else {}
            diff = self._tags[name] = TagDiff(name, name in self.old.tags, tag is not None,
                                              rule_changed(self.old, self.new, name), backfill,
                                              Samples(self.samples), Samples(self.samples), Samples(self.samples))
        return diff

    def add_state(self, customer_id: str, raw: bytes | None) -> None:
        """One changelog value: an encoded ``CustomerState``, or None for a deleted customer."""
        if raw is None:
            self.deleted += 1
            return
        try:
            current, shadow = CustomerState.loads(raw), CustomerState.loads(raw)
        except (ValueError, TypeError, AttributeError):  # not JSON / not an object / bad base64
            self.unreadable += 1
            return
        self.rule_versions[current.rule_version] += 1
        held = set(current.tags)
        old = shadow_tags(self._old_engine, current, customer_id, self.now_ms)
        new = shadow_tags(self._new_engine, shadow, customer_id, self.now_ms)
        self.add(customer_id, held, old, new)

    def add(self, customer_id: str, held: set[str], old: set[str], new: set[str]) -> None:
        """One customer: the tags its state holds, and those the current and the new rules give now."""
        self.customers += 1
        if held != old:
            self.drift.add(customer_id)
        for name in old - new:
            self._tag(name).removed.add(customer_id)
        for name in new - old:
            self._tag(name).added.add(customer_id)
        for name in old & new:
            self._tag(name).unchanged.add(customer_id)

    def report(self) -> DiffReport:
        return DiffReport(self.old.version, self.new.version, self.now_ms, self.customers, self.deleted,
                          self.unreadable, dict(self.rule_versions), self.drift, list(self._tags.values()),
                          dict(self.backfill))


def render_table(report: DiffReport) -> str:
    """The report as text for a terminal: one row per tag, then its sample customer ids."""
    lines = [f"rules diff: {report.old_version} -> {report.new_version}, {report.customers:,} customers "
             f"({report.deleted:,} deleted, {report.unreadable:,} unreadable states skipped)"]
    other = {v: n for v, n in report.rule_versions.items() if v != report.old_version}
    if other:
        versions = ", ".join(f"{v or '(none)'}: {n:,}" for v, n in sorted(other.items()))
        lines.append(f"warning: {sum(other.values()):,} states were written under other rule versions "
                     f"({versions}); "
                     "is TAGSTREAM_RULES_PATH the rule set the workers run?")
    if report.drift.count:
        lines.append(f"note: {report.drift.count:,} customers' stored tags differ from the current rules' result "
                     f"now (a worker behind or stopped): {', '.join(report.drift.ids)}; baseline is the latter")
    width = max([len("tag"), *(len(t.tag) for t in report.tags)])
    lines += ["", f"{'tag':<{width}}  {'rule':<11}  {'+added':>8}  {'-removed':>8}  {'unchanged':>9}"]
    for t in report.tags:
        lines.append(f"{t.tag:<{width}}  {t.status:<11}  {t.added.count:>8,}  {t.removed.count:>8,}  "
                     f"{t.unchanged.count:>9,}")
        for sign, s in (("+", t.added), ("-", t.removed), ("=", t.unchanged)):
            if s.ids:
                more = f" … {s.count - len(s.ids):,} more" if s.count > len(s.ids) else ""
                lines.append(f"{'':<{width}}    {sign} {', '.join(s.ids)}{more}")
        if t.needs_backfill:
            feats = ", ".join(f"{n} ({r})" for n, r in t.needs_backfill.items())
            names = " ".join(t.needs_backfill)
            lines.append(f"{'':<{width}}    needs backfill: {feats} start empty; counts are without backfill; "
                         f"after the deploy: tagstream backfill {names}")
    return "\n".join(lines)


async def diff_changelog(settings: Any, old: Any, new: Any, *, now_ms: int, samples: int,
                         progress: bool) -> DiffReport:
    """Reads every customer's latest state from the changelog and diffs the two rule sets on it."""
    import sys

    from streams.io.changelog_reader import ChangelogReader, ReadProgress
    from streams.io.topics import changelog_topic_name


    def show(p: ReadProgress) -> None:
        print(f"changelog: {p.records_read:,} / {p.records_total:,} records read ({p.rate:,.0f}/s), "
              f"{p.keys_out:,} customers evaluated", file=sys.stderr)

    diff = RulesDiff(old, new, now_ms=now_ms, samples=samples)
    ks = settings.kafka
    async with ChangelogReader(ks.bootstrap_servers, changelog_topic_name(settings),
                               client_options=ks.client_options(), fetch_max_bytes=ks.fetch_max_bytes,
                               on_progress=show if progress else None) as reader:
        async for key, value in reader.latest():
            diff.add_state(key.decode(errors="replace"), value)
    return diff.report()
