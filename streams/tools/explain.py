"""``tagstream explain CUSTOMER_ID``: why a customer holds its tags, from its live state.

The document is the API's (``GET /customers/{id}/explain``), built by the same code
(streams/io/explain_lookup.py -> streams/engine/explain.py); this module only prints it.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson

from schemas.api import CustomerExplain, TagExplain
from streams.engine.explain import iso
from streams.io.explain_lookup import CorruptState, CustomerNotFound, Explainer
from streams.settings import Settings
from tag_rules import CompiledRuleSet


def run(settings: Settings, rules: CompiledRuleSet, customer_id: str, *, as_json: bool) -> int:
    """Prints the explanation; 0 done, 2 no state for the customer; Kafka trouble raises
    StateUnavailable (a RuntimeError: the CLI's exit code 1)."""

    async def in_force() -> CompiledRuleSet:
        return rules

    try:
        doc = asyncio.run(Explainer(settings, in_force).explain(customer_id))
    except CustomerNotFound as exc:
        print(f"tagstream explain: {exc}", file=sys.stderr)
        return 2
    except CorruptState as exc:
        raise RuntimeError(str(exc)) from exc
    if as_json:
        print(orjson.dumps(doc.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())
    else:
        print(render_text(doc))
    return 0


def render_text(doc: CustomerExplain) -> str:
    """The explanation for a terminal: features, then each tag with its conditions, then what is due."""
    s = doc.state
    lines = [f"customer {doc.customer_id} at {iso(doc.now_ms)}, rules {doc.rules_version}",
             f"state: {s.topic}[{s.partition}]@{s.offset}, written {iso(s.written_ms)} under rules {s.rule_version}"]
    if s.rule_version != doc.rules_version:
        lines.append(f"  (the state was last evaluated under {s.rule_version}: evaluated here as a worker does "
                     "after a deploy)")
    lines += ["", "features"]
    width = max([len(f.name) for f in doc.features], default=0)
    for f in doc.features:
        nxt = f"   changes {iso(f.next_change_ms)}" if f.next_change_ms is not None else ""
        lines.append(f"  {f.name:<{width}}  {value(f.value):>14}{nxt}")
    lines += ["", "tags"]
    for t in doc.tags:
        lines += _tag_lines(t)
    if doc.pending:
        lines += ["", "pending (fell due, not in the stored state yet: the worker's timer has not reached them, or "
                      "the worker is behind or stopped)"]
        lines += [f"  {p.op} {p.tag} at {iso(p.at_ms)} ({p.cause})" for p in doc.pending]
    lines.append("")
    if doc.next_due is None:
        lines.append("next due: never with time alone (only an event can change a tag)")
    else:
        lines.append(f"next due {iso(doc.next_due.at_ms)}:")
        lines += [f"  {r.text}" for r in doc.next_due.reasons]
    return "\n".join(lines)


def _tag_lines(t: TagExplain) -> list[str]:
    if t.holds:
        head = f"  {t.tag}: IN since {iso(t.since_ms)}" if t.since_ms is not None else f"  {t.tag}: IN"
    elif t.since_ms is not None:
        head = f"  {t.tag}: out since {iso(t.since_ms)}"
    else:
        head = f"  {t.tag}: out (since: not recorded; the state keeps a removal time only for tags with a cooldown)"
    if t.holds != t.published:
        head += f"  [stored state says {'IN' if t.published else 'out'}: see pending]"
    lines = [head]
    if t.gate is not None:
        what = "keeps it in" if t.gate.kind == "min_duration" else "keeps it out"
        lines.append(f"    {t.gate.kind} {what} until {iso(t.gate.until_ms)}"
                     + (" (its condition asks for a change: held back)" if t.gate.holding else ""))
    for c in t.conditions:
        mark = "   <- decides now" if c.decides and len(t.conditions) > 1 else ""
        lines.append(f"    {c.key}: {c.source}   = {value(c.holds)}{mark}")
        for p in c.parts[1:]:
            lines.append(f"      {'  ' * (p.depth - 1)}{p.text}   = {value(p.value)}")
    if t.next_due_ms is not None:
        lines.append(f"    may change with time at {iso(t.next_due_ms)}")
    return lines


def value(v: Any) -> str:
    """A value as the rule language writes it: true/false/null, numbers, "text"."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return orjson.dumps(v).decode()
    return repr(v)  # exact: 0.30000000000000004 is what the rule compared
