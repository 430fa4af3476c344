"""Backfill on the real stack: two workers run rules v1 over 3 days of events (event times in the
past); v2 adds a 7-day feature and a tag on it; more events arrive live while `tagstream backfill`
replays the history, and one worker is killed and restarted while they apply it. Every customer's
features (the new one and the old ones) and tags then equal the engine's run with v2 from the
start; a second backfill changes nothing; refusals are clear."""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from streams.engine.features.state import CustomerState
from streams.tools.generator import RetailGenerator

from .conftest import Stack, WorkerProc, free_port
from .faultcheck import RULES, Features, await_same_state, read_to_end, reference
from .test_faults import final_tags, processed
from .test_rules_deploy import cli

D = 86_400_000


def v2_rules(folder: Path) -> Path:
    """The fault-test rules plus a 7-day feature and a tag that reads it."""
    folder.mkdir()
    text = (RULES / "lifetime.yaml").read_text().replace("version: it-lifetime-2", "version: it-backfill-v2")
    feature = '  - {name: views_7d, agg: count, window: 7d, sources: [clickstream], where: type == "product_view"}\n'
    text = text.replace("features:\n", "features:\n" + feature, 1)
    (folder / "lifetime.yaml").write_text(text + "  - {name: weekly_viewer, when: views_7d >= 4}\n")
    return folder


