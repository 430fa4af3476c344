"""Property: a rule set the loader accepts never fails at run time.

Random, valid-looking rule sets (every aggregation, windows and constants at and beyond their
limits, random ``where`` filters and ``when`` expressions) go through ``load_rules``. Whenever one
compiles, random canonical events run through the engine; the customer state is encoded and
decoded (as the changelog and a restart do) and every due time is driven. Anything that raises
after a successful compile is a bug: either the compiler let through a rule it must refuse, or the
engine breaks on a valid one.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import CLICK_TYPES, MAX_MONEY, MAX_QTY, ORDER_STATUSES, POS_TYPES
from schemas.tags import TagChange
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from tag_rules import CompiledRuleSet, RuleSetError, load_rules

S = 1000
D = 86_400 * S
T0 = 1_800_000_000_000  # a fixed "now" (2027)
TS_2001 = 978_307_200_000  # the oldest event time the schemas accept

AGGS = ["count", "sum", "min", "max", "avg", "distinct_count", "first", "last", "since_last"]
NUMERIC_FIELDS = ["amount", "quantity", "ts_ms", "src_ts_ms"]
ANY_FIELDS = [*NUMERIC_FIELDS, "type", "channel", "categories", "skus", "store_id", "payment_method", "query"]
SOURCES = ["clickstream", "pos", "orders"]



def mostly(ok: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``ok`` nine times in ten, else ``bad``: values at and inside the limits are drawn more often than
    values beyond them, so that a good share of the rule sets compile and reach the engine."""
    return st.integers(0, 9).flatmap(lambda k: bad if k == 9 else ok)


_WINDOWS_OK = st.one_of(
    st.sampled_from([None, "lifetime", "5s", "5000ms", "1m", "1h", "24h", "7d", "30d", "90d", "3650d", "521w"]),
    st.builds(lambda n: f"{n}s", st.integers(5, 3650 * 86_400)),
)
_WINDOWS_BAD = st.one_of(
    st.sampled_from(["4999ms", "3651d", "99999999999999999999d", "0s", "1ms", "1.5h", "9" * 30 + "w"]),
    st.builds(lambda n, u: f"{n}{u}", st.integers(0, 10**12), st.sampled_from(["ms", "s", "m", "h", "d", "w"])),
)
WINDOWS = mostly(_WINDOWS_OK, _WINDOWS_BAD)
RESOLUTIONS = mostly(st.none(), st.one_of(st.sampled_from(["1ms", "1s", "1m", "12h", "30d", "3650d", "0s"]),
                                          st.builds(lambda n: f"{n}ms", st.integers(1, 10**13))))

_CONSTANTS_OK = st.sampled_from([
    "0", "1", "-1", "0.5", "64", "65", "1e-300", "1e12", "1e300", "-1e300", "1e308", "-1e308", "10**20", "-10**20",
    "2**64", "100000000000000000000", "3153600000", "3153600000.5", "-3153600000", "days(36500)", "-days(36500)",
    "seconds(1)", "hours(24)", "minutes(0.001)", "null", "true", '"x"', '""', "days(30)", "1e308 * 0.5",
])
_CONSTANTS_BAD = st.sampled_from([
    "1e400", "-1e400", "100000000000000000001", "days(36501)", "days(1e14)", "seconds(1e300)", "1e308 * 10",
    "(10**12)**64", "10**21", '("a", 1)', '"x" * 2', "1 / 0",
])
CONSTANTS = mostly(_CONSTANTS_OK, _CONSTANTS_BAD)
WHERES = st.one_of(st.none(), st.sampled_from([
    'type == "paid"', 'source == "pos" and type == "sale"', "amount > 1e308", "amount >= 0", "amount * 1e300 > 1",
    "quantity ** 64 > 1", "ts_ms > 1e400", "ts_ms - src_ts_ms < seconds(5)", '"x" in categories', "len(skus) > 2",
    "round(amount, 64) == amount", "amount // 0 == null", "coalesce(amount, 0) < 10**20",
    'channel in ("web", "app")', 'min(categories) == "a"', "max(amount, quantity) > 5", "abs(amount - 1e12) < 1",
    "days(ts_ms) > 0", "query != null and len(query) > 100", "amount % 7 < 3", "amount ** -1 > 0.5",
    "ts_ms > days(36500) * 1000", "quantity * 10**20 > 1",
]), st.builds(lambda f, op, c: f"{f} {op} {c}", st.sampled_from(ANY_FIELDS),
              st.sampled_from(["<", "<=", ">", ">=", "==", "!=", "+ 1 >", "* 2 <", "/"]), CONSTANTS))


