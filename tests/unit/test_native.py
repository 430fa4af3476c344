"""The compiled engine (streams/engine/native.py) is the pure-Python engine, faster.

The README's test command builds it (deploy/local/bootstrap.sh), so the whole suite runs it; here
the same rule sets and events go through both engines, each in a process of its own
(``TAGSTREAM_NATIVE=off`` / ``on``, tests/native_harness.py), and every tag change (with its
``change_id``) and every state's bytes after each step must agree: the reference rules, the shipped
retail rules (with identity merges of 20 pairs of customers), both 1,000-tag sets, and random rule
sets and events from the rules fuzz test.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.engine import native
from tests.unit.test_rules_fuzz import T0, events, rule_sets

REPO = Path(__file__).resolve().parents[2]


def harness(cases: list[dict[str, Any]], engine: str, **env: str) -> dict[str, Any]:
    mode = "on" if engine == "native" else "off"
    proc = subprocess.run([sys.executable, "-m", "tests.native_harness"], input=json.dumps(cases), cwd=REPO,
                          env={**os.environ, "TAGSTREAM_NATIVE": mode, **env}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(proc.stdout)
    assert out["engine"] == engine, out["reason"]
    return out


def assert_agree(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    py, nat = harness(cases, "python")["cases"], harness(cases, "native")["cases"]
    for i, (a, b) in enumerate(zip(py, nat, strict=True)):
        name = cases[i].get("path", f"random rule set {i}")
        assert a.get("evaluated") == b.get("evaluated"), name
        for cid, digest in a.get("customers", {}).items():
            assert b["customers"].get(cid) == digest, f"{name}: customer {cid} differs"
        assert a == b, name
    return py


def test_the_suite_runs_the_compiled_engine() -> None:
    """deploy/local/test.sh builds it first; without a C compiler the engine would be pure Python."""
    assert native.ENGINE == "native", (f"{native.REASON}: run `python -m streams.tools.build_native` "
                                       "(the README's test command does)")
    import streams.engine.tag_engine as tag_engine
    assert str(tag_engine.__file__).endswith(tuple(__import__("importlib.machinery").machinery.EXTENSION_SUFFIXES))


def test_both_engines_agree_on_the_shipped_and_benchmark_rule_sets() -> None:
    cases: list[dict[str, Any]] = [
        {"path": str(REPO / "benchmarks" / "reference_rules.yaml"), "count": 3000, "customers": 300},
        {"path": str(REPO / "tag_rules" / "retail.yaml"), "count": 3000, "customers": 300, "seed": 2, "merges": 20},
        {"path": str(REPO / "benchmarks" / "rules_1000_selective.yaml"), "count": 1500, "customers": 150},
        {"path": str(REPO / "benchmarks" / "rules_1000.yaml"), "count": 800, "customers": 100, "seed": 3},
    ]
    py = assert_agree(cases)
    assert all(len(c["customers"]) > 20 for c in py)
    # The comparison is sharp: one event fewer changes the digest of its customer.
    one_less = harness([{**cases[0], "count": 2999}], "python")["cases"][0]["customers"]
    assert sum(one_less.get(cid) != d for cid, d in py[0]["customers"].items()) == 1


@settings(max_examples=1, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(rule_sets(), min_size=40, max_size=40), st.data())
def test_both_engines_agree_on_random_rule_sets(docs: list[dict[str, Any]], data: st.DataObject) -> None:
    cases = [{"doc": doc, "start_ms": T0, "lateness": data.draw(st.sampled_from([None, 400 * 86_400_000])),
              "events": data.draw(st.lists(events(i, T0), min_size=5, max_size=25))}
             for i, doc in enumerate(docs)]
    py = assert_agree(cases)
    assert sum(c["compiled"] for c in py) >= 10


def test_a_build_of_other_sources_is_not_used(tmp_path: Path) -> None:
    """An edited engine module runs as Python until the next build (never a stale compiled one);
    ``TAGSTREAM_NATIVE=on`` then refuses to start, and a wrong value is a clear error."""
    probe = "import streams.engine.native as n, streams.engine.tag_engine as t; print(n.ENGINE, '|', n.REASON)"

    def run(mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "TAGSTREAM_NATIVE": mode, "TAGSTREAM_NATIVE_DIR": str(tmp_path)})

    (tmp_path / "0123456789abcdef" / "streams").mkdir(parents=True)  # a build of other sources
    auto = run("auto")
    assert auto.returncode == 0 and auto.stdout.startswith("python |") and "no native build" in auto.stdout
    strict = run("on")
    assert strict.returncode != 0 and "TAGSTREAM_NATIVE=on: no native build" in strict.stderr
    assert "build_native" in strict.stderr
    wrong = run("fast")
    assert wrong.returncode != 0 and "TAGSTREAM_NATIVE='fast': must be one of auto, on, off" in wrong.stderr
    off = run("off")
    assert off.returncode == 0 and off.stdout.strip() == "python | TAGSTREAM_NATIVE=off"


def test_a_worker_says_which_engine_it_runs(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A worker that wanted the compiled engine and has none warns at start (it is ~1.25x slower)."""
    from streams.app.worker import log_engine

    caplog.set_level(logging.INFO, logger="streams.app.worker")
    for engine, reason, level in (("native", "mypyc build 0123", logging.INFO),
                                  ("python", "TAGSTREAM_NATIVE=off", logging.INFO),
                                  ("python", "no native build for these sources in /x", logging.WARNING)):
        monkeypatch.setattr(native, "ENGINE", engine)
        monkeypatch.setattr(native, "REASON", reason)
        caplog.clear()
        log_engine()
        [record] = caplog.records
        assert record.levelno == level and reason in record.getMessage()
    monkeypatch.setattr(native, "ENGINE", "native")
    monkeypatch.setattr(native, "left_as_python", lambda: ["schemas.fast_decode"])
    caplog.clear()
    log_engine()
    assert [(r.levelno, "schemas.fast_decode runs as Python" in r.getMessage()) for r in caplog.records] == [
        (logging.INFO, False), (logging.WARNING, True)]