def metric(port: int, name: str) -> float:
    """A worker's metric (waiting for its endpoint: a restarted worker serves it a little later)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            break
        except OSError:
            assert time.monotonic() < deadline, f"no metrics on port {port}"
            time.sleep(0.5)
    return sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(name))


def stored_states(w: WorkerProc) -> dict[str, Any]:
    """What a backfill may change per customer: features, tags and books."""
    out = {}
    for key, value in read_to_end(w.stack.bootstrap, f"{w.prefix}-customers-changelog").items():
        if value is not None:
            s = CustomerState.loads(value)
            out[key.decode()] = (s.features, s.tags, s.backfill)
    return out


def test_a_7_day_feature_added_after_3_days_equals_one_that_ran_from_the_start(stack: Stack, tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    n = 3000
    events = [e for e in RetailGenerator(seed=33, customers=150, start_ms=now - 3 * D - 3_600_000,
                                         step_ms=3 * D / n).take(n) if e.valid]
    v2 = v2_rules(tmp_path / "v2")
    want_features, want_tags = reference(events, rules=v2)
    assert any(f["views_7d"] >= 4 for f in want_features.values())
    assert any("weekly_viewer" in t for t in want_tags.values())
    before = [e for i, e in enumerate(events) if i % 4 != 3]  # v1's 3 days
    after = [e for i, e in enumerate(events) if i % 4 == 3]  # live under v2: event times from all 3 days
    name = f"backfill-{uuid.uuid4().hex[:6]}"
    ports = [free_port(), free_port()]
    a, b = (WorkerProc(stack, name, rules=RULES, instance=str(i + 1),
                       extra_env={"TAGSTREAM_METRICS__PORT": str(ports[i]), "TAGSTREAM_STORE": "rocksdb://"})
            for i in range(2))
    a.start()
    b.start()
    try:
        produce(a, before)
        wait_until_v1_saw_its_days(a, ports, len(before))
        deploy_v2_after_refusing_a_backfill(a, v2)

        produce(a, after)  # live, while the backfill runs
        dry = cli(a, "backfill", "views_7d", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert f"{len(events):,} records to read" in dry.stdout and "dry run: nothing sent" in dry.stdout, dry.stdout

        first = cli(a, "backfill", "views_7d", timeout=300)
        b.stop(kill=True)  # while the workers apply the replay: b's batches in flight come again
        b.start()
        assert first.returncode == 0, first.stdout + first.stderr + a.group_tail()
        assert "ETA" in first.stderr and f"{len(events):,} / {len(events):,} records (100.0 %)" in first.stderr
        await_same_state(a, want_features, want_tags, lambda: final_tags(a), rules=v2)
        applied = sum(metric(p, 'tagstream_backfill_events_total{result="applied"}') for p in ports)
        assert applied > 0  # (b's count restarted with it: a's alone may be all of it)

        check_a_second_backfill_changes_nothing(a, ports, applied, want_features, want_tags, v2)
        check_a_backfill_from_before_retention_is_refused(stack, a)
    finally:
        a.stop()
        b.stop()


def wait_until_v1_saw_its_days(a: WorkerProc, ports: list[int], n_before: int) -> None:
    """v1 has seen its 3 days, and both workers are registered."""
    deadline = time.monotonic() + 180
    while True:  # v1 has seen its 3 days
        try:
            if processed(ports[0]) + processed(ports[1]) >= n_before:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, a.group_tail()
        time.sleep(0.2)
    from streams.io.rules_topic import workers_key

    while a.redis().hlen(workers_key(a.prefix)) < 2:
        assert time.monotonic() < deadline, a.group_tail()
        time.sleep(0.2)


def deploy_v2_after_refusing_a_backfill(a: WorkerProc, v2: Path) -> None:
    """Nothing to backfill before v2 is deployed; after it, only the feature it added."""
    early = cli(a, "backfill", "views_7d")
    assert early.returncode == 2 and "nothing deployed" in early.stderr, early.stderr
    deployed = cli(a, "rules", "deploy", str(v2), "--wait", "90")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr + a.group_tail()

    refused = cli(a, "backfill", "views_7d", "events", "nope")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "events: not added by a deployment" in refused.stderr and "nope: no such feature" in refused.stderr
    assert "can be backfilled now: views_7d" in refused.stderr


def check_a_second_backfill_changes_nothing(a: WorkerProc, ports: list[int], applied: float, want_features: Features,
                                           want_tags: dict[str, set[str]], v2: Path) -> None:
    """The same backfill again: every replayed event is skipped, and no state changes."""
    states = stored_states(a)
    skipped_before = sum(metric(p, 'tagstream_backfill_events_total{result="skipped"}') for p in ports)
    second = cli(a, "backfill", "views_7d", "--wait", "120", "--quiet", timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr + a.group_tail()
    assert "ETA" not in second.stderr  # --quiet
    assert "applied: the workers have processed every replayed event" in second.stdout, second.stdout
    sent = int(second.stdout.split("sent ")[1].split(" events")[0].replace(",", ""))
    assert sent > 0
    deadline = time.monotonic() + 60
    skipped = 'tagstream_backfill_events_total{result="skipped"}'
    while sum(metric(p, skipped) for p in ports) < skipped_before + sent:
        assert time.monotonic() < deadline, a.group_tail()
        time.sleep(0.5)
    assert sum(metric(p, 'tagstream_backfill_events_total{result="applied"}') for p in ports) == applied
    assert stored_states(a) == states
    await_same_state(a, want_features, want_tags, lambda: final_tags(a), rules=v2, timeout_s=5)


def check_a_backfill_from_before_retention_is_refused(stack: Stack, a: WorkerProc) -> None:
    """History that retention deleted cannot be replayed: a clear refusal naming the lost offsets."""
    delete_before(stack.bootstrap, TopicPartition(a.topic("clickstream"), 0), 5)
    lost = cli(a, "backfill", "views_7d", "--from", "2020-01-01T00:00:00Z")
    assert lost.returncode == 2, lost.stdout + lost.stderr
    assert f"{a.topic('clickstream')}[0]: the oldest retained record (offset 5)" in lost.stderr
    assert "offsets 0 … 4 were deleted by retention" in lost.stderr


def produce(w: WorkerProc, events: list[Any]) -> None:
    by_source: dict[str, list[bytes]] = {}
    for e in events:
        by_source.setdefault(e.source, []).append(e.value)
    for source, values in by_source.items():
        w.produce(source, values)


def delete_before(bootstrap: str, tp: TopicPartition, offset: int) -> None:
    """What retention does: the partition's records before ``offset`` are gone."""

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_records({tp: RecordsToDelete(offset)})
        finally:
            await admin.close()

    asyncio.run(run())
