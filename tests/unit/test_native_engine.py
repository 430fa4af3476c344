"""The tag engine in the Rust core (``native/src/engine/``, ``streams/engine/native_engine.py``)
against the Python engine: after every event, due time and reload, the same tag changes (with their
``change_id``s), late and duplicate flags, due time and state bytes. On random scripts (late,
out-of-order, duplicated events, ticks, states reloaded from their bytes) over the property rules of
tests/unit/test_engine_incremental.py, on random rule sets, and on the shipped rule sets over the
generator's traffic. What it cannot run is said (rule sets) or refused (states).

The native engine (issue 9; on the worker's path through streams/app/customer_core.py); the core must be built
(``python -m streams.tools.build_native``, which deploy/local/bootstrap.sh runs): without it these
tests fail rather than skip."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine import native_core
from streams.engine.features.state import CustomerState
from streams.engine.native_engine import native_engine, unsupported
from streams.engine.tag_engine import TagEngine
from tag_rules import load_rules

from .engine_support import T0, D, H, customer_stream, event
from .test_engine_incremental import INCREMENTAL_RULES, KINDS, PROPERTY_RULES


def core() -> Any:
    assert native_core.CORE is not None, (f"{native_core.CORE_REASON}: run `python -m streams.tools.build_native` "
                                          "(deploy/local/bootstrap.sh does)")
    return native_core.CORE


class Pair:
    """One customer through both engines; ``step`` asserts they agree."""

    def __init__(self, py: TagEngine, native: Any, customer: str = "c1") -> None:
        self.py, self.native, self.customer = py, native, customer
        self.s_py = CustomerState()
        self.s_rs = native.state()

    def event(self, ev: dict[str, Any], now: int) -> list[Any]:
        a = self.py.process_event(self.s_py, ev, now)
        changes, late, duplicate = self.native.process_event(self.s_rs, orjson.dumps(ev), now)
        assert changes == a.changes
        assert (late, duplicate) == (a.late, a.duplicate)
        self.same()
        return changes

    def tick(self, now: int) -> list[Any]:
        a = self.py.catch_up(self.s_py, self.customer, now)
        assert self.native.catch_up(self.s_rs, self.customer, now) == a
        self.same()
        return a

    def reload(self) -> None:
        self.s_py = CustomerState.loads(self.s_py.dumps())
        self.s_rs = self.native.state(self.native.dumps(self.s_rs))
        self.same()

    def same(self) -> None:
        assert self.s_rs.due_ms == self.s_py.due_ms
        assert self.native.dumps(self.s_rs) == self.s_py.dumps()


def engines(tmp_path: Path, text: str, **kw: Any) -> tuple[TagEngine, Any]:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    py = TagEngine(load_rules(path), **kw)
    return py, native_engine(py)


SCRIPT = st.lists(st.one_of(
    st.tuples(st.just("event"), st.integers(0, 3 * D), st.sampled_from(KINDS), st.sampled_from([1.0, 3.0, 7.0, 2]),
              st.sampled_from(["x", "y", "z"]), st.integers(0, 5)),
    st.tuples(st.just("tick"), st.integers(0, 3 * D)),
    st.tuples(st.just("reload"), st.just(0))), min_size=1, max_size=40)


@pytest.mark.parametrize("rules", [INCREMENTAL_RULES, PROPERTY_RULES], ids=["incremental", "property"])
@given(steps=SCRIPT)
@settings(max_examples=150, deadline=None)
def test_native_engine_equals_python_on_random_scripts(tmp_path_factory: pytest.TempPathFactory, rules: str,
                                                       steps: list[Any]) -> None:
    py, native = engines(tmp_path_factory.mktemp("n"), rules, allowed_lateness_ms=2 * D)
    pair = Pair(py, native)
    now = T0
    for step in steps:
        now += step[1] // 40
        if step[0] == "reload":
            pair.reload()
        elif step[0] == "tick":
            pair.tick(now)
        else:
            _, dt, (source, typ), amount, cat, dup = step
            pair.event(event(source=source, typ=typ, ts_ms=now - dt // 10, amount=amount, categories=[cat],
                             event_id=f"e{dup}-{dt}"), now)


@pytest.mark.parametrize("rules_path", ["tag_rules/retail.yaml", "benchmarks/reference_rules.yaml",
                                        "benchmarks/expiry_rules.yaml"])
def test_native_engine_equals_python_on_the_shipped_rule_sets(rules_path: str) -> None:
    py = TagEngine(load_rules(rules_path))
    native = native_engine(py)
    pairs: dict[str, Pair] = {}
    clock: dict[str, int] = {}  # the worker's clock never goes back (per customer here)
    n_changes = 0
    for i, (cid, ev, now) in enumerate(customer_stream(seed=11, customers=40, step_ms=90_000.0, n=4000)):
        pair = pairs.setdefault(cid, Pair(py, native, cid))
        if i % 97 == 0:
            pair.reload()
        now = max(now, clock.get(cid, now))
        if i % 13 == 0:
            now += rng_days(i) * D  # a quiet spell: due times walked, then the event arrives late
            pair.tick(now)
        clock[cid] = now
        n_changes += len(pair.event(ev, now))
    assert n_changes > 100  # the stream really moved tags


def rng_days(i: int) -> int:
    return (i * 7) % 20


AGGS = [("count", None), ("sum", "amount"), ("max", "amount"), ("min", "amount"), ("avg", "amount"),
        ("distinct_count", "categories"), ("last", "amount"), ("first", "channel"), ("since_last", None)]
WINDOWS = [None, "10m", "1h", "24h", "7d"]
FILTERS = [None, 'type == "product_view"', 'type in ("sale", "paid")', "amount > 5", 'channel == "web" or amount >= 3']
SOURCES = [None, "[clickstream]", "[pos, orders]", "[orders]"]


def random_rules(rng: random.Random) -> str:
    feats: list[tuple[str, str]] = []
    lines = ["version: r1", "features:"]
    for i in range(rng.randint(2, 8)):
        agg, field = rng.choice(AGGS)
        window = None if agg == "since_last" else rng.choice(WINDOWS)
        parts = [f"name: f{i}", f"agg: {agg}"]
        if field:
            parts.append(f"field: {field}")
        if window:
            parts.append(f"window: {window}")
        src = rng.choice(SOURCES)
        if src:
            parts.append(f"sources: {src}")
        flt = rng.choice(FILTERS)
        if flt:
            parts.append(f"where: '{flt}'")
        lines.append("  - {" + ", ".join(parts) + "}")
        feats.append((f"f{i}", agg))
    lines.append("tags:")
    for j in range(rng.randint(1, 8)):
        terms = []
        for _ in range(rng.randint(1, 3)):
            name, agg = rng.choice(feats)
            if agg == "since_last":
                terms.append(f"{name} {rng.choice(['>=', '<'])} {rng.choice(['minutes(30)', 'hours(2)', 'days(1)'])}")
            elif agg == "last" or agg == "first":
                terms.append(f"{name} == " + rng.choice(["null", "3", '"web"']))
            else:
                op, constant = rng.choice([">=", ">", "<", "==", "!="]), rng.choice(["0", "1", "2", "5", "2.5"])
                terms.append(f"{name} {op} {constant}")
        when = f" {rng.choice(['and', 'or'])} ".join(terms)
        if rng.random() < 0.2:
            when = f"not ({when})"
        lines.append(f"  - {{name: t{j}, when: '{when}'}}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(12))
def test_native_engine_equals_python_on_random_rule_sets(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    text = random_rules(rng)
    py, native = engines(tmp_path, text, allowed_lateness_ms=rng.choice([None, 2 * H]),
                         dedup_horizon_ms=rng.choice([0, D]))
    pairs: dict[str, Pair] = {}
    now = T0
    for i in range(600):
        now += rng.choice((0, 1_000, 60_000, 10 * 60_000, 2 * H))
        cid = f"c{rng.randint(0, 5)}"
        pair = pairs.setdefault(cid, Pair(py, native, cid))
        step = rng.random()
        if step < 0.05:
            pair.reload()
        elif step < 0.15:
            pair.tick(now)
        else:
            source, typ = rng.choice(KINDS)
            pair.event(event(source=source, typ=typ, customer_id=cid, ts_ms=now - rng.choice((0, 0, 5_000, 3 * H)),
                             amount=rng.choice((None, 1, 2.5, 3, 7.25, 12)),
                             categories=rng.sample("xyz", rng.randint(0, 2)),
                             channel=rng.choice((None, "web", "app")), event_id=f"e{i % 400}"), now)


def test_what_it_cannot_run_is_said(tmp_path: Path) -> None:
    py = TagEngine(load_rules("tag_rules/examples/sequences.yaml"))
    assert unsupported(py) is not None and "sequence or absence" in str(unsupported(py))
    with pytest.raises(ValueError, match="cannot run these rules: sequence or absence features"):
        native_engine(py)
    hysteresis = """
