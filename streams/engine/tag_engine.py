"""The tagging engine: folds canonical events into customer state and turns rule outcomes into
tag changes. Pure: no Kafka, Redis or Faust, and time comes in as ``now_ms`` from the caller's
clock, so unit tests and replays drive it directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

from schemas.events import SOURCES
from schemas.tags import ChangeCause, TagOp
from streams.engine import flap
from streams.engine.backfill import NO_KEYS, BackfillTracker
from streams.engine.conditions import TRUE, UNKNOWN, plain_conjunctions, ratio_conditions
from streams.engine.due_times import GATE, DueTimes, earliest
from streams.engine.feature_reads import UNREAD, FeatureReads, value_at
from streams.engine.features.runtime import Runtime, shared_runtimes
from streams.engine.features.state import CustomerState
from streams.engine.flips import Flips
from streams.engine.fold_plan import FoldPlans
from streams.engine.guards import GuardChecks, all_hold
from streams.engine.outcome import Outcome
from streams.engine.since_due import SinceDue
from streams.engine.tag_change import Change, tag_change
from streams.engine.tag_index import TagIndex, condition_atoms
from tag_rules.compiler import CompiledRuleSet

BACKFILL_WINDOW_MS: Final = 7 * 86_400_000
"""Default of ``TAGSTREAM_ENGINE__BACKFILL_WINDOW_MS``: Kafka's default retention."""
_NO_KEYS: Final = NO_KEYS
"""``backfill.NO_KEYS`` as a C static (backfill.py is not compiled: its names are dictionary look-ups)."""