@st.composite
def features(draw: Any, i: int) -> dict[str, Any]:
    agg = draw(st.sampled_from(AGGS))
    f: dict[str, Any] = {"name": f"f{i}", "agg": agg}
    if agg in ("sum", "min", "max", "avg"):
        f["field"] = draw(st.sampled_from(NUMERIC_FIELDS))
    elif agg in ("distinct_count", "first", "last") or (agg == "count" and draw(st.booleans())):
        f["field"] = draw(st.sampled_from(ANY_FIELDS))
    window = draw(WINDOWS) if agg != "since_last" or draw(st.integers(0, 9)) == 0 else None
    if window is not None:
        f["window"] = window
        resolution = draw(RESOLUTIONS)
        if resolution is not None:
            f["resolution"] = resolution
    if draw(st.booleans()):
        f["sources"] = draw(st.lists(st.sampled_from(SOURCES), min_size=1, max_size=3, unique=True))
    where = draw(WHERES)
    if where is not None:
        f["where"] = where
    return f


def _when(draw: Any, feats: list[dict[str, Any]], depth: int = 0) -> str:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from(["true", "1 + 1 == 2", f"{draw(CONSTANTS)} > 0"]))  # reads no feature
    f = draw(st.sampled_from(feats))
    name = f["name"]
    c, c2 = draw(CONSTANTS), draw(CONSTANTS)
    op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
    if f["agg"] == "since_last":
        form = draw(st.integers(0, 2))
        simple = [f"{name} {op} {c}", f"{c} <= {name} < {c2}", f"{name} == null"][form]
    else:
        g = draw(st.sampled_from(feats))["name"]
        simple = draw(st.sampled_from([
            f"{name} {op} {c}", f"{name} * {c} > {c2}", f"{name} ** {c} > 1", f"round({name}, {c}) == {c2}",
            f"coalesce({name}, {c}) + {g} >= {c2}", f"{name} / {g} > {c}", f'{name} in ("a", 1)',
            f"len({name}) > {c}", f"min({name}, {g}, {c}) < {c2}", f"{name} - {g} {op} {c}",
            f"{name} // {c} % {c2} == 0", f"abs({name}) > days(30) * {c}", f"{name} if {g} else {c}",
        ]))
    if depth < 2 and draw(st.integers(0, 3)) == 0:
        other = _when(draw, feats, depth + 1)
        return draw(st.sampled_from([f"({simple}) and ({other})", f"({simple}) or not ({other})"]))
    return simple


@st.composite
def rule_sets(draw: Any) -> dict[str, Any]:
    feats = [draw(features(i)) for i in range(draw(st.integers(1, 5)))]
    tags = [{"name": f"t{j}", "when": _when(draw, feats)} for j in range(draw(st.integers(1, 4)))]
    doc: dict[str, Any] = {"features": feats, "tags": tags}
    if draw(st.booleans()):
        doc["version"] = draw(st.sampled_from(["v1", "retail-2026.11.1", "a" * 128]))
    return doc


TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)
LABELS = st.one_of(st.sampled_from(["a", "x", "shoes", "électronique", ""]), TEXT)