features:
  - {name: n, agg: count, window: 1h}
tags:
  - {name: t, enter: n >= 3, exit: n < 1}
"""
    path = tmp_path / "h.yaml"
    path.write_text(hysteresis)
    assert unsupported(TagEngine(load_rules(path))) == "tags with hysteresis or flap control: t"


def test_a_state_it_cannot_hold_is_refused_not_changed(tmp_path: Path) -> None:
    _, native = engines(tmp_path, INCREMENTAL_RULES)
    other_rules = CustomerState(features={"f" * 16: 3}, rule_version="other")
    with pytest.raises(NotImplementedError, match="feature of other rules"):
        native.state(other_rules.dumps())
    s = CustomerState(rule_version="v0", tags={"browsing": T0})
    n = native.state(s.dumps())
    with pytest.raises(NotImplementedError, match="state of other rules"):
        native.process_event(n, orjson.dumps(event()), T0)
    with pytest.raises(NotImplementedError, match="cooldowns, a backfill or a move"):
        native.state(CustomerState(removed={"t": T0}).dumps())


def test_a_state_is_its_engines_and_a_copy_leaves_it_as_it_was(tmp_path: Path) -> None:
    """What the customer stage relies on (``CoreTagEngine``, streams/app/customer_core.py): a state
    folds only under the engine that made it (another engine's, even of the same rules, is refused:
    the feature layout is the engine's); a copy folds without touching the original; the state reads
    like a ``CustomerState`` (due and expiry times, rule version, emptiness, its own bytes)."""
    py, native = engines(tmp_path, INCREMENTAL_RULES)
    _, other = engines(tmp_path, INCREMENTAL_RULES)
    s = native.state()
    assert s.is_empty() and native.owns(s) and not other.owns(s)
    native.process_event(s, orjson.dumps(event(event_id="a")), T0)
    before = s.dumps()
    assert before == native.dumps(s) and not s.is_empty() and s.rule_version == py.version
    c = s.copy()
    native.process_event(c, orjson.dumps(event(event_id="b", ts_ms=T0 + 1)), T0 + 1)
    assert s.dumps() == before and c.dumps() != before
    with pytest.raises(NotImplementedError, match="another engine"):
        other.process_event(s, orjson.dumps(event(event_id="c")), T0)
    with pytest.raises(NotImplementedError, match="another engine"):
        other.catch_up(s, "c1", T0 + H)
    assert s.dumps() == before
    s.expires_ms = T0 + D
    mirror = CustomerState.loads(before)
    mirror.expires_ms = T0 + D
    assert s.expires_ms == T0 + D and s.dumps() == mirror.dumps() and s.due_ms == mirror.due_ms
    assert s.moved is None and s.tags == mirror.tags


BATCHES = st.lists(st.lists(st.tuples(st.integers(0, 3 * D), st.sampled_from(KINDS), st.sampled_from([1.0, 3.0, 2]),
                                      st.sampled_from(["x", "y"]), st.integers(0, 4)), min_size=1, max_size=6),
                   min_size=1, max_size=12)


def batch_events(batch: list[Any], now: int, *, src_ts: bool = False) -> list[dict[str, Any]]:
    """One drawn batch of ``BATCHES`` as events at ``now`` (``src_ts``: with a source timestamp)."""
    return [event(source=source, typ=typ, ts_ms=now - dt // 10, amount=amount, categories=[cat], event_id=f"e{dup}",
                  **({"src_ts_ms": now - dt // 10 + 7} if src_ts else {}))
            for dt, (source, typ), amount, cat, dup in batch]


@given(batches=BATCHES)
@settings(max_examples=120, deadline=None)
def test_a_batch_of_events_folded_in_one_call_equals_python_event_by_event(
        tmp_path_factory: pytest.TempPathFactory, batches: list[Any]) -> None:
    """``fold_events`` (the customer stage's call per customer and batch: streams/app/customers.py)
    against the Python engine folding the same events one by one at the same instant: the same
    changes in order, each with its event's source timestamp (None for a due change), the counts per
    source (events, duplicates, late), the state bytes."""
    py, native = engines(tmp_path_factory.mktemp("b"), INCREMENTAL_RULES, allowed_lateness_ms=2 * D)
    s_py, s_rs = CustomerState(), native.state()
    now = T0
    for batch in batches:
        now += batch[0][0] // 20
        events = batch_events(batch, now, src_ts=True)
        want: list[Any] = []
        counts: dict[str, list[int]] = {}
        for ev in events:
            out = py.process_event(s_py, ev, now)
            want += [(c, ev["src_ts_ms"] if c["cause"] == "event" else None) for c in out.changes]
            n = counts.setdefault(ev["source"], [0, 0, 0])
            n[0] += 1
            n[1] += out.duplicate
            n[2] += out.late
        got, got_counts = native.fold_events(s_rs, [orjson.dumps(ev) for ev in events], now)
        assert got == want
        assert {source: [e, d, la] for source, e, d, la in got_counts} == counts
        assert native.dumps(s_rs) == s_py.dumps() and s_rs.due_ms == s_py.due_ms


def test_split_gives_each_items_bytes_key_and_kind_as_decode_envelope_reads_them() -> None:
    """``NativeEngine.split`` (the stage's grouping with the core: streams/app/customer_batches.py)
    against ``decode_envelope`` on envelopes of every kind of item and on records that are not
    envelopes (the same refusals, as ValueError)."""
    from streams.app.envelope import EnvelopeBuilder, decode_envelope

    split = core().NativeEngine.split
    items = [event(customer_id="c1"), event(customer_id="cé\"x"), {"customer_id": "c1", "tick": T0},
             {"customer_id": "c2", "tick": T0, "reeval": True}, {**event(customer_id="c3"), "via": "user:u"},
             {**event(customer_id="c3"), "bf": {"keys": [], "from": {}}}, {"customer_id": "c4", "erase": {}},
             {"customer_id": "c4", "absorb": {"x": 1}}, {"customer_id": "c5", "merge": {}},
             {"customer_id": "c6", "nested": {"tick": 1, "customer_id": 5}}]
    b = EnvelopeBuilder(1)
    for obj in items:
        b.add(obj["customer_id"].encode(), orjson.dumps(obj))
    ((_, value),) = list(b.records())
    got = split(value)
    assert [orjson.loads(raw) for _, raw, _ in got] == decode_envelope(value) == items
    assert [key for key, _, _ in got] == [obj["customer_id"].encode() for obj in items]
    assert [plain for _, _, plain in got] == [True, True] + [False] * 7 + [True]
    assert split(orjson.dumps(items[0])) == [(b"c1", orjson.dumps(items[0]), True)]  # the old one-event record
    for bad in (b"", b"[1]", b"5", b"[{", b'[{"customer_id": null}]', b'{"event_id": "e"}', b"[{}]", b"null"):
        with pytest.raises(ValueError):
            decode_envelope(bad)
        with pytest.raises(ValueError):
            split(bad)


@given(batches=BATCHES)
@settings(max_examples=60, deadline=None)
def test_events_folded_only_equal_python_fold_only_and_the_evaluation_after(
        tmp_path_factory: pytest.TempPathFactory, batches: list[Any]) -> None:
    """``fold_events(..., evaluate=False)`` (an anonymous visitor whose tags are not published, with
    identity resolution on) against ``TagEngine.fold_only`` event by event: no changes, the same
    counts and state bytes (no due time, the rule version kept); then one evaluated event on both
    (a full evaluation after the folds) gives the same changes."""
    py, native = engines(tmp_path_factory.mktemp("f"), INCREMENTAL_RULES, allowed_lateness_ms=2 * D)
    s_py, s_rs = CustomerState(), native.state()
    now = T0
    for batch in batches:
        now += batch[0][0] // 20
        events = batch_events(batch, now)
        dups = sum(py.fold_only(s_py, ev, now).duplicate for ev in events)
        got, counts = native.fold_events(s_rs, [orjson.dumps(ev) for ev in events], now, False)
        assert got == [] and sum(c[2] for c in counts) == dups and sum(c[1] for c in counts) == len(events)
        assert native.dumps(s_rs) == s_py.dumps() and s_rs.due_ms is None
    last = event(event_id="last", ts_ms=now)
    want = py.process_event(s_py, last, now).changes
    got, _ = native.fold_events(s_rs, [orjson.dumps(last)], now)
    assert [c for c, _ in got] == want
    assert native.dumps(s_rs) == s_py.dumps()
