"""The customer stage's path through the Rust core's tag engine (``CoreTagEngine``, issue 9).

A customer's batch goes this way when the core holds its state (``CoreTagEngine.state_for``) and
none of its items is identity business (the stage checks ``IdentityItems.plain``). The items are
folded into a copy of the state: when the core meets something it does not reproduce (it raises
NotImplementedError) or an item only the Python engine handles (a backfill replay, an anonymous
customer's expiry), ``fold`` returns None having changed nothing, counted nothing, and the
stage folds the batch with the Python engine from the stored state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.app.published import Published
from streams.engine.clock import Clock
from streams.engine.native_engine import CoreTagEngine


@dataclass
class Folded:
    published: list[Published] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    """The source of each event folded (the stage counts them once the batch is kept)."""
    duplicates: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)


def fold(core: CoreTagEngine, state: Any, objs: list[dict[str, Any]], clock: Clock,
         expiring: bool) -> Folded | None:
    """Folds one customer's items of a batch into ``state`` (a native state of ``core``'s);
    ``expiring``: anonymous customers expire (identity resolution), which the Python engine does.
    None: the core gave the batch up (``state`` is then to be dropped)."""
    try:
        return _fold(core, state, objs, clock, expiring)
    except NotImplementedError:
        return None


def _fold(core: CoreTagEngine, state: Any, objs: list[dict[str, Any]], clock: Clock, expiring: bool) -> Folded | None:
    out = Folded()
    published = out.published
    for obj in objs:
        now_ms = clock.now_ms()
        tick = obj.get("tick")
        if tick is not None:
            if expiring and state.expires_ms is not None and now_ms >= state.expires_ms:
                return None
            if state.due_ms == tick:  # else stale: an event since then already moved the due time
                published += [Published(c, None) for c in core.catch_up(state, obj["customer_id"], now_ms)]
            continue
        if "bf" in obj:
            return None
        changes, late, duplicate = core.process_event(state, orjson.dumps(obj), now_ms)
        source = obj["source"]
        out.sources.append(source)
        if duplicate:
            out.duplicates.append(source)
        if late:
            out.late.append(source)
        if changes:
            via = obj.get("via")
            if via is not None:  # forwarded from an absorbed id: the change says which
                for c in changes:
                    c["via"] = via
            ts = obj["src_ts_ms"]
            published += [Published(c, ts if c["cause"] == "event" else None) for c in changes]
    return out
