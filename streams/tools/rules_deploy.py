"""``tagstream rules deploy PATH`` and ``tagstream rules status``: hot deploy from the command line.

deploy: the rule set is compiled first (a set that fails ``rules check`` is refused with its
``file:line:col`` errors and never reaches the topic), then published to ``<app id>-rules``; with
``--wait S`` it waits until every worker that reported in the last minute runs it.
status: the deployed version (the topic's last record) and what each worker reports it runs.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
import time
from pathlib import Path
from typing import Any

from streams.io.rules_topic import deployment_of, latest_deployment, publish, read_status
from streams.io.topics import RULES_TOPIC_CONFIG, ensure_topics, rules_topic_name
from streams.settings import Settings
from streams.tools.rule_loading import load_or_report
from tag_rules.loader import rule_files

ALIVE_MS = 60_000
"""A worker that has not reported for this long is listed as gone and not waited for."""


def deploy(settings: Settings, path: str, wait_s: float, by: str | None) -> int:
    rules = load_or_report(path, "refused: {n} error(s) in {path}; nothing was deployed")
    if rules is None:
        return 2
    files = {f.name: f.read_text(encoding="utf-8") for f in rule_files(Path(path))}
    try:
        d = deployment_of(files, rules.version, by or getpass.getuser())
    except ValueError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    ks, topic = settings.kafka, rules_topic_name(settings)

    async def run() -> int:
        await ensure_topics(ks.bootstrap_servers, [topic], 1, ks.replication_factor,
                            configs={topic: RULES_TOPIC_CONFIG}, client_options=ks.client_options())
        return await publish(ks.bootstrap_servers, topic, d, ks.client_options())

    offset = asyncio.run(run())
    print(f"deployed {rules.version} ({len(rules.features)} features, {len(rules.tags)} tags) to {topic} "
          f"at offset {offset}")
    if wait_s <= 0:
        return 0
    return _wait_for(settings, rules.version, wait_s)


def _wait_for(settings: Settings, version: str, wait_s: float) -> int:
    deadline = time.monotonic() + wait_s
    while True:
        workers = asyncio.run(_status(settings))
        alive = {w: s for w, s in workers.items() if _age_ms(s) < ALIVE_MS}
        behind = sorted(w for w, s in alive.items() if s.get("version") != version)
        if alive and not behind:
            print(f"all {len(alive)} worker(s) run {version}")
            return 0
        if time.monotonic() > deadline:
            print(f"after {wait_s:.0f} s, {len(behind)} of {len(alive)} worker(s) do not run {version} yet: "
                  f"{', '.join(behind) or '(no worker reported)'}", file=sys.stderr)
            return 1
        time.sleep(1.0)


def status(settings: Settings) -> int:
    ks = settings.kafka
    latest = asyncio.run(latest_deployment(ks.bootstrap_servers, rules_topic_name(settings), ks.client_options()))
    if latest is None:
        print(f"deployed: nothing yet (workers run TAGSTREAM_RULES_PATH; topic {rules_topic_name(settings)})")
    else:
        print(f"deployed: {latest.version} at offset {latest.offset}, {_ago(latest.deployed_at_ms)} ago"
              + (f" by {latest.deployed_by}" if latest.deployed_by else ""))
    workers = asyncio.run(_status(settings))
    if not workers:
        print("no worker has reported (workers report every 5 s to Redis)")
        return 0
    print(f"{'worker':<32} {'version':<28} {'since':>10} {'seen':>8}  state")
    for w, s in sorted(workers.items()):
        age = _age_ms(s)
        state = "gone" if age >= ALIVE_MS else (
            "current" if latest is None or s.get("version") == latest.version else "behind")
        print(f"{w:<32} {s.get('version')!s:<28} {_ago(s.get('since_ms', 0)):>10} {_ago(s.get('seen_ms', 0)):>8}"
              f"  {state}")
    return 0


async def _status(settings: Settings) -> dict[str, dict[str, Any]]:
    import redis.asyncio as aioredis

    rs = settings.redis
    client = aioredis.from_url(rs.url, **rs.client_options())
    try:
        return await read_status(client, settings.redis_key_prefix())
    finally:
        await client.aclose()


def _age_ms(status: dict[str, Any]) -> int:
    return int(time.time() * 1000) - int(status.get("seen_ms", 0))


def _ago(ms: int) -> str:
    s = max(0, int(time.time() - ms / 1000))
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"
