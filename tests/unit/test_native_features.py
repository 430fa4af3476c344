"""The native features (``native/src/features/``, ``tagstream_core.NativeFeature``) against the
Python runtime (``streams/engine/features/runtime.py``) on random streams: after every event the same
data (same keys, order, values and types: the same changelog bytes), the same late flag, and after
pruning the same value and next change; the same merge of two customers' data. Streams arrive out of
order, late, with ties, with missing fields, and through the changelog's JSON form now and then.

The first piece of the native engine (issue 9); the core must be built (``python -m
streams.tools.build_native``, which deploy/local/bootstrap.sh runs): without it these tests fail
rather than skip."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from streams.engine import native_core
from streams.engine.features.runtime import FeatureRuntime
from tag_rules.compiler import FeatureDef

HOUR, DAY = 3_600_000, 86_400_000
WINDOWS: list[tuple[int | None, int | None]] = [(None, None), (HOUR, None), (DAY, HOUR), (10_000, 1_000),
                                                (7 * DAY, None)]
FIELDS: dict[str, list[str | None]] = {
    "count": [None, "sku"], "sum": ["amount"], "avg": ["amount"], "min": ["amount", "sku"], "max": ["amount", "sku"],
    "first": ["sku", "amount"], "last": ["sku", "amount"], "since_last": [None],
    "distinct_count": ["categories", "session_id", "amount"]}
SPECS = [(agg, field, w, r) for agg, fields in FIELDS.items() for field in fields for w, r in WINDOWS
         if not (agg == "since_last" and w is not None)]
THRESHOLDS = (60.0, 3600.5, 86400.0)


def core() -> Any:
    assert native_core.CORE is not None, (f"{native_core.CORE_REASON}: run `python -m streams.tools.build_native` "
                                          "(deploy/local/bootstrap.sh does)")
    return native_core.CORE


def pair(agg: str, field: str | None, window_ms: int | None, resolution_ms: int | None) -> tuple[FeatureRuntime, Any]:
    defn = FeatureDef(name="f", key="k", agg=agg, field=field, window_ms=window_ms, resolution_ms=resolution_ms,
                      sources=frozenset({"clickstream"}), where=None)
    thresholds = THRESHOLDS if agg == "since_last" else ()
    native = core().NativeFeature(agg, field, window_ms, resolution_ms, list(thresholds))
    return FeatureRuntime(defn, thresholds), native


def typed(x: Any) -> Any:
    """``x`` with every value's type beside it and pairs as tuples (the JSON form has lists)."""
    if isinstance(x, dict):
        return [(typed(k), typed(v)) for k, v in x.items()]
    if isinstance(x, (list, tuple)):
        return ("pair", tuple(typed(v) for v in x))
    return (type(x).__name__, x)


def same_data(py: Any, rs: Any) -> None:
    if isinstance(py, dict) and py and isinstance(next(iter(py)), str) and isinstance(rs, dict) and rs \
            and isinstance(next(iter(rs)), int):
        py = {int(k): v for k, v in py.items()}  # a decoded window not touched since: string keys
    assert typed(py) == typed(rs)
    assert orjson.dumps(py, option=orjson.OPT_NON_STR_KEYS) == orjson.dumps(rs, option=orjson.OPT_NON_STR_KEYS)


def event(rng: random.Random, ts_ms: int) -> dict[str, Any]:
    ev: dict[str, Any] = {"source": "clickstream", "ts_ms": ts_ms}
    roll = rng.random()
    if roll < 0.45:
        ev["amount"] = rng.randint(-50, 5_000)
    elif roll < 0.9:
        ev["amount"] = round(rng.uniform(0, 500), rng.choice((1, 2, 3)))
    elif roll < 0.95:
        ev["amount"] = None
    if rng.random() < 0.9:
        ev["sku"] = rng.choice(("A-1", "B-22", "C-333", "d'q", 'e"q', "a b", ""))
    if rng.random() < 0.85:
        ev["categories"] = rng.sample(("shoes", "bags", "toys", "food", "tools"), rng.randint(0, 3))
    if rng.random() < 0.9:
        ev["session_id"] = f"s{rng.randint(0, 40)}"
    return ev