class TagEngine(DueTimes):
    """Evaluates a compiled rule set for one customer at a time."""

    def __init__(self, rules: CompiledRuleSet, *, allowed_lateness_ms: int | None = None,
                 dedup_horizon_ms: int = 86_400_000, dedup_max_ids: int = 1000, incremental: bool = True,
                 births: Mapping[str, int] | None = None, backfill_window_ms: int = BACKFILL_WINDOW_MS) -> None:
        self.rules = rules
        self.incremental = incremental
        """After an event, evaluate only the tags the event can have flipped (``TagIndex``: a
        comparison of theirs that a fed feature's value crossed, or a changed value they read);
        the others cannot have changed: every time-driven change before now was caught up first.
        False evaluates every tag on every event: the reference the property tests compare against."""
        self.allowed_lateness_ms = allowed_lateness_ms
        """Events older than this (relative to now) feed lifetime features only."""
        self.dedup_horizon_ms = dedup_horizon_ms
        self.dedup_max_ids = dedup_max_ids
        self.version = rules.version
        used = {name for tag in rules.tags.values() for name in tag.features}
        by_key, self._names_by_key = shared_runtimes(rules.features, used, rules.since_thresholds())
        self.runtimes = list(by_key.values())
        self._runtime_by_key = by_key
        self.keys = frozenset(by_key)
        self.tracker = BackfillTracker({k: b for k, b in (births or {}).items() if k in self.keys},
                                       backfill_window_ms)
        """Books of the features a deployment added (``births``: state key -> the deployment's
        instant), so a backfill of them counts every source record once (streams/engine/backfill.py)."""
        self._plans = FoldPlans.of(self.runtimes, SOURCES)
        self.tags = list(rules.tags.values())
        self._tag_names = frozenset(rules.tags)
        self._names = [t.name for t in self.tags]
        self._every = list(range(len(self.tags)))
        """Every tag's index, in rule order (``_diff`` of every tag)."""
        self._features_of = [t.features for t in self.tags]
        """Each tag's features by index (a rule's tag is no compiled class: each ``tag.features`` is a getattr)."""
        self._when_of = {t.name: t.when.function for t in self.tags}
        """Each tag's condition as a plain function (``CompiledExpr.function``)."""
        self._conjunctions = plain_conjunctions(self.tags)
        """Plain tags whose condition is an ``and`` of comparisons with constants: ``_diff`` tests those itself."""
        self._ratio_conditions = ratio_conditions(self.tags)
        """Plain tags whose condition is an ``and`` with ratio comparisons among its terms: ``_diff`` tests
        those itself for plain finite numbers."""
        # Tags with hysteresis or flap control take the slower path of streams/engine/flap.py;
        # those with a min_duration or cooldown also add their gates to the due time.
        self._stepped = frozenset(t.name for t in self.tags if t.exit is not None or t.flap_controlled)
        self._gated = flap.Gates(t for t in self.tags if t.flap_controlled)
        self._gated_names = frozenset(t.name for t in self.tags if t.flap_controlled)
        self._gated_indexes = [i for i, t in enumerate(self.tags) if t.flap_controlled]
        self._cooldown_ms = {t.name: t.cooldown_ms for t in self.tags if t.cooldown_ms}
        self._runtime_of = {name: by_key[rules.features[name].key] for name in used}
        self._reads = FeatureReads(self.runtimes, self._runtime_of, self._names_by_key)
        # Stepped tags whose conditions are comparisons are indexed by them like the others (their
        # gates are due times: tag_index.py); the rest are evaluated whenever a feature of theirs is fed.
        opaque_stepped = frozenset(n for n in self._stepped if condition_atoms(rules.tags[n]) is None)
        self._index = TagIndex(self.tags, {name: rt.key for name, rt in self._runtime_of.items()}, opaque_stepped)
        self._since = SinceDue(self.tags, self._runtime_of)
        """Which time-since thresholds can change a tag, given the held ones (streams/engine/since_due.py)."""
        blank = {name: rt.value(None, 0) for name, rt in self._runtime_of.items()}
        self._guards = GuardChecks([t.when.guards for t in self.tags], self._runtime_of, blank, self._reads)
        """What a tag that is not held needs before it is evaluated (streams/engine/guards.py)."""
        self._true_when_blank = [i for i, t in enumerate(self.tags) if flap.truthy(t.when(blank))]
        """Tags a customer with no state yet holds before its first event (``orders_30d == 0``):
        its first event evaluates these and the ones it flips, not every tag."""
        self.evaluated = 0
        """Tags handed to the evaluation so far (benchmarks and tests read it: issue 12)."""

    # -- entry points ------------------------------------------------------------------------

    def process_event(self, state: CustomerState, event: Mapping[str, Any], now_ms: int) -> Outcome:
        """Folds one canonical event into ``state`` and returns the tag changes it causes."""
        out = Outcome()
        customer_id = event["customer_id"]
        # Time-driven changes that fell due before this event (e.g. while the worker was down,
        # or under a backlog) happen first, at their own instants, as "expiry".
        out.changes += self.catch_up(state, customer_id, now_ms)
        if self._duplicate(state, event, now_ms):
            out.duplicate = True
            return out
        full = not self.incremental
        first: list[int] = []
        if state.rule_version != self.version:
            if not full and not state.rule_version and state.is_empty():  # a new customer: from blank, indexed
                first = self._true_when_blank
            else:
                full = True  # new rules: every tag gets its first evaluation
            out.changes += self._upgrade(state, customer_id, now_ms)
        feats = state.features
        before: list[Any] = []
        """Incremental: each fed feature's value just before the event, at now."""
        fed = self._fold(state, event, now_ms, out, None if full else before)
        if full:
            values = self._reads.all(state, now_ms)
            out.changes += self._diff(state, customer_id, values, now_ms, "event", event)
        elif fed or first:
            out.changes += self._diff_flipped(state, customer_id, fed, before, now_ms, event, first)
        cache = state.next_change
        if full or cache is None:
            state.due_ms = self.next_due_ms(state, now_ms)
        elif fed:
            # Features the event did not feed keep their next change (nothing was due before
            # now: catch_up ran first), so only the fed ones are recomputed.
            read = state.value_cache
            steady = self._reads.steady
            held = state.tags
            for rt in fed:
                cache[rt.key] = self.next_change_of(rt, feats.get(rt.key), now_ms, held)
                if read and rt.key not in steady:  # a steady one holds its new value (``_diff_flipped``)
                    read.pop(rt.key, None)
            if out.changes:  # a time-since threshold may matter now, or no longer (``SinceDue``)
                self._renew_since(state, out.changes, now_ms)
            # The next flap-control gate moves only when a gated tag is added or removed (else the
            # cached one is still the first after now: an earlier one would have been due).
            if out.changes and self._gated and not self._gated_names.isdisjoint([c["tag"] for c in out.changes]):
                cache[GATE] = self._next_gate(state, now_ms)
            best = earliest(cache)
            state.due_ms = None if best == math.inf else int(best)
        return out

    def fold_only(self, state: CustomerState, event: Mapping[str, Any], now_ms: int) -> Outcome:
        """``process_event`` for the features only: no tag is evaluated and the state has no due
        time (an anonymous visitor whose tags are not published, docs/identity.md). Its state stays
        on the rule version it had, so its first evaluation (a merge, or ``TAG_ANONYMOUS`` turned
        on) is a full one."""
        out = Outcome()
        if self._duplicate(state, event, now_ms):
            out.duplicate = True
            return out
        self._fold(state, event, now_ms, out, None)
        state.due_ms = None
        state.next_change = None
        state.value_cache = None
        return out

    def _duplicate(self, state: CustomerState, event: Mapping[str, Any], now_ms: int) -> bool:
        """The event id was seen within the de-duplication horizon (else it is remembered now)."""
        return self.dedup_horizon_ms > 0 and state.seen_before(event["event_id"], now_ms, self.dedup_horizon_ms,
                                                               self.dedup_max_ids)

    def _fold(self, state: CustomerState, event: Mapping[str, Any], now_ms: int, out: Outcome,
              before: list[Any] | None) -> list[Runtime]:
        """Folds the event into the features it feeds; returns them. ``before`` (incremental
        evaluation) receives each one's value just before the event."""
        feats = state.features
        too_late = self.allowed_lateness_ms is not None and now_ms - event["ts_ms"] > self.allowed_lateness_ms
        out.late |= too_late
        backfilled = self.tracker.on_live(state.backfill, event, now_ms) if self.tracker or state.backfill \
            else _NO_KEYS
        fed: list[Runtime] = []
        filtered: dict[int, bool] = {}
        read = state.value_cache
        for rt, slot in self._plans.steps(event):
            if too_late and rt.window_ms is not None:
                continue
            if backfilled and rt.key in backfilled:
                continue  # a backfill already counted this source record for this feature
            if slot >= 0:
                ok = filtered.get(slot)
                if ok is None:
                    ok = filtered[slot] = rt.matches(event)
                if not ok:
                    continue
            if before is not None:
                # a steady key's value is remembered since its last change or feed (``FeatureReads.read``,
                # ``_diff_flipped``): nothing of it left the window since, so there is nothing to prune
                old = read.get(rt.key, UNREAD) if read is not None else UNREAD
                before.append(value_at(feats, rt, now_ms) if old is UNREAD else old)
            data, late = rt.fold(feats.get(rt.key), event, now_ms)
            out.late |= late
            fed.append(rt)
            if data is not None:
                feats[rt.key] = data
        return fed

    def process_backfill(self, state: CustomerState, event: Mapping[str, Any], keys: Iterable[str], start: int,
                         now_ms: int) -> Outcome:
        """Folds a replayed source event (``tagstream backfill``, whose run began the event's source
        partition at offset ``start``) into the features ``keys`` only, unless the live path or an
        earlier run counted it (streams/engine/backfill.py); other
        features and the de-duplication memory are left alone. Tag changes it causes complete a
        rule change: ``cause: rule_change``."""
        out = Outcome()
        customer_id = event["customer_id"]
        out.changes += self.catch_up(state, customer_id, now_ms)
        upgraded = state.rule_version != self.version
        if upgraded:
            out.changes += self._upgrade(state, customer_id, now_ms)
        wanted = self.tracker.on_replay(state.backfill, event, keys, start, now_ms)
        out.backfilled = len(wanted)
        too_late = self.allowed_lateness_ms is not None and now_ms - event["ts_ms"] > self.allowed_lateness_ms
        feats = state.features
        fed: list[Runtime] = []
        for rt in self.runtimes:
            if rt.key not in wanted or event["source"] not in rt.sources or (too_late and rt.window_ms is not None):
                continue
            if not rt.matches(event):
                continue
            data, late = rt.fold(feats.get(rt.key), event, now_ms)
            out.late |= late
            fed.append(rt)
            if data is not None:
                feats[rt.key] = data
        if upgraded or fed:  # every tag: a backfill is not the hot path
            values = self._reads.all(state, now_ms)
            out.changes += self._diff(state, customer_id, values, now_ms, "rule_change", None)
            state.due_ms = self.next_due_ms(state, now_ms)
        return out

    def reevaluate(self, state: CustomerState, customer_id: str, now_ms: int, cause: ChangeCause,
                   ref: str) -> list[Change]:
        """Evaluates every tag of ``state`` at ``now_ms`` after its features were changed from outside
        (an identity merge): the changes carry ``cause``; ``ref`` names what caused them in the
        deterministic ``change_id`` (e.g. the merge id). Recomputes the due time."""
        changes: list[Change] = []
        if state.rule_version != self.version:
            changes += self._upgrade(state, customer_id, now_ms)
        values = self._reads.all(state, now_ms)
        changes += self._diff(state, customer_id, values, now_ms, cause, None, ref=ref)
        state.due_ms = self.next_due_ms(state, now_ms)
        return changes

    def release(self, state: CustomerState, customer_id: str, at_ms: int, cause: ChangeCause,
                ref: str) -> list[Change]:
        """Removes every tag ``customer_id`` holds (its state is going away: absorbed by an identity
        merge), one ``remove`` change each, in tag name order."""
        changes = [tag_change(customer_id, name, "remove", at_ms, cause, self.version, None, {}, ref=ref)
                   for name in sorted(state.tags)]
        state.tags.clear()
        state.removed.clear()
        state.due_ms = None
        return changes

    def feature_values(self, state: CustomerState, now_ms: int) -> dict[str, Any]:
        """Every feature the tags read, by name, at ``now_ms`` (prunes expired buckets)."""
        return self._reads.all(state, now_ms)

    # -- internals ---------------------------------------------------------------------------

    def _diff_flipped(self, state: CustomerState, customer_id: str, fed: list[Runtime], before: list[Any],
                      now_ms: int, event: Mapping[str, Any], first: list[int]) -> list[Change]:
        """Evaluates only the tags the event can have flipped (``TagIndex``): those with a
        comparison its features' values crossed, and the others that read a changed value
        (plus ``first``: the tags a blank customer holds, at its first event)."""
        feats = state.features
        values: dict[str, Any] = {}
        flips = self._index.flips(first)
        read = state.value_cache
        steady = self._reads.steady
        for rt, old in zip(fed, before, strict=True):
            new = rt.value(feats.get(rt.key), now_ms)  # pruned at now for ``before``; the fold added a live bucket
            for name in self._names_by_key[rt.key]:
                values[name] = new
            if read is not None and rt.key in steady:  # its value until its next change or feed
                read[rt.key] = new
            self._index.flipped(rt.key, old, new, flips)
        return self._evaluate_flipped(state, customer_id, flips, values, now_ms, "event", event)

    def _evaluate_flipped(self, state: CustomerState, customer_id: str, flips: Flips, values: dict[str, Any],
                          now_ms: int, cause: ChangeCause, event: Mapping[str, Any] | None) -> list[Change]:
        """Evaluates the tags of ``flips`` that can change (``Flips.chosen``, the guards of those not
        held) with ``values`` (the changed features' new values; the others are read as needed)."""
        if not flips:
            return []
        held = state.tags
        names = self._names
        chosen = flips.chosen(names, held)
        groups: list[Any] = [flips.guarded, flips.up_guarded, *flips.up_guarded_lists]  # as objects (``Flips.chosen``)
        guards = self._guards
        for group in groups:
            for i in group:
                j: int = i  # an int to index the list of names directly (``i`` stays the object ``add`` takes)
                # (one already chosen, through another of its comparisons, is checked again: rare)
                if names[j] not in held and guards.hold(j, state, values, now_ms):
                    chosen.add(i)
        if not chosen:
            return []
        order: list[int] = list(chosen) if len(chosen) == 1 else sorted(chosen)  # rule order
        features_of = self._features_of
        for j in order:
            for name in features_of[j]:
                if name not in values:
                    self._reads.read(name, state, values, now_ms)
        return self._diff(state, customer_id, values, now_ms, cause, event, order)

    def _upgrade(self, state: CustomerState, customer_id: str, now_ms: int) -> list[Change]:
        """The rule set changed since this state was written: drop state of features that no
        longer exist (or were redefined) and publish what the new rules change, as rule_change."""
        fresh = not state.rule_version and not state.tags
        for key in [k for k in state.features if k not in self.keys]:
            del state.features[key]
        if state.removed:  # a tag that lost its cooldown (or no longer exists) forgets its removal
            flap.forget_passed(state.removed, self._cooldown_ms, now_ms)
        state.rule_version = self.version
        if fresh:
            return []
        values = self._reads.all(state, now_ms)
        return self._diff(state, customer_id, values, now_ms, "rule_change", None)

    def _diff(self, state: CustomerState, customer_id: str, values: dict[str, Any], at_ms: int,
              cause: ChangeCause, event: Mapping[str, Any] | None, tags: list[int] | None = None,
              ref: str | None = None) -> list[Change]:
        """Evaluates the tags ``tags`` (indexes in rule order; None: every tag) with ``values`` and
        returns their changes. By index: a rule's tag is no compiled class, each attribute read of
        one is a generic look-up (~190 instructions)."""
        changes: list[Change] = []
        held = state.tags
        stepped = self._stepped
        full = tags is None
        order = self._every if tags is None else tags
        names = self._names
        features_of = self._features_of
        self.evaluated += len(order)
        for j in order:
            name = names[j]
            op: TagOp | None
            if name in stepped:
                op = flap.step(self.tags[j], values, held, state.removed, at_ms)
                if op is None:
                    continue
            else:
                conjunction = self._conjunctions.get(name)
                ratio = self._ratio_conditions.get(name) if conjunction is None else None
                answer = UNKNOWN if ratio is None else ratio.test(values)
                if conjunction is not None:
                    holds = all_hold(conjunction, values)
                elif answer != UNKNOWN:
                    holds = answer == TRUE
                else:
                    try:
                        outcome = self._when_of[name](values)
                    except KeyError:  # a name it reads is missing: as None (``CompiledExpr.__call__``)
                        outcome = self.tags[j].when(values)
                    holds = outcome if type(outcome) is bool else flap.truthy(outcome)
                if holds == (name in held):
                    continue
                if holds:
                    held[name] = at_ms
                else:
                    del held[name]
                op = "add" if holds else "remove"
            changes.append(tag_change(customer_id, name, op, at_ms, cause, self.version,
                                      event, {n: values[n] for n in features_of[j]}, ref=ref))
        # Held under rules that had other tags: a full evaluation drops them (the first after a rule
        # change is ``_upgrade``'s, before any incremental one; a customer may hold hundreds of tags).
        if full and not self._tag_names.issuperset(held):
            for name in [n for n in held if n not in self._tag_names]:
                del held[name]
                changes.append(tag_change(customer_id, name, "remove", at_ms, "rule_change", self.version, None, {}))
        return changes
