"""Column (d) of ``benchmarks.throughput``: the reference workload in Quix Streams (``benchmarks.quix_app``).

Quix Streams pins its own pydantic, confluent-kafka and rocksdict, so it runs from a virtual
environment of its own, made on first use (``.cache/venv-quix``, ~1 min; tagstream's ``.venv`` is
left alone): Quix at the version below, with the libraries ``quix_app`` and the rule compiler import.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from streams.tools.prom import total

from . import common, latency
from .audiences import audiences, compare_audiences
from .common import Load, Proc, free_port, log, state_size, watch_drain

QUIX_VERSION = "3.28.1"
VENV = common.REPO / ".cache" / "venv-quix"
PACKAGES = [f"quixstreams=={QUIX_VERSION}", "redis[hiredis]>=5.0", "prometheus-client>=0.20", "PyYAML>=6.0",
            "orjson>=3.9", "pydantic>=2.7", "pydantic-settings>=2.3"]
LATENCY = "quix_event_to_tag_latency_seconds"


def quix_python() -> Path:
    """The Quix environment's interpreter, made (or brought to ``PACKAGES``) when needed."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".packages"
    wanted = "\n".join(PACKAGES)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"(d) making the Quix Streams environment {VENV} (quixstreams {QUIX_VERSION}; once)")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], check=True)
    stamp.write_text(wanted)
    return python


def done(samples: common.Samples) -> float:
    """Events the Quix app is through with: folded into a customer's state, or anonymous."""
    return total(samples, "quix_events_done_total")


async def changelog_of(bootstrap: str, app_id: str, proc: Proc, timeout_s: float = 120.0) -> str:
    """The state store's changelog topic Quix made for the app (``changelog__<group>--…``)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-quix")
    await admin.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            names = [t for t in await admin.list_topics() if t.startswith(f"changelog__{app_id}")]
            if names:
                return sorted(names)[0]
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            await asyncio.sleep(0.5)
        raise RuntimeError(f"no changelog topic for {app_id} after {timeout_s:.0f} s:\n{proc.tail()}")
    finally:
        await admin.close()


async def run_quix(load: Load, events: int, rules: Path, redis_url: str, logs: Path, rates: list[float],
                   rate_seconds: float, customers: int, seed: int, input_customers: int, *, app_id: str,
                   reference: dict[str, set[bytes]] | None = None, engine: str = "naive",
                   column: str = "d", budget_s: float | None = None) -> dict[str, Any]:
    """Drains the backlog on ``load``'s topics, compares the audiences with ``reference`` (tagstream's
    after the same backlog), then runs the latency phases."""
    python = quix_python()
    port = free_port()
    label = f"({column}) quix"
    log(f"{label} Streams app {app_id} (engine: {engine}): fresh process, metrics on :{port}")
    env = {**os.environ, "PYTHONPATH": str(common.REPO)}
    proc = Proc("quix", [str(python), "-m", "benchmarks.quix_app", "--app-id", app_id, "--bootstrap", load.bootstrap,
                         "--topics", ",".join(load.topics.values()), "--tag-topic", f"{app_id}.tags",
                         "--rules", str(rules), "--redis-url", redis_url, "--redis-prefix", app_id,
                         "--metrics-port", str(port), "--state-dir", str(logs / f"state-{app_id}"),
                         "--engine", engine],
                env, logs / f"quix-{column}.log").start()
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        changelog = await changelog_of(load.bootstrap, app_id, proc)
        d = await watch_drain(proc, metrics_url=url, counter="quix_events_in_total", changelog=changelog,
                              bootstrap=load.bootstrap, events=events, done=done, label=label, budget_s=budget_s)
        log(f"{label}: drained; reading its state changelog")
        st = await state_size(load.bootstrap, changelog)
        res: dict[str, Any] = {
            "app_id": app_id, "events": d.events, "partial": d.partial, "seconds": d.seconds,
            "events_per_s": d.events_per_s, "cpu_s_per_million": d.cpu_s_per_million,
            "cpu_utilisation": d.cpu_utilisation, "peak_rss_mib": d.vm_hwm_bytes / 2**20,
            "state_bytes_per_customer": st["bytes_per_customer"], "state_customers": st["customers"],
            "changelog_records": st["changelog_records"], "startup_s": d.startup_s, "trace": d.trace,
            "quixstreams": QUIX_VERSION, "input_customers": input_customers, "engine": engine,
            "tag_changes": total(common.scrape_all(url), "quix_tag_changes_total"),
        }
        if d.partial:  # behind its own backlog: no audiences to compare, no latency to measure
            log(f"{label}: stopped after its budget; no audience check and no latency phases")
            return res
        res["customers_check"] = common.check_customers(label, st["customers"], input_customers)
        if reference is not None:
            res["tags_vs_c"] = compare_audiences(reference, audiences(redis_url, rules, app_id))
            t = res["tags_vs_c"]
            log(f"{label}: {t['identical']}/{t['tags']} audiences identical to tagstream's after the backlog")
        res["latency"] = [await latency.latency_phase(load, proc, url, changelog, rate, rate_seconds, customers,
                                                     seed + 1000 + i, label=f"({column})",
                                                     counter="quix_events_in_total", done=done, latency=LATENCY)
                          for i, rate in enumerate(rates)]
    finally:
        proc.stop()
    return res
