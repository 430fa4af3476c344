"""Hot deploy on the real stack: two workers under load switch rule sets without a restart,
every event still counts once (feature values equal the engine's), the tags follow the new
rules, and `tagstream rules status` shows both workers on the new version."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from streams.tools.generator import RetailGenerator

from .conftest import Stack, WorkerProc, free_port
from .faultcheck import RULES, await_same_state, reference
from .test_faults import final_tags, processed


def cli(w: WorkerProc, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env=w.env(), capture_output=True,
                          text=True, timeout=timeout)


def new_rules(folder: Path) -> Path:
    """The fault-test rules with a lower big_spender threshold and one tag more (same features)."""
    folder.mkdir()
    text = (RULES / "lifetime.yaml").read_text()
    text = text.replace("version: it-lifetime-2", "version: it-lifetime-3").replace("spend >= 500", "spend >= 300")
    (folder / "lifetime.yaml").write_text(text + "  - {name: chatty, when: events >= 20}\n")
    return folder


def test_hot_deploy_under_load_switches_every_worker_and_counts_every_event_once(stack: Stack,
                                                                                   tmp_path: Path) -> None:
    events = [e for e in RetailGenerator(seed=21, customers=150).take(4000) if e.valid]
    v3 = new_rules(tmp_path / "v3")
    want_features, want_tags = reference(events, rules=v3)
    assert any("chatty" in t for t in want_tags.values())
    name = f"deploy-{uuid.uuid4().hex[:6]}"
    ports = [free_port(), free_port()]
    a, b = (WorkerProc(stack, name, rules=RULES, instance=str(i + 1),
                       extra_env={"TAGSTREAM_METRICS__PORT": str(ports[i]), "TAGSTREAM_STORE": "rocksdb://"})
            for i in range(2))
    a.start()
    b.start()
    try:
        refused = cli(a, "rules", "deploy", str(tmp_path / "missing.yaml"))
        assert refused.returncode == 2 and "nothing was deployed" in refused.stderr, refused
        by_source: dict[str, list[bytes]] = {}
        for e in events:
            by_source.setdefault(e.source, []).append(e.value)
        for s, values in by_source.items():
            a.produce(s, values[: len(values) // 2])
        deadline = time.monotonic() + 120
        while True:  # both workers are busy
            try:
                if processed(ports[0]) + processed(ports[1]) >= len(events) // 4:
                    break
            except OSError:  # a worker's metrics endpoint is not up yet
                pass
            assert time.monotonic() < deadline, a.tail() + b.tail()
            time.sleep(0.05)
        from streams.io.rules_topic import workers_key

        while a.redis().hlen(workers_key(a.prefix)) < 2:  # --wait waits for the workers that reported
            assert time.monotonic() < deadline, a.tail() + b.tail()
            time.sleep(0.2)
        deployed = cli(a, "rules", "deploy", str(v3), "--wait", "90")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr + a.tail() + b.tail()
        assert "all 2 worker(s) run it-lifetime-3" in deployed.stdout
        for s, values in by_source.items():
            a.produce(s, values[len(values) // 2:])
        await_same_state(a, want_features, want_tags, lambda: final_tags(a))
        status = cli(a, "rules", "status")
        assert status.returncode == 0, status.stderr
        lines = [ln for ln in status.stdout.splitlines() if "it-lifetime-3" in ln and ln.rstrip().endswith("current")]
        assert len(lines) == 2, status.stdout
        changes = [orjson.loads(r.value) for r in a.consume("tags", until=lambda rs: len(rs) > 0)]
        causes: dict[str, Any] = {}
        for c in changes:
            causes[c["cause"]] = causes.get(c["cause"], 0) + 1
        assert causes.get("rule_change"), causes  # customers tagged by the switch itself
    finally:
        a.stop()
        b.stop()
