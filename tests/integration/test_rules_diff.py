"""`tagstream rules diff NEW` against a real worker's changelog: the per-tag counts equal what the
engine computes in-process on the same input, and nothing is published (Redis and the tag topic
are exactly as before)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from streams.tools.generator import RetailGenerator

from .conftest import REPO, Stack, WorkerProc, text
from .faultcheck import RULES, await_same_state, reference
from .test_faults import CUSTOMERS, final_tags
from .test_redis_outage import produce_events

NEW_THRESHOLD = 300


def new_rules(tmp_path: Path) -> Path:
    """The fault-test rules with big_spender's threshold lowered, browser removed, and a tag over a
    new feature (carts: no state in the worker's changelog yet)."""
    src = (RULES / "lifetime.yaml").read_text()
    changed = (src.replace("version: it-lifetime-2", "version: it-lifetime-diff")
               .replace("spend >= 500", f"spend >= {NEW_THRESHOLD}")
               .replace("  - {name: browser, when: views >= 10}\n", "")
               .replace("tags:\n", '  - {name: carts, agg: count, where: type == "add_to_cart"}\ntags:\n'
                                   "  - {name: cartless_buyer, when: carts == 0 and purchases >= 1}\n"))
    assert changed.count("cartless_buyer") == 1 and "browser" not in changed and "500" not in changed
    path = tmp_path / "new.yaml"
    path.write_text(changed)
    return path


def redis_snapshot(w: WorkerProc) -> dict[str, Any]:
    """Every tag hash and audience set of the worker (not its rules-status heartbeat, which the
    worker itself refreshes every few seconds: streams/io/rules_topic.py workers_key)."""
    from streams.io.rules_topic import workers_key

    r = w.redis()
    out: dict[str, Any] = {}
    for key in r.scan_iter(f"{w.prefix}:*"):
        k = text(key)
        if k == workers_key(w.prefix):
            continue
        kind = text(r.type(k))  # hashes (tags), sets (audiences), strings (partitions' fences)
        out[k] = r.hgetall(k) if kind == "hash" else r.get(k) if kind == "string" else sorted(r.smembers(k))
    return out


def end_offsets(w: WorkerProc, which: str) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer

    async def run() -> dict[int, int]:
        # no group: a subscribed consumer is assigned every partition of the topic
        c = AIOKafkaConsumer(w.topic(which), bootstrap_servers=w.stack.bootstrap, enable_auto_commit=False)
        await c.start()
        try:
            deadline = time.monotonic() + 30
            while not c.assignment():
                assert time.monotonic() < deadline, f"no partitions of {w.topic(which)}"
                await asyncio.sleep(0.1)
            return {tp.partition: o for tp, o in (await c.end_offsets(sorted(c.assignment()))).items()}
        finally:
            await c.stop()

    return asyncio.run(run())


def diff(w: WorkerProc, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", "rules", "diff", str(path), *args],
                          env=w.env(), cwd=REPO, capture_output=True, text=True, timeout=180)


def test_rules_diff_reports_what_the_engine_computes_and_publishes_nothing(stack: Stack, tmp_path: Path) -> None:
    events = [e for e in RetailGenerator(seed=31, customers=CUSTOMERS).take(3000) if e.valid]
    features, tags = reference(events)
    holders = {t: {c for c, held in tags.items() if t in held} for t in
               ("big_spender", "frequent", "omnichannel", "explorer", "browser", "odd_events", "odd_purchases")}
    big_new = {c for c, f in features.items() if f["spend"] >= NEW_THRESHOLD}
    cartless = {c for c, f in features.items() if f["purchases"] >= 1}  # carts reads 0: no backfill
    want: dict[str, tuple[set[str], set[str], set[str]]] = {t: (set(), set(), h) for t, h in holders.items()}
    want |= {"big_spender": (big_new - holders["big_spender"], holders["big_spender"] - big_new,
                             big_new & holders["big_spender"]),
             "browser": (set(), holders["browser"], set()), "cartless_buyer": (cartless, set(), set())}
    assert want["big_spender"][0] and holders["browser"] and cartless  # the input exercises every case

    w = WorkerProc(stack, f"rules-diff-{uuid.uuid4().hex[:6]}", rules=RULES).start()
    try:
        produce_events(w, events)
        await_same_state(w, features, tags, lambda: final_tags(w))
        redis_before, tags_before = redis_snapshot(w), end_offsets(w, "tags")
        new = new_rules(tmp_path)

        done = diff(w, new, "--json", "--samples", "3")
        assert done.returncode == 0, done.stderr
        assert "records read" in done.stderr  # progress on stderr, the report alone on stdout
        report = orjson.loads(done.stdout)
        got = {t["tag"]: (t["added"]["count"], t["removed"]["count"], t["unchanged"]["count"])
               for t in report["tags"]}
        assert got == {t: tuple(len(s) for s in v) for t, v in want.items()}
        by_tag = {t["tag"]: t for t in report["tags"]}
        assert by_tag["big_spender"]["added"]["samples"] == sorted(want["big_spender"][0])[:3]
        assert by_tag["browser"]["status"] == "only in old"
        assert by_tag["cartless_buyer"]["status"] == "only in new"
        assert by_tag["cartless_buyer"]["needs_backfill"] == {"carts": "new"}
        assert report["customers"] == len(features) and report["drift"]["count"] == 0
        assert report["rule_versions"] == {"it-lifetime-2": len(features)}

        table = diff(w, new, "--quiet")
        assert table.returncode == 0 and table.stderr == "", table.stderr
        assert "cartless_buyer" in table.stdout and "needs backfill: carts (new)" in table.stdout

        for _ in range(2):  # the second time too: looking the topic up did not auto-create it
            other = subprocess.run([sys.executable, "-m", "streams.cli", "rules", "diff", str(new)],
                                   env={**w.env(), "TAGSTREAM_APP_ID": "it-no-such-app"}, cwd=REPO,
                                   capture_output=True, text=True, timeout=60)
            assert other.returncode == 1 and "topic it-no-such-app-customers-changelog not found" in other.stderr

        w.assert_alive()
        assert redis_snapshot(w) == redis_before
        assert end_offsets(w, "tags") == tags_before
    finally:
        w.stop()
