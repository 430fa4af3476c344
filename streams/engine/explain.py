"""Why a customer holds its tags: the document of ``tagstream explain`` and ``GET /customers/{id}/explain``.

Pure: the caller hands over the customer's stored state (read from the changelog by
streams/io/explain_lookup.py) and the instant ``now_ms``. Nothing is recomputed by other means
than the worker's: the state is first brought to ``now_ms`` with ``TagEngine.catch_up`` (the due
times that fell before now, applied in order as the worker's timer applies them; a state made
under another rule version is re-evaluated as after a deploy), then the feature values are
``TagEngine.feature_values``, each condition is broken down by ``tag_rules.explain``, and the next
due time is the engine's own, with the feature bucket, time-since threshold or flap-control gate
that makes it. Changes that fell due but are not in the stored state are listed as ``pending``.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Literal

from schemas.api import (
    ConditionExplain,
    CustomerExplain,
    DueReason,
    FeatureValue,
    FlapGate,
    NextDue,
    PendingChange,
    StateSource,
    SubExpression,
    TagExplain,
)
from streams.engine.features.runtime import FeatureRuntime, Runtime
from streams.engine.features.state import CustomerState
from streams.engine.flap import truthy
from streams.engine.tag_engine import TagEngine
from tag_rules import TagDef
from tag_rules.durations import fmt_ms
from tag_rules.explain import explain as explain_expr

GateKind = Literal["min_duration", "cooldown"]
Gate = tuple[GateKind, int]
"""A flap-control bound in force: its kind and when it ends (epoch ms)."""


def explain_customer(engine: TagEngine, customer_id: str, state: CustomerState, now_ms: int, *,
                     topic: str, partition: int, offset: int, written_ms: int) -> CustomerExplain:
    """The explanation of ``state`` (changed: pass a copy) at ``now_ms`` under ``engine``'s rules;
    ``topic``/``partition``/``offset``/``written_ms`` say where the state was read."""
    source = StateSource(topic=topic, partition=partition, offset=offset, written_ms=written_ms,
                         rule_version=state.rule_version)
    published = set(state.tags)
    changes = engine.catch_up(state, customer_id, now_ms)
    if state.rule_version != engine.version:  # what the worker does with it after a deploy
        changes += engine.process_due(state, customer_id, now_ms, now_ms)
    values = engine.feature_values(state, now_ms)
    runtimes = _runtimes_by_name(engine)
    next_change = {name: _instant(engine.next_change_of(rt, state.features.get(rt.key), now_ms, state.tags))
                   for name, rt in runtimes.items()}
    features = [FeatureValue(name=name, agg=rt.defn.agg, window_ms=rt.window_ms, value=values[name],
                             next_change_ms=next_change[name]) for name, rt in sorted(runtimes.items())]
    gates = {t.name: _gate(t, state, now_ms) for t in engine.tags}
    tags = [_tag(t, state, values, now_ms, published, gates[t.name], next_change) for t in engine.tags]
    due_ms = engine.next_due_ms(state, now_ms)
    next_due = None
    if due_ms is not None:
        next_due = NextDue(at_ms=due_ms, reasons=_reasons(due_ms, runtimes, state, next_change, gates))
    pending = [PendingChange(tag=c["tag"], op=c["op"], at_ms=c["at_ms"], cause=c["cause"]) for c in changes]
    return CustomerExplain(customer_id=customer_id, now_ms=now_ms, rules_version=engine.version, state=source,
                           features=features, tags=tags, next_due=next_due, pending=pending)


def _runtimes_by_name(engine: TagEngine) -> dict[str, Runtime]:
    """Every feature a tag reads, by name, with the runtime the engine evaluates it with (features
    with the same definition share one)."""
    by_key = {rt.key: rt for rt in engine.runtimes}
    names = {n for t in engine.tags for n in t.features}
    return {n: by_key[engine.rules.features[n].key] for n in names}


def _instant(t: float) -> int | None:
    return None if t == math.inf else int(t)


def _gate(tag: TagDef, state: CustomerState, now_ms: int) -> Gate | None:
    """The min_duration (present) or cooldown (absent) bound that lasts beyond ``now_ms``."""
    added_at = state.tags.get(tag.name)
    if added_at is not None:
        if tag.min_duration_ms and added_at + tag.min_duration_ms > now_ms:
            return "min_duration", added_at + tag.min_duration_ms
        return None
    removed_at = state.removed.get(tag.name)
    if removed_at is not None and tag.cooldown_ms and removed_at + tag.cooldown_ms > now_ms:
        return "cooldown", removed_at + tag.cooldown_ms
    return None


def _tag(tag: TagDef, state: CustomerState, values: dict[str, object], now_ms: int, published: set[str],
         gate: Gate | None, next_change: dict[str, int | None]) -> TagExplain:
    holds = tag.name in state.tags
    conditions = []
    for key, expr in tag.conditions():
        parts = explain_expr(expr, values)
        # absent: enter (when) can add it; present: exit (when) can remove it
        decides = key == "when" or (key == "enter") != holds
        conditions.append(ConditionExplain(
            key=key, source=" ".join(expr.source.split()), holds=truthy(parts[0].value), decides=decides,
            parts=[SubExpression(text=p.text, value=p.value, depth=p.depth) for p in parts]))
    wants_change = (not holds and truthy(tag.when(values))) or (
        holds and (truthy(tag.exit(values)) if tag.exit is not None else not truthy(tag.when(values))))
    flap = None
    if gate is not None:
        flap = FlapGate(kind=gate[0], until_ms=gate[1], holding=wants_change)
    candidates = [t for t in (next_change[n] for n in tag.features) if t is not None]
    if gate is not None:
        candidates.append(gate[1])
    since = state.tags[tag.name] if holds else state.removed.get(tag.name)
    return TagExplain(tag=tag.name, description=tag.description, holds=holds, since_ms=since,
                      published=tag.name in published, conditions=conditions, gate=flap,
                      next_due_ms=min(candidates, default=None))


def _reasons(due_ms: int, runtimes: dict[str, Runtime], state: CustomerState,
             next_change: dict[str, int | None], gates: dict[str, Gate | None]) -> list[DueReason]:
    """Every feature and gate whose next change is ``due_ms`` (several when they coincide)."""
    out = []
    for name, rt in sorted(runtimes.items()):
        if next_change[name] != due_ms:
            continue
        if rt.takes_thresholds:  # since_last: the newest matching event's time is the state
            since_ms = due_ms - state.features[rt.key]
            shown = fmt_ms(since_ms) if since_ms % 1000 == 0 else f"{since_ms / 1000:.3f}s"
            out.append(DueReason(kind="since_last", name=name,
                                 text=f"{name} reaches {shown} (a threshold a tag compares it with)"))
        elif not isinstance(rt, FeatureRuntime):  # absence / sequence (features/sequences.py)
            out.append(DueReason(kind="sequence", name=name,
                                 text=f"{name} ({rt.defn.agg}) changes: an awaited event's time runs out or "
                                      "an event leaves its window"))
        else:
            assert rt.window_ms is not None and rt.resolution_ms is not None
            start = due_ms - rt.window_ms - rt.resolution_ms
            out.append(DueReason(kind="window", name=name,
                                 text=f"{name}: the events of {iso(start)} … {iso(start + rt.resolution_ms)} "
                                      f"(one {fmt_ms(rt.resolution_ms)} bucket) leave its {fmt_ms(rt.window_ms)} "
                                      "window"))
    for tag, gate in gates.items():
        if gate is not None and gate[1] == due_ms:
            what = "min_duration ends (it may leave then)" if gate[0] == "min_duration" else \
                "cooldown ends (it may come back then)"
            out.append(DueReason(kind=gate[0], name=tag, text=f"{tag}: {what}"))
    return out


def iso(ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
