"""The tag engine in the Rust core (issue 9): a Python ``TagEngine``'s rules handed to
``tagstream_core.NativeEngine`` (``native/src/engine/``), which rule sets it cannot run yet, and
``CoreTagEngine``, what the customer stage folds a customer's batch with when the core can take it
(``streams/app/customer_core.py``; the setting ``engine.tag_engine``).

tests/unit/test_native_engine.py holds the native engine to the Python
one (the same changes, ``change_id``s, late and duplicate flags, due times and state bytes). The
native engine evaluates as ``TagEngine(incremental=False)`` does, which the incremental engine equals
(tests/unit/test_engine_incremental.py), skipping only what cannot change: the tags none of whose
inputs moved since the last evaluation keep their outcome. It reads the engine's compiled parts
(runtimes, names by key, stepped tags, time-since plans) as the engine holds them.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, TypeGuard

from streams.engine import native_core
from streams.engine.features.runtime import FeatureRuntime
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import Change, TagEngine
from tag_rules.expr_tree import tree_of

log = logging.getLogger(__name__)


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


class StoredState(Protocol):
    """What the stage reads of a stored state, whichever engine made it."""

    rule_version: str
    due_ms: int | None
    expires_ms: int | None

    def dumps(self) -> bytes: ...

    def is_empty(self) -> bool: ...


STATE_TYPES: tuple[type, ...] = (CustomerState,) if native_core.CORE is None else (
    CustomerState, native_core.CORE.NativeState)
"""What the customers table holds: the Python engine's states and the core's."""


def is_state(value: object) -> TypeGuard[StoredState]:
    """Whether the customers table's ``value`` is a state (of either engine)."""
    return isinstance(value, STATE_TYPES)

ENGINES = ("auto", "python", "core")
"""``engine.tag_engine``: the core's engine where it can run the rules (auto), never (python), or
always (core: refuse rules it cannot run)."""


class CoreTagEngine:
    """A ``TagEngine``'s rules run by the core, for customers whose state it can hold.

    The customers table then holds a customer's state either as a ``CustomerState`` (the Python
    engine's) or as a ``tagstream_core.NativeState`` (this engine's; both write the same changelog
    bytes, so recovery reads them all as ``CustomerState``, which ``state_for`` converts once). A
    customer the core cannot take (a state of other rules, a stub, an identity expiry, a backfill
    replay, a value past what the core reproduces) is folded by the Python engine (``python_state``).
    """

    def __init__(self, engine: TagEngine) -> None:
        self.engine = engine
        self.core = native_engine(engine)
        self.version = engine.version

    def state_for(self, stored: Any) -> Any:
        """A native state to fold a batch into: a copy of ``stored`` (so that it is untouched when the
        core gives the batch up), a conversion of a ``CustomerState``, or a new customer's; None when
        the core cannot hold it (the Python engine takes the customer)."""
        if stored is None:
            return self.core.state()
        if isinstance(stored, CustomerState):
            # "": never evaluated (an anonymous visitor's: ``fold_only``), upgraded as Python does
            if stored.rule_version not in (self.version, "") or stored.moved is not None:
                return None
            try:
                return self.core.state(stored.dumps())
            except NotImplementedError:
                return None
        if self.core.owns(stored):
            return stored.copy()
        return None  # made by an engine since replaced: the Python engine upgrades it

    def split(self, value: bytes | None) -> list[tuple[bytes, bytes, bool]]:
        """A customer-topic record's items: (customer key, item bytes, plain event); ValueError when
        it is not an envelope (``streams/app/envelope.py``, ``decode_envelope``)."""
        items: list[tuple[bytes, bytes, bool]] = self.core.split(value or b"")
        return items

    def fold_events(self, state: Any, items: list[bytes], now_ms: int, evaluate: bool = True) -> tuple[
            list[tuple[Change, int | None]], list[tuple[str, int, int, int]]]:
        """A customer's plain events (``split``'s bytes) folded in order: ([(change, its event's
        source timestamp or None)], [(source, events, duplicates, late)]). NotImplementedError: the
        core does not reproduce one of them (``state`` is then half-folded). ``evaluate=False``:
        ``TagEngine.fold_only`` (an anonymous visitor whose tags are not published)."""
        result: tuple[list[tuple[Change, int | None]], list[tuple[str, int, int, int]]] = self.core.fold_events(
            state, items, now_ms, evaluate)
        return result

    def process_event(self, state: Any, event: bytes, now_ms: int) -> tuple[list[Change], bool, bool]:
        """``TagEngine.process_event`` for an event's JSON: (changes, late, duplicate).
        NotImplementedError: the core does not reproduce it (``state`` is then half-folded)."""
        result: tuple[list[Change], bool, bool] = self.core.process_event(state, event, now_ms)
        return result

    def catch_up(self, state: Any, customer_id: str, now_ms: int) -> list[Change]:
        changes: list[Change] = self.core.catch_up(state, customer_id, now_ms)
        return changes


def python_state(stored: Any) -> CustomerState | None:
    """``stored`` as the Python engine's state (a native one converted through its changelog bytes)."""
    if stored is None or isinstance(stored, CustomerState):
        return stored
    return CustomerState.loads(stored.dumps())


class TagEngineRefused(ValueError):
    """``engine.tag_engine=core`` and the core cannot run the rules (a worker stops at start)."""


def core_engine_for(engine: TagEngine, mode: str) -> CoreTagEngine | None:
    """The core's engine for ``engine``'s rules under ``engine.tag_engine`` = ``mode`` (None: the
    Python engine runs every customer). ``core`` raises ``TagEngineRefused`` when the core cannot run them."""
    if mode not in ENGINES:
        raise ValueError(f"tag_engine={mode!r}: must be one of {', '.join(ENGINES)}")
    if mode == "python":
        log.info("tag engine: Python's (TAGSTREAM_ENGINE__TAG_ENGINE=python)")
        return None
    why = unsupported(engine)
    if why is None:
        log.info("tag engine: the Rust core's, for rules %s", engine.version)
        return CoreTagEngine(engine)
    if mode == "core":
        raise TagEngineRefused(f"TAGSTREAM_ENGINE__TAG_ENGINE=core, but the core's tag engine cannot run rules "
                               f"{engine.version}: {why}")
    log.info("tag engine: Python's, the core cannot run rules %s: %s", engine.version, why)
    return None
