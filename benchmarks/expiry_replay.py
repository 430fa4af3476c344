"""Completeness of an expiry phase: the expiry changes the engine makes from the phase's events,
replayed in process (``python -m benchmarks.expiry --replay-expiries IN OUT``, on the worker's code
snapshot with its environment)."""

from __future__ import annotations

from pathlib import Path

import orjson

REPLAY_FLAG = "--replay-expiries"


def replay_expiries(rules_path: Path, values: list[bytes], cut_clock_ms: int) -> dict[str, str]:
    """change_id -> "tag op" of every expiry change (``at_ms <= cut_clock_ms``) the engine makes
    from the load's events, each processed at its own ``ts`` as now — the earliest instant the
    worker can process it — and every customer then caught up to ``cut_clock_ms``.

    The worker processes an event a little after its ``ts``; before folding it, it runs every due
    time up to then (``catch_up``), so it can only make *more* expiry changes (a due time that fell
    between the send and the processing: removed, then re-added by the event), never fewer; the
    change_ids of the others are equal (the due instant is a function of the event times).
    """
    from schemas.canonical import to_canonical
    from schemas.decode import decode_event
    from streams.engine.features.state import CustomerState
    from streams.engine.tag_engine import Change, TagEngine
    from streams.settings import Settings
    from tag_rules import load_rules

    es = Settings().engine  # the worker's environment: its engine settings
    engine = TagEngine(load_rules(rules_path), allowed_lateness_ms=es.allowed_lateness_ms,
                       dedup_horizon_ms=es.dedup_horizon_ms, dedup_max_ids=es.dedup_max_ids)
    states: dict[str, CustomerState] = {}
    out: dict[str, str] = {}

    def keep(changes: list[Change]) -> None:
        for c in changes:
            if c["cause"] == "expiry" and c["at_ms"] <= cut_clock_ms:
                out[c["change_id"]] = f"{c['tag']} {c['op']}"

    for raw in values:
        ev = to_canonical("clickstream", decode_event("clickstream", raw), 0)
        state = states.setdefault(ev["customer_id"], CustomerState())
        keep(engine.process_event(state, ev, ev["ts_ms"]).changes)
    for customer_id, state in states.items():
        keep(engine.catch_up(state, customer_id, cut_clock_ms))
    return out


def replay_main(inp: Path, out: Path) -> int:
    """``python -m benchmarks.expiry --replay-expiries IN OUT`` (run by ``Phase.replay``)."""
    job = orjson.loads(inp.read_bytes())
    expected = replay_expiries(Path(job["rules"]), [v.encode() for v in job["events"]], job["cut_clock_ms"])
    out.write_bytes(orjson.dumps(expected))
    return 0
