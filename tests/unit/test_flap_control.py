"""Flap control (docs/rules.md): hysteresis with enter/exit, min_duration and cooldown — compile
errors with positions, examples, the state codec, and properties over random event streams: no
add/remove pair closer than the bounds, the engine equals a reference model written here, the
timer fires at every gate, and incremental evaluation equals evaluating every tag."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.cli import main
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import Change, TagEngine
from tag_rules import RuleSetError, TagDef, compile_expr, load_rules
from tests.unit.engine_support import T0, event

S = 1000
M = 60 * S

FEATURES = """
features:
  - {name: n_1m, agg: count, window: 1m}
  - {name: s_10m, agg: sum, field: amount, window: 10m}
  - {name: since, agg: since_last}
"""


def compile_text(tmp_path: Path, tags: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(FEATURES + "tags:\n" + tags)
    return p


def errors_of(path: Path) -> list[str]:
    with pytest.raises(RuleSetError) as info:
        load_rules(path)
    return [str(e) for e in info.value.errors]


# -- compile-time checks ---------------------------------------------------------------------


@pytest.mark.parametrize("tag,needle", [
    ("{name: t, when: n_1m > 1, enter: n_1m > 2, exit: n_1m < 1}",
     "r.yaml:7:38: tag 't': enter: give either 'when' or 'enter'/'exit', not both"),
    ("{name: t, enter: n_1m > 2}", "r.yaml:7:22: tag 't': enter: 'enter' needs 'exit' too"),
    ("{name: t, exit: n_1m > 2}", "r.yaml:7:21: tag 't': exit: 'exit' needs 'enter' too"),
    ("{name: t, description: nothing}", "r.yaml:7: tag 't': a tag needs 'when' (or 'enter' and 'exit'"),
    ("{name: t, when: n_1m > 1, min_duration: -5m}", "r.yaml:7:45: tag 't': min_duration: invalid duration '-5m'"),
    ("{name: t, when: n_1m > 1, cooldown: 500ms}",
     "r.yaml:7:41: tag 't': cooldown: 500ms is shorter than the minimum, 1s"),
    ("{name: t, when: n_1m > 1, cooldown: 0s}", "cooldown: 0s is shorter than the minimum, 1s"),
    ("{name: t, when: n_1m > 1, min_duration: 3651d}", "min_duration: 3651d is longer than the maximum, 3650d"),
    ("{name: t, when: n_1m > 1, min_duration: 10}", "min_duration: Input should be a valid string"),
    ("{name: t, enter: n_1m > 1, exit: since * 2 > 5}", "tag 't': exit: 'since' is a time-since feature"),
    ("{name: t, enter: n_1m >, exit: n_1m < 1}", "r.yaml:7:22: tag 't': enter: invalid enter expression"),
])
def test_flap_control_mistakes_have_positions(tmp_path: Path, tag: str, needle: str) -> None:
    errs = errors_of(compile_text(tmp_path, f"  - {tag}\n"))
    assert any(needle in e for e in errs), errs


def test_every_flap_mistake_is_reported_at_once_and_by_rules_check(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    p = compile_text(tmp_path, "  - {name: a, enter: n_1m > 2, min_duration: 1x}\n"
                               "  - {name: b, when: n_1m > 2, exit: n_1m < 1, cooldown: 0s}\n")
    assert len(errors_of(p)) == 4
    assert main(["rules", "check", str(p)]) == 1
    out = capsys.readouterr().out
    assert "r.yaml:7:22: tag 'a': enter:" in out and "r.yaml:8:37: tag 'b': exit:" in out
    assert "min_duration: invalid duration '1x'" in out and "cooldown: 0s is shorter" in out


def test_conditions_and_thresholds_of_both_conditions_are_compiled(tmp_path: Path) -> None:
    rules = load_rules(compile_text(tmp_path, "  - {name: t, enter: n_1m >= 3, exit: since >= minutes(2), "
                                              "min_duration: 5m, cooldown: 1h}\n"))
    tag = rules.tags["t"]
    assert (tag.min_duration_ms, tag.cooldown_ms, tag.features) == (5 * M, 3600 * S, ("n_1m", "since"))
    assert [k for k, _ in tag.conditions()] == ["enter", "exit"]
    assert rules.since_thresholds() == {"since": (120.0,)}


# -- examples --------------------------------------------------------------------------------


def engine_for(tmp_path: Path, tags: str, **kw: Any) -> TagEngine:
    return TagEngine(load_rules(compile_text(tmp_path, tags)), dedup_horizon_ms=0, **kw)


def feed(eng: TagEngine, st_: CustomerState, at_ms: int, n: int = 1, amount: float = 1.0) -> list[Change]:
    out: list[Change] = []
    for i in range(n):
        out += eng.process_event(st_, event(ts_ms=at_ms, amount=amount, event_id=f"e{at_ms}-{i}"), at_ms).changes
    return out


def ops(changes: list[Change]) -> list[tuple[str, str, str, int]]:
    return [(c["tag"], c["op"], c["cause"], c["at_ms"]) for c in changes]


def test_hysteresis_enters_high_and_leaves_low(tmp_path: Path) -> None:
    eng = engine_for(tmp_path, "  - {name: h, enter: n_1m >= 3, exit: n_1m == 0}\n")
    s = CustomerState()
    assert feed(eng, s, T0, 2) == []
    assert ops(feed(eng, s, T0 + S)) == [("h", "add", "event", T0 + S)]
    # the two first views leave the 1m window at T0 + 61s: one view left, under the enter
    # threshold but not the exit one, so the tag stays; the last leaves at T0 + 62s: it goes
    assert eng.catch_up(s, "c1", T0 + 61 * S) == [] and eng.feature_values(s, T0 + 61 * S) == {"n_1m": 1}
    changes = eng.catch_up(s, "c1", T0 + 10 * M)
    assert ops(changes) == [("h", "remove", "expiry", T0 + 62 * S)]
    assert changes[0]["features"] == {"n_1m": 0}


def test_min_duration_holds_a_tag_and_removes_it_exactly_at_the_gate(tmp_path: Path) -> None:
    eng = engine_for(tmp_path, "  - {name: t, when: n_1m >= 1, min_duration: 5m}\n")
    s = CustomerState()
    assert ops(feed(eng, s, T0)) == [("t", "add", "event", T0)]
    assert s.due_ms is not None and s.due_ms < T0 + 5 * M  # the window slides first: nothing happens
    assert eng.catch_up(s, "c1", T0 + 5 * M - 1) == []
    assert s.due_ms == T0 + 5 * M and "t" in s.tags
    assert ops(eng.catch_up(s, "c1", T0 + 6 * M)) == [("t", "remove", "expiry", T0 + 5 * M)]
    assert s.due_ms is None and s.is_empty()


def test_min_duration_gate_keeps_a_tag_whose_exit_no_longer_holds(tmp_path: Path) -> None:
    eng = engine_for(tmp_path, "  - {name: t, when: n_1m >= 1, min_duration: 5m}\n")
    s = CustomerState()
    feed(eng, s, T0)
    feed(eng, s, T0 + 4 * M + 30 * S)  # back in the window just before the gate
    assert eng.catch_up(s, "c1", T0 + 5 * M) == [] and "t" in s.tags
    assert ops(eng.catch_up(s, "c1", T0 + 10 * M))[0][:3] == ("t", "remove", "expiry")


def test_cooldown_delays_reentry_to_its_end_and_is_forgotten_then(tmp_path: Path) -> None:
    eng = engine_for(tmp_path, "  - {name: t, when: n_1m >= 1, cooldown: 10m}\n")
    s = CustomerState()
    feed(eng, s, T0)
    removed = eng.catch_up(s, "c1", T0 + 3 * M)
    assert ops(removed)[0][:3] == ("t", "remove", "expiry")
    gone_at = removed[0]["at_ms"]
    assert s.removed == {"t": gone_at}
    assert feed(eng, s, T0 + 4 * M) == []  # within the cooldown: held back
    assert eng.catch_up(s, "c1", gone_at + 10 * M - 20 * S) == []
    assert feed(eng, s, gone_at + 10 * M - 20 * S) == []  # keeps the condition true until the gate
    assert s.due_ms == gone_at + 10 * M
    again = eng.catch_up(s, "c1", gone_at + 10 * M)
    assert ops(again) == [("t", "add", "expiry", gone_at + 10 * M)]
    assert s.removed == {}


def test_a_passed_cooldown_is_forgotten_so_the_state_can_be_deleted(tmp_path: Path) -> None:
    eng = engine_for(tmp_path, "  - {name: t, when: n_1m >= 1, cooldown: 10m}\n")
    s = CustomerState()
    feed(eng, s, T0)
    eng.catch_up(s, "c1", T0 + 3 * M)
    assert not s.is_empty() and s.features == {}
    eng.catch_up(s, "c1", T0 + 30 * M)
    assert s.is_empty() and s.due_ms is None


def test_a_gate_set_by_an_event_is_the_due_time_with_no_window_to_mask_it(tmp_path: Path) -> None:
    """The engine keeps the next gate between events (``state.next_change``) and moves it when an
    event adds or removes a gated tag. With a lifetime feature nothing else is ever due, so a gate
    it failed to move would never fire."""
    p = tmp_path / "r.yaml"
    p.write_text("features:\n  - {name: last, agg: last, field: amount}\ntags:\n"
                 "  - {name: sticky, when: last >= 5, min_duration: 5m}\n"
                 "  - {name: calm, when: last >= 5, cooldown: 3m}\n")
    eng = TagEngine(load_rules(p), dedup_horizon_ms=0)
    s = CustomerState()
    assert feed(eng, s, T0, amount=1.0) == [] and s.due_ms is None
    assert ops(feed(eng, s, T0 + M, amount=6.0)) == [("sticky", "add", "event", T0 + M),
                                                      ("calm", "add", "event", T0 + M)]
    assert s.due_ms == T0 + 6 * M  # sticky's min_duration ends
    assert ops(feed(eng, s, T0 + 2 * M, amount=1.0)) == [("calm", "remove", "event", T0 + 2 * M)]
    assert s.due_ms == T0 + 5 * M  # calm's cooldown ends first
    assert feed(eng, s, T0 + 3 * M, amount=6.0) == [] and s.due_ms == T0 + 5 * M
    assert ops(eng.catch_up(s, "c1", T0 + 7 * M)) == [("calm", "add", "expiry", T0 + 5 * M)]
    assert s.due_ms is None  # sticky's gate passed at T0 + 6m: still held, its condition holds again


def test_state_with_removals_round_trips_and_old_states_load() -> None:
    s = CustomerState({"k": 1}, {"a": T0}, "v1", T0 + 5, b"", {"b": T0 - 1})
    again = CustomerState.loads(s.dumps())
    assert again.removed == {"b": T0 - 1} and again == s
    # a state written before cooldowns existed has no "r": it loads with none
    old = b'{"f":{"k":1},"t":{"a":1800000000000},"v":"v1","d":1800000000005}'
    assert CustomerState.loads(old).removed == {}
    assert CustomerState.loads(old).dumps() == old  # and without removals the bytes are unchanged


def test_replaying_a_delayed_change_gives_the_same_change_id(tmp_path: Path) -> None:
    eng = engine_for(tmp_path, "  - {name: t, when: n_1m >= 1, min_duration: 5m}\n")
    runs = []
    for _ in range(2):
        s = CustomerState()
        feed(eng, s, T0)
        runs.append(eng.catch_up(s, "c1", T0 + 20 * M))
    assert runs[0] == runs[1] and runs[0][0]["at_ms"] == T0 + 5 * M


# -- properties ------------------------------------------------------------------------------

PROPERTY_TAGS = """\
  - {name: hyst, enter: n_1m >= 3, exit: n_1m <= 1}
  - {name: sticky, when: n_1m >= 2, min_duration: 5m}
  - {name: calm, when: s_10m >= 5, cooldown: 3m}
  - {name: both, enter: n_1m >= 2 or s_10m > 8, exit: n_1m == 0, min_duration: 2m, cooldown: 4m}
  - {name: quiet, when: since >= minutes(2), min_duration: 1m, cooldown: 90s}
  - {name: plain, when: s_10m >= 3}