def test_compiled_modules_keep_their_module_names_final() -> None:
    """In compiled code a module-level name that is not ``Final`` is looked up in the module's
    dictionary at every use (``UNREAD`` cost ~3k instructions per event that way: benchmarks/RULES.md,
    session 25). Every assignment at the top of a compiled module is ``Final`` or a ``TypeAlias``."""
    import ast

    loose = []
    for module in native.MODULES:
        path = native.source(module)
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.AnnAssign):
                kind = ast.unparse(node.annotation).split("[", 1)[0]
                if kind in ("Final", "TypeAlias"):
                    continue
            elif not isinstance(node, ast.Assign):
                continue
            loose.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:60]}")
    assert not loose, "module-level names that are neither Final nor TypeAlias:\n" + "\n".join(loose)


def test_the_instruction_counts_collect_functions_the_build_has() -> None:
    """``benchmarks.engine_instructions`` collects by C name; a method moved to another class or module
    (``catch_up`` to due_times.py's ``DueTimes``) renames it, and callgrind then counts nothing there."""
    from benchmarks.engine_instructions import CATCH_UP, COLLECT

    assert native.ENGINE == "native", native.REASON
    assert (COLLECT, CATCH_UP) == ("CPyPy_tag_engine___TagEngine___process_event",
                                   "CPyPy_due_times___DueTimes___catch_up")
    from streams.engine import tag_engine

    build = Path(tag_engine.__file__).parents[2]  # <native dir>/<digest>/streams/engine/tag_engine.*.so
    (group,) = build.glob(f"{native.GROUP}__mypyc*.so")
    symbols = group.read_bytes()
    assert COLLECT.encode() in symbols and CATCH_UP.encode() in symbols


