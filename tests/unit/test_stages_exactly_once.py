"""The customer stage with exactly-once output: one transaction per partition holding the tag
changes and the states, a fenced partition not saved, tombstones; PartitionTransactions'
transactional ids and revoked partitions (fakes, no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.engine.features.state import CustomerState
from streams.io.metrics import Metrics
from streams.io.transactions import Fenced, OutRecord, PartitionTransactions

from .stages_support import (
    DictStore,
    envelope,
    exactly_once_stage,
    kept_key,
    metrics_fixture,  # noqa: F401  (the fixture `metrics`)
)


async def test_exactly_once_writes_changes_and_states_in_one_transaction_per_partition(
        tmp_path: Path, metrics: Metrics) -> None:
    store = DictStore()
    stage, tx, producer = exactly_once_stage(tmp_path, metrics, store)
    evs = [envelope(f"c{i}", 3) for i in range(6)]
    await stage.process(evs)
    assert producer.sent == []  # nothing outside the transactions
    assert store.writes == [] and sorted(store.local) == sorted(f"c{i}".encode() for i in range(6))
    assert sorted(p for p, _ in tx.commits) == sorted({e.message.partition for e in evs})  # one per partition
    for partition, records in tx.commits:
        states = [r for r in records if r.topic == "changelog"]
        changes = [r for r in records if r.topic == "tags"]
        assert states and all(r.partition == partition for r in states)
        assert {r.key for r in changes} == {r.key for r in states}  # every customer here was tagged
        for r in states:
            assert r.value == store.data[r.key].dumps()
    assert all(n == 1 for n in tx.redis_flushes_before)  # Redis (idempotent) before the commits


async def test_exactly_once_fenced_partition_is_not_saved(tmp_path: Path, metrics: Metrics) -> None:
    store = DictStore()
    stage, tx, _ = exactly_once_stage(tmp_path, metrics, store)
    a = envelope("c1", 3)
    b = next(e for e in (envelope(f"c{i}", 3) for i in range(2, 40)) if e.message.partition != a.message.partition)
    tx.fenced.add(b.message.partition)
    await stage.process([a, b])
    assert set(store.data) == {kept_key(a)}  # the fenced partition's new owner replays b
    assert [p for p, _ in tx.commits] == [a.message.partition]
    refused = stage.settled()  # the batch is not acknowledged: its records are read again
    assert refused is not None and refused.done() and isinstance(refused.exception(), Fenced)
    tx.fenced.clear()
    await stage.process([envelope("c1", 3, start=3)])
    assert stage.settled() is None  # the next batch is acknowledged as usual


async def test_exactly_once_state_with_nothing_left_is_a_tombstone(tmp_path: Path, metrics: Metrics) -> None:
    store = DictStore()
    stage, tx, _ = exactly_once_stage(tmp_path, metrics, store)
    state = CustomerState(rule_version=stage.engine.version)
    from streams.app.customer_contracts import Updated

    ev = envelope("gone", 1)
    await stage.commit_transactions([], [Updated(b"gone", state, ev)], {b"gone": ev}, 1)
    (_, records), = tx.commits
    assert records == [OutRecord("changelog", b"gone", None, ev.message.partition)]


def test_partition_transactions_ids_are_per_partition() -> None:
    t = PartitionTransactions(bootstrap_servers="x:1", transactional_prefix="app-tagstream-customers",
                              client_options={})
    assert [t.transactional_id(p) for p in (0, 3)] == ["app-tagstream-customers-0", "app-tagstream-customers-3"]


async def test_a_revoked_partition_refuses_commits_before_any_producer_starts() -> None:
    """The batch in flight at a revoke must not start a producer for the partition again (that
    fences its new owner): refused until the partition is assigned back. Against the broker:
    tests/integration/test_transactions.py."""
    t = PartitionTransactions(bootstrap_servers="127.0.0.1:1", transactional_prefix="app-tagstream-customers",
                              client_options={})
    await t.release([0, 1])
    with pytest.raises(Fenced, match="partition 1 was revoked"):
        await t.commit(1, [OutRecord("tags", b"c1", b"{}")])
    assert t._producers == {}  # nothing was started (no broker at that address either)
    await t.commit(1, [])  # nothing to write: nothing refused