@st.composite
def events(draw: Any, i: int, now_ms: int) -> dict[str, Any]:
    source = draw(st.sampled_from(SOURCES))
    typ = draw(st.sampled_from({"clickstream": CLICK_TYPES, "pos": POS_TYPES, "orders": ORDER_STATUSES}[source]))
    ts = draw(st.one_of(st.integers(now_ms - 800 * D, now_ms + 300 * S), st.sampled_from([TS_2001, now_ms])))
    return {
        "event_id": f"e{i}-{draw(st.integers(0, 3))}",  # some duplicates on purpose
        "source": source, "type": typ, "customer_id": "c1", "ts_ms": ts, "src_ts_ms": ts,
        "amount": draw(st.one_of(st.none(), st.sampled_from([0.0, 0.01, MAX_MONEY]),
                                 st.floats(0, MAX_MONEY, allow_nan=False, allow_infinity=False))),
        "currency": draw(st.sampled_from([None, "EUR"])),
        "skus": draw(st.lists(LABELS, max_size=3, unique=True)),
        "categories": draw(st.lists(LABELS, max_size=3, unique=True)),
        "channel": draw(st.sampled_from([None, "web", "app", "store"])),
        "store_id": draw(st.one_of(st.none(), LABELS)), "session_id": None, "order_id": None,
        "payment_method": draw(st.one_of(st.none(), LABELS)),
        "quantity": draw(st.one_of(st.none(), st.sampled_from([1, MAX_QTY]), st.integers(1, MAX_QTY))),
        "query": draw(st.one_of(st.none(), TEXT)), "url": None,
    }


def compile_or_none(doc: dict[str, Any]) -> CompiledRuleSet | None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "rules.yaml"
        p.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
        try:
            return load_rules(p)
        except RuleSetError:
            return None


def round_trip(state: CustomerState) -> CustomerState:
    """Encode and decode the state like the changelog (and a restart) does."""
    return CustomerState.loads(state.dumps())


def publish(changes: Sequence[Mapping[str, Any]]) -> None:
    """What the worker does with a change: encode it for the tag topic (consumers read TagChange)."""
    for change in changes:
        TagChange.model_validate_json(orjson.dumps(change))


def drive_dues(engine: TagEngine, state: CustomerState, until_ms: int, steps: int = 300) -> CustomerState:
    for _ in range(steps):
        if state.due_ms is None or state.due_ms > until_ms:
            break
        publish(engine.process_due(state, "c1", state.due_ms, until_ms))
        state = round_trip(state)
    return state


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rule_sets(), st.data())
def test_a_rule_set_that_compiles_never_fails_at_run_time(doc: dict[str, Any], data: st.DataObject) -> None:
    rules = compile_or_none(doc)
    if rules is None:
        return
    lateness = data.draw(st.sampled_from([None, 400 * D]), label="allowed_lateness_ms")
    engine = TagEngine(rules, allowed_lateness_ms=lateness)
    state, now = run_events(engine, CustomerState(), T0, data)
    # A new rule set deployed over the same state (the worker re-evaluates it as rule_change).
    if data.draw(st.booleans(), label="deploy new rules"):
        new_rules = compile_or_none(data.draw(rule_sets(), label="new rules"))
        if new_rules is not None and new_rules.version != rules.version:
            engine = TagEngine(new_rules, allowed_lateness_ms=lateness)
            state, now = run_events(engine, state, now, data)
    # Let every window drain and every time-since threshold pass (the longest is 100 years).
    far = now + 101 * 366 * D
    state = drive_dues(engine, state, far)
    engine.next_due_ms(state, far)
    engine.feature_values(state, far)
    round_trip(state)


def run_events(engine: TagEngine, state: CustomerState, now: int, data: st.DataObject) -> tuple[CustomerState, int]:
    """Random events through ``engine``, with due times driven and the state re-decoded between them."""
    for i in range(data.draw(st.integers(1, 12), label="events")):
        now += data.draw(st.sampled_from([0, 1, S, 59 * S, D, 31 * D, 400 * D]), label="advance")
        state = drive_dues(engine, state, now)
        publish(engine.process_event(state, data.draw(events(i, now), label=f"event {i}"), now).changes)
        engine.feature_values(state, now)
        state = round_trip(state)
    return state, now
