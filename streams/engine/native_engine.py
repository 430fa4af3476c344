"""The tag engine in the Rust core (issue 9), in progress: a Python ``TagEngine``'s rules handed to
``tagstream_core.NativeEngine`` (``native/src/engine/``), and which rule sets it cannot run yet.

Not on the worker's path yet: tests/unit/test_native_engine.py holds the native engine to this
one (the same changes, ``change_id``s, late and duplicate flags, due times and state bytes). The
native engine evaluates as ``TagEngine(incremental=False)`` does, which the incremental engine equals
(tests/unit/test_engine_incremental.py), skipping only what cannot change: the tags none of whose
inputs moved since the last evaluation keep their outcome. It reads the engine's compiled parts
(runtimes, names by key, stepped tags, time-since plans) as the engine holds them.
"""

from __future__ import annotations

from typing import Any

from streams.engine import native_core
from streams.engine.features.runtime import FeatureRuntime
from streams.engine.tag_engine import TagEngine
from tag_rules.expr_tree import tree_of


def _few(names: list[str]) -> str:
    shown = ", ".join(sorted(names)[:5])
    return shown if len(names) <= 5 else f"{shown} and {len(names) - 5} more"


def unsupported(engine: TagEngine) -> str | None:
    """Why the native engine cannot run ``engine``'s rules (None: it can)."""
    if native_core.CORE is None:
        return f"no Rust core: {native_core.CORE_REASON}"
    if engine._stepped:
        return "tags with hysteresis or flap control: " + _few(list(engine._stepped))
    patterns = [rt.name for rt in engine.runtimes if not isinstance(rt, FeatureRuntime)]
    if patterns:
        return "sequence or absence features: " + _few(patterns)
    if engine.tracker:
        return "features a deployment added that a backfill can still reach"
    return None


def spec_of(engine: TagEngine) -> dict[str, Any]:
    """What ``NativeEngine`` takes: the engine's features in its order, the names tags read them
    by, the tags in rule order with their conditions' trees, and the time-since plans."""
    names = sorted(engine._runtime_of)
    plans = engine._since._plans
    features = []
    for rt in engine.runtimes:
        assert isinstance(rt, FeatureRuntime)
        plan = plans.get(rt.key)
        features.append({
            "key": rt.key, "agg": rt.defn.agg, "field": rt.field, "window_ms": rt.window_ms,
            "resolution_ms": rt.resolution_ms, "thresholds_ms": list(rt.thresholds_ms),
            "sources": sorted(rt.sources), "where": tree_of(rt.where) if rt.where is not None else None,
            "filter_key": rt.filter_key,
            "names": list(engine._names_by_key[rt.key]),
            "since": None if plan is None else (plan.thresholds, plan.always, plan.if_held, plan.if_not_held),
        })
    tags = [{"name": t.name, "when": tree_of(t.when), "features": list(t.features)} for t in engine.tags]
    return {"version": engine.version, "allowed_lateness_ms": engine.allowed_lateness_ms,
            "dedup_horizon_ms": engine.dedup_horizon_ms, "dedup_max_ids": engine.dedup_max_ids,
            "names": names, "features": features, "tags": tags}


def native_engine(engine: TagEngine) -> Any:
    """A ``tagstream_core.NativeEngine`` for ``engine``'s rules; ValueError saying why when it
    cannot run them (``unsupported``)."""
    why = unsupported(engine)
    if why is not None:
        raise ValueError(f"the native engine cannot run these rules: {why}")
    assert native_core.CORE is not None
    return native_core.CORE.NativeEngine(spec_of(engine))