FAST_DECODE_DIFF = r"""
import importlib.machinery, importlib.util, json, random, sys
import orjson
import streams.engine  # chooses the compiled modules before schemas.fast_decode is imported
import schemas.fast_decode as compiled
from streams.engine import native
from streams.tools.generator import RetailGenerator
from tests.unit.test_fast_decode import BASES, SRC_TS, mutate

spec = importlib.util.spec_from_file_location("schemas.fast_decode_source", native.source("schemas.fast_decode"))
source = importlib.util.module_from_spec(spec)
spec.loader.exec_module(source)
records = [(e.source, e.value) for seed in (1, 2) for e in
           RetailGenerator(seed=seed, customers=500, bad_ratio=0.05, identity=True).take(6000)]
rng = random.Random("fast-native")
records += [(s, json.dumps(mutate(rng, BASES[s]), ensure_ascii=rng.random() < 0.3).encode())
            for s in ("clickstream", "pos", "orders") for _ in range(3000)]
taken = 0
for s, raw in records:
    a, b = compiled.fast_canonical(s, raw, SRC_TS), source.fast_canonical(s, raw, SRC_TS)
    assert (a is None) == (b is None), (s, raw[:300])
    if a is not None:
        taken += 1
        assert orjson.dumps(a) == orjson.dumps(b), (s, raw[:300])
        assert [type(v) for v in a[0].values()] == [type(v) for v in b[0].values()], (s, raw[:300])
print(json.dumps({"compiled": compiled.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)),
                  "source": source.__file__, "records": len(records), "taken": taken}))
"""


def test_the_compiled_fast_decoding_is_the_source() -> None:
    """Ingest's fast path (``schemas.fast_decode``, compiled with the engine) gives what its source gives,
    value for value and type for type, on the generator's records (good, broken, identity traffic)
    and on test_fast_decode's mutations of plain records; tests/unit/test_fast_decode.py holds the
    source to the models."""
    proc = subprocess.run([sys.executable, "-c", FAST_DECODE_DIFF], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TAGSTREAM_NATIVE": "on"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["compiled"] and out["source"].endswith("schemas/fast_decode.py")
    assert out["records"] == 21_000 and out["taken"] > 12_000, out


def test_fast_decoding_imported_first_stays_python_and_the_engine_is_still_compiled() -> None:
    """A process that imported ``schemas.fast_decode`` before the engine keeps that one module as
    Python (``native.OPTIONAL``); the engine modules are compiled all the same."""
    probe = ("import schemas.fast_decode as f; import streams.engine.native as n, streams.engine.tag_engine as t; "
             "print(n.ENGINE, f.__file__.endswith('.py'), t.__file__.endswith('.py'), *n.left_as_python())")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TAGSTREAM_NATIVE": "on"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["native", "True", "False", "schemas.fast_decode"]


def test_a_worker_says_whether_ingest_runs_through_the_rust_core(monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A worker that wanted the Rust core (``auto``) and has no build of it warns at start."""
    from streams.app.worker import log_core
    from streams.engine import native_core

    caplog.set_level(logging.INFO, logger="streams.app.worker")
    for core, reason, level in ((object(), "cargo build core-0123", logging.INFO),
                                (None, "TAGSTREAM_CORE=off", logging.INFO),
                                (None, "TAGSTREAM_NATIVE=off", logging.INFO),
                                (None, "no build of the Rust core for these sources in /x", logging.WARNING)):
        monkeypatch.setattr(native_core, "CORE", core)
        monkeypatch.setattr(native_core, "CORE_REASON", reason)
        caplog.clear()
        log_core()
        [record] = caplog.records
        assert record.levelno == level and reason in record.getMessage()


def test_the_rust_core_is_chosen_by_its_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from streams.engine import native_core

    monkeypatch.setenv("TAGSTREAM_CORE", "off")
    assert native_core.load() == (None, "TAGSTREAM_CORE=off")
    monkeypatch.delenv("TAGSTREAM_CORE")
    monkeypatch.setenv("TAGSTREAM_NATIVE", "off")
    assert native_core.load() == (None, "TAGSTREAM_NATIVE=off")
    monkeypatch.setenv("TAGSTREAM_CORE", "auto")  # the core's own setting wins
    monkeypatch.setenv("TAGSTREAM_NATIVE_DIR", str(tmp_path))  # no build there
    core, why = native_core.load()
    assert core is None and "python -m streams.tools.build_native" in why
    monkeypatch.setenv("TAGSTREAM_CORE", "on")
    with pytest.raises(ImportError, match="TAGSTREAM_CORE=on"):
        native_core.load()
    monkeypatch.setenv("TAGSTREAM_CORE", "yes")
    with pytest.raises(ValueError, match="TAGSTREAM_CORE='yes'"):
        native_core.load()