"""

STEPS = st.lists(st.tuples(st.integers(0, 4 * M), st.integers(1, 3), st.sampled_from([1.0, 2.0, 4.0])),
                 min_size=1, max_size=30)


class Reference:
    """The documented semantics, written plainly: evaluate every tag at an instant."""

    def __init__(self, tags: list[TagDef]) -> None:
        self.tags = tags
        self.added: dict[str, int] = {}
        self.removed: dict[str, int] = {}

    def evaluate(self, values: dict[str, Any], at: int) -> list[tuple[str, str, int]]:
        out = []
        for t in self.tags:
            enter = bool(t.when(values))
            leave = bool(t.exit(values)) if t.exit is not None else not enter
            if t.name in self.added:
                if leave and at - self.added[t.name] >= t.min_duration_ms:
                    del self.added[t.name]
                    self.removed[t.name] = at
                    out.append((t.name, "remove", at))
            elif enter and at - self.removed.get(t.name, -10**18) >= t.cooldown_ms:
                self.added[t.name] = at
                out.append((t.name, "add", at))
        return out

    def next_gate(self, now: int) -> int | None:
        gates = [self.added[t.name] + t.min_duration_ms for t in self.tags if t.name in self.added]
        gates += [self.removed[t.name] + t.cooldown_ms for t in self.tags if t.name in self.removed]
        future = [g for g in gates if g > now]
        return min(future) if future else None


def drive(tmp_path: Path, steps: list[tuple[int, int, float]], incremental: bool) -> tuple[
        list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    """Runs ``steps`` (gap, events, amount) through an engine and the reference model at the same
    instants (every event and every due time); returns both change logs. Checks on the way that
    the engine's due time is never later than the reference's next gate."""
    eng = engine_for(tmp_path, PROPERTY_TAGS, incremental=incremental)
    ref = Reference(eng.tags)
    s = CustomerState()
    got: list[tuple[str, str, int]] = []
    want: list[tuple[str, str, int]] = []
    now = T0
    k = 0
    for gap, n, amount in [*steps, (40 * M, 0, 0.0)]:  # a long quiet tail: every gate passes
        now += gap
        while s.due_ms is not None and s.due_ms <= now:  # the worker's timer
            due = s.due_ms
            want += ref.evaluate(eng.feature_values(CustomerState.loads(s.dumps()), due), due)
            got += [(c["tag"], c["op"], c["at_ms"]) for c in eng.catch_up(s, "c1", due)]  # this due time alone
            s = CustomerState.loads(s.dumps())  # as the store hands it back
        for _ in range(n):
            k += 1
            got += [(c["tag"], c["op"], c["at_ms"]) for c in
                    eng.process_event(s, event(ts_ms=now, amount=amount, event_id=f"e{k}"), now).changes]
            want += ref.evaluate(eng.feature_values(CustomerState.loads(s.dumps()), now), now)
        gate = ref.next_gate(now)
        if gate is not None:
            assert s.due_ms is not None and s.due_ms <= gate, "the timer must fire at the gate"
    return got, want


@given(STEPS)
@settings(max_examples=120, deadline=None)
def test_engine_equals_the_reference_model_and_respects_the_bounds(
        tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[int, int, float]]) -> None:
    path = tmp_path_factory.mktemp("flap")
    got, want = drive(path, steps, incremental=False)
    assert got == want
    rules = load_rules(path / "r.yaml")
    for name, tag in rules.tags.items():
        mine = [(op, at) for t, op, at in got if t == name]
        for (op1, at1), (op2, at2) in itertools.pairwise(mine):
            assert op1 != op2, "adds and removes alternate"
            bound = tag.min_duration_ms if op1 == "add" else tag.cooldown_ms
            assert at2 - at1 >= bound, (name, op1, at1, op2, at2)


@given(STEPS)
@settings(max_examples=80, deadline=None)
def test_incremental_evaluation_equals_full_with_flap_control(
        tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[int, int, float]]) -> None:
    path = tmp_path_factory.mktemp("flapinc")
    assert drive(path, steps, incremental=True) == drive(path, steps, incremental=False)


_GATE_TAGS = [TagDef(f"t{i}", compile_expr("a >= 1", names=("a",)), ("a",), min_duration_ms=md, cooldown_ms=cd)
              for i, (md, cd) in enumerate([(0, 0), (60, 0), (0, 90), (30, 120), (0, 0), (10, 10)])]


@given(st.dictionaries(st.sampled_from([t.name for t in _GATE_TAGS] + ["gone"]), st.integers(0, 300)),
       st.dictionaries(st.sampled_from([t.name for t in _GATE_TAGS] + ["gone"]), st.integers(0, 300)),
       st.integers(0, 400))
@settings(max_examples=400, deadline=None)
def test_gates_equal_next_gate_ms(held: dict[str, int], removed: dict[str, int], now: int) -> None:
    from streams.engine.flap import Gates, next_gate_ms

    gated = [t for t in _GATE_TAGS if t.flap_controlled]
    assert Gates(gated).next_ms(held, removed, now) == next_gate_ms(gated, held, removed, now)