def run_stream(rt: FeatureRuntime, nf: Any, rng: random.Random, n: int, window_ms: int | None) -> tuple[Any, Any, int]:
    """Folds ``n`` random events into both; checks every step; returns both data and the last now."""
    span = window_ms or DAY
    now = 1_700_000_000_000 + rng.randint(0, DAY)
    py: Any = None
    rs: Any = None
    for _ in range(n):
        now += rng.choice((0, 1, 17, 1_000, span // 50, span // 7, span))
        back = rng.choice((0, 0, 0, 1, span // 10, span // 2, span, 2 * span))  # late and out of order
        ts = now - rng.randint(0, back) if back else now
        ev = event(rng, ts)
        py, late_py = rt.fold(py, ev, now)
        rs, late_rs = nf.fold(rs, ev, now)
        assert late_py == late_rs
        same_data(py, rs)
        if rng.random() < 0.3:
            py, rs = rt.prune(py, now), nf.prune(rs, now)
            same_data(py, rs)
            assert typed(rt.value(py, now)) == typed(nf.value(rs, now))
            assert rt.next_change_ms(py, now) == nf.next_change_ms(rs, now)
        if rng.random() < 0.1:  # through the changelog: string bucket keys, lists for pairs
            py = orjson.loads(orjson.dumps(py, option=orjson.OPT_NON_STR_KEYS))
            rs = orjson.loads(orjson.dumps(py))
        later = now + rng.choice((1, span // 3, span, 3 * span))
        assert rt.next_change_ms(_copy(py), later) == nf.next_change_ms(rs, later)  # unpruned: expired entries skipped
        pruned_py, pruned_rs = rt.prune(_copy(py), later), nf.prune(_copy(rs), later)
        assert rt.next_change_ms(pruned_py, later) == nf.next_change_ms(pruned_rs, later)
    return py, rs, now


def _copy(x: Any) -> Any:
    return orjson.loads(orjson.dumps(x, option=orjson.OPT_NON_STR_KEYS)) if isinstance(x, dict) else x


@pytest.mark.parametrize(("agg", "field", "window_ms", "resolution_ms"), SPECS)
def test_native_feature_folds_reads_and_merges_as_python(agg: str, field: str | None, window_ms: int | None,
                                                          resolution_ms: int | None) -> None:
    rng = random.Random(f"{agg}/{field}/{window_ms}/{resolution_ms}")
    rt, nf = pair(agg, field, window_ms, resolution_ms)
    for _ in range(4):
        a_py, a_rs, now_a = run_stream(rt, nf, rng, rng.randint(1, 60), window_ms)
        b_py, b_rs, now_b = run_stream(rt, nf, rng, rng.randint(0, 60), window_ms)
        now = max(now_a, now_b)
        merged_py = rt.merge(_copy(a_py), _copy(b_py), now)
        merged_rs = nf.merge(a_rs, b_rs, now)
        same_data(merged_py, merged_rs)
        merged_py, merged_rs = rt.prune(merged_py, now), nf.prune(merged_rs, now)
        same_data(merged_py, merged_rs)
        assert typed(rt.value(merged_py, now)) == typed(nf.value(merged_rs, now))
        assert rt.next_change_ms(merged_py, now) == nf.next_change_ms(merged_rs, now)


def test_distinct_cap_keeps_the_newest_buckets_in_python_order() -> None:
    rng = random.Random(7)
    rt, nf = pair("distinct_count", "sku", 30 * DAY, None)
    py: Any = None
    rs: Any = None
    now = 1_700_000_000_000
    for i in range(2_600):
        now += rng.choice((0, 60_000, 3_600_000))
        sku = f"sku-{rng.randint(0, 3_000)}-{i % 7}"
        ev = {"source": "clickstream", "ts_ms": now - rng.randint(0, DAY), "sku": sku}
        py, _ = rt.fold(py, ev, now)
        rs, _ = nf.fold(rs, ev, now)
    assert len(py) == 1_000
    same_data(py, rs)


@pytest.mark.parametrize("agg", ["count", "distinct_count"])
def test_an_event_is_late_from_the_instant_its_bucket_leaves_the_window(agg: str) -> None:
    rt, nf = pair(agg, "sku", HOUR, 60_000)
    ev = {"source": "clickstream", "ts_ms": 59_999, "sku": "a"}
    for now in (3_659_999, 3_660_000):  # bucket 0 expires at (0 + 1) * 60,000 + 3,600,000
        py, rs = rt.fold(None, ev, now), nf.fold(None, ev, now)
        assert py[1] == rs[1] == (now == 3_660_000)
        same_data(py[0], rs[0])
        assert rt.next_change_ms(py[0], 0) == nf.next_change_ms(rs[0], 0) == (3_660_000 if py[0] else float("inf"))


def test_distinct_keys_of_numbers_are_pythons_repr() -> None:
    """A distinct count of numbers keys them by ``repr``: tiny, huge, negative, whole, ints and floats."""
    rng = random.Random(11)
    rt, nf = pair("distinct_count", "amount", None, None)
    py: Any = None
    rs: Any = None
    for i in range(3_000):
        mag = 10 ** rng.uniform(-12, 22)
        amount: Any = rng.choice((mag, -mag, float(int(mag)), int(mag) if mag < 2 ** 62 else 7, 0.0, -0.0, 1e16, 1e-5))
        ev = {"source": "clickstream", "ts_ms": i, "amount": amount}
        py, _ = rt.fold(py, ev, i)
        rs, _ = nf.fold(rs, ev, i)
    same_data(py, rs)


@pytest.mark.parametrize(("agg", "field", "ev", "why"), [
    ("sum", "amount", {"amount": 2 ** 70}, "integer past 64 bits"),
    ("sum", "sku", {"sku": "a"}, "not a number"),
    ("min", "amount", {"amount": True}, "not a number or a string"),
    ("sum", "amount", {"amount": {"x": 1}}, "not a JSON scalar"),
])
def test_what_it_cannot_do_as_python_is_refused(agg: str, field: str, ev: dict[str, Any], why: str) -> None:
    _, nf = pair(agg, field, None, None)
    with pytest.raises(NotImplementedError, match=why):
        nf.fold(None, {"source": "clickstream", "ts_ms": 1, **ev}, 2)


def test_an_integer_sum_that_overflows_64_bits_is_refused_not_wrapped() -> None:
    rt, nf = pair("sum", "amount", HOUR, None)
    data, _ = nf.fold(None, {"ts_ms": 1, "amount": 2 ** 62}, 2)
    with pytest.raises(NotImplementedError, match="past 64 bits"):
        nf.fold(data, {"ts_ms": 1, "amount": 2 ** 62}, 2)
    py, _ = rt.fold(None, {"source": "clickstream", "ts_ms": 1, "amount": 2 ** 62}, 2)
    assert rt.fold(py, {"source": "clickstream", "ts_ms": 1, "amount": 2 ** 62}, 2)[0] == {0: 2 ** 63}
