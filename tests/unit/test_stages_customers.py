"""The customer stage's batch logic (fakes of the io contracts, no Kafka, no Redis): tags published
before the states are saved, replayed (backfill) events, stale and re-read records, partitions lost
mid-batch, failing customers dead-lettered alone, the due index, the customer count, and the tally
of the published changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.app.customer_contracts import Delivered
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from streams.io.metrics import Metrics

from .stages_support import (
    NOW,
    PARTITIONS,
    DictStore,
    Event,
    FakeProducer,
    Group,
    Record,
    customer_stage,
    envelope,
    kept_key,
    metrics_fixture,  # noqa: F401  (the fixture `metrics`)
)


async def test_customer_batch_publishes_then_saves(tmp_path: Path, metrics: Metrics) -> None:
    producer, store = FakeProducer(), DictStore()
    stage, redis = customer_stage(tmp_path, producer, metrics, store, Group())
    await stage.process([envelope("c1", 1), envelope("c2", 3)])
    tags = [orjson.loads(v or b"") for _, _, v, _, _ in producer.on("tags")]
    assert [(t["customer_id"], t["tag"], t["op"]) for t in tags] == [("c2", "browser", "add")]
    assert ("SADD", "p:tag:browser", "c2") in redis.commands
    assert set(store.data) == {b"c1", b"c2"}
    assert store.data[b"c2"].tags.keys() == {"browser"}
    # a second batch for c1 tags it too; c2's state is read back, not rebuilt
    await stage.process([envelope("c1", 1, start=5)])
    assert store.data[b"c1"].tags.keys() == {"browser"}


async def test_replayed_events_feed_the_new_features_once(tmp_path: Path, metrics: Metrics) -> None:
    """Items marked ``bf`` (tagstream backfill) go to the engine's backfill path: applied once, then
    skipped; the tags they complete are published as rule changes."""
    from streams.app.envelope import EnvelopeBuilder
    from streams.engine.backfill import state_keys

    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())
    rules = stage.engine.rules
    stage.engine = TagEngine(rules, births=dict.fromkeys(state_keys(rules), NOW - 60_000))
    keys = sorted(state_keys(rules))

    def replayed() -> Event:
        b = EnvelopeBuilder(PARTITIONS)
        for i in range(3):
            b.add(b"c1", orjson.dumps({
                "event_id": f"c1-{i}", "source": "clickstream", "type": "product_view", "customer_id": "c1",
                "ts_ms": NOW - 600_000 + i, "src_ts_ms": NOW, "amount": None, "currency": None, "skus": [],
                "categories": [], "channel": None, "store_id": None, "session_id": None, "order_id": None,
                "payment_method": None, "quantity": None, "query": None, "url": None,
                "sp": "clickstream:0", "so": i, "bf": {"keys": keys, "from": 0}}))
        (p, value), = b.records()
        return Event(Record(value, topic="cust", partition=p))

    await stage.process([replayed()])
    await stage.process([replayed()])  # the same run again (or a redelivery)
    state = store.data[b"c1"]
    assert stage.engine.feature_values(state, NOW) == {"views_1h": 3}
    assert state.seen_log == b""  # replayed events are not "seen": the live path still counts what it gets
    assert metrics.backfill_events.labels("applied")._value.get() == 3
    assert metrics.backfill_events.labels("skipped")._value.get() == 3
    assert metrics.events_processed.labels("clickstream")._value.get() == 0
    tags = [orjson.loads(v or b"") for _, _, v, _, _ in producer.on("tags")]
    assert [(t["tag"], t["op"], t["cause"]) for t in tags] == [("browser", "add", "rule_change")]


async def test_stale_generation_records_are_skipped(tmp_path: Path, metrics: Metrics) -> None:
    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group(gen=2))
    await stage.process([envelope("c1", 3, generation_id=1)])
    assert store.data == {} and producer.sent == []


async def test_records_a_holes_reread_brings_again_are_not_processed_twice(tmp_path: Path, metrics: Metrics) -> None:
    """A record acknowledged before the watchdog sought its partition back to a hole comes again
    with the hole's records: its events are in the state already and are not processed again."""
    producer, store = FakeProducer(), DictStore()
    later = envelope("c1", 3, offset=7)
    group = Group()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, group)
    await stage.process([later])  # processed and acknowledged while record 6 was dropped: a hole
    group.done.add((later.message.partition, 7))  # the watchdog seeks back to 6: 6, then 7 again
    await stage.process([envelope("c1", 3, offset=6, start=3), envelope("c1", 3, offset=7)])
    assert stage.engine.feature_values(store.data[b"c1"], NOW)["views_1h"] == 6
    assert metrics.records_read_again._value.get() == 1
    assert metrics.events_processed.labels("clickstream")._value.get() == 6
    assert metrics.events_duplicate.labels("clickstream")._value.get() == 0
    group.done.clear()  # without it, the record is processed again and its events count once, by event id
    await stage.process([envelope("c1", 3, offset=7)])
    assert stage.engine.feature_values(store.data[b"c1"], NOW)["views_1h"] == 6
    assert metrics.events_duplicate.labels("clickstream")._value.get() == 3


async def test_partitions_lost_during_publish_are_not_saved(tmp_path: Path, metrics: Metrics) -> None:
    producer, store = FakeProducer(), DictStore()
    group = Group()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, group)
    moved = envelope("c2", 3)
    kept = envelope("c1", 3) if envelope("c1", 3).message.partition != moved.message.partition else envelope("c3", 3)
    real_flush = stage.tag_topic.flush

    async def rebalance_while_publishing() -> None:
        await real_flush()
        group.gen += 1
        group.owned.discard(moved.message.partition)

    stage.tag_topic.flush = rebalance_while_publishing  # type: ignore[method-assign]
    await stage.process([kept, moved])
    assert set(store.data) == {kept_key(kept)}


class EngineWith:
    """The stage's engine with ``process_event`` replaced (a compiled engine's methods cannot be)."""

    def __init__(self, inner: Any, process_event: Any) -> None:
        self._inner = inner
        self.process_event = process_event

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize("tag_engine", ["python", "core"])
async def test_a_failing_customer_goes_to_the_dead_letter_topic_alone(tmp_path: Path, metrics: Metrics,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     tag_engine: str) -> None:
    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group(), tag_engine=tag_engine)
    if tag_engine == "core":
        assert stage.core is not None
        real_core = stage.core.fold_events

        def boom_core(state: Any, items: list[bytes], now_ms: int, evaluate: bool = True) -> Any:
            if any(b'"customer_id":"bad"' in item for item in items):
                raise OverflowError("int too big to convert")
            return real_core(state, items, now_ms, evaluate)

        monkeypatch.setattr(stage.core, "fold_events", boom_core)
    else:
        real = stage.engine.process_event

        def boom(state: CustomerState, event: Any, now_ms: int) -> Any:
            if event["customer_id"] == "bad":
                raise OverflowError("int too big to convert")
            return real(state, event, now_ms)

        monkeypatch.setattr(stage, "engine", EngineWith(stage.engine, boom))
    await stage.process([envelope("bad", 2), envelope("c2", 3)])
    dlq = producer.on("dlq")
    assert [(k, dict(h)["ts.reason"]) for _, k, _, _, h in dlq] == [(b"bad", b"internal_error")] * 2
    assert set(store.data) == {b"c2"}


async def test_a_state_that_cannot_be_saved_is_dead_lettered_not_raised(tmp_path: Path, metrics: Metrics,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    producer, store = FakeProducer(), DictStore()
    # the Python engine's: a native state cannot hold what does not encode
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group(), tag_engine="python")
    real = stage.engine.process_event

    def poison(state: CustomerState, event: Any, now_ms: int) -> Any:
        out = real(state, event, now_ms)
        if event["customer_id"] == "bad":
            state.due_ms = 2 ** 70  # orjson cannot encode it
        return out

    monkeypatch.setattr(stage, "engine", EngineWith(stage.engine, poison))
    await stage.process([envelope("bad", 1), envelope("c2", 1)])
    assert [dict(h)["ts.reason"] for *_, h in producer.on("dlq")] == [b"internal_error"]
    assert set(store.data) == {b"c2"}


def give_up_at(stage: Any, monkeypatch: pytest.MonkeyPatch, nth: int) -> list[bytes]:
    """Makes the stage's core fold a customer's first ``nth - 1`` events and raise
    NotImplementedError at the next (as the core does at an event it does not reproduce); returns
    the events it was given."""
    assert stage.core is not None
    real, seen = stage.core.fold_events, []

    def half(state: Any, items: list[bytes], now_ms: int, evaluate: bool = True) -> Any:
        seen.extend(items)
        real(state, items[:nth - 1], now_ms, evaluate)
        raise NotImplementedError("tagstream core: something")

    monkeypatch.setattr(stage.core, "fold_events", half)
    return seen


async def test_what_the_core_does_not_reproduce_the_python_engine_folds_from_the_stored_state(
        tmp_path: Path, metrics: Metrics, monkeypatch: pytest.MonkeyPatch) -> None:
    """The core gives a customer's batch up mid-way (NotImplementedError after folding some of its
    events): the Python engine folds the whole batch from the state as stored, and every event
    counts once, as if the core had not been there."""
    outcomes = {}
    for tag_engine in ("python", "core"):
        producer, store, m = FakeProducer(), DictStore(), Metrics.create(CollectorRegistry())
        stage, _ = customer_stage(tmp_path, producer, m, store, Group(), tag_engine=tag_engine)
        await stage.process([envelope("c1", 2)])  # a native state held (core)
        seen = give_up_at(stage, monkeypatch, 2) if tag_engine == "core" else []
        await stage.process([envelope("c1", 3, start=2)])
        outcomes[tag_engine] = (store.data[b"c1"].dumps(), m.events_processed.labels("clickstream")._value.get(),
                                [v for _, _, v, _, _ in producer.on("tags")])
        if tag_engine == "core":
            assert len(seen) == 3  # given the batch, gave it up at its second event
            assert m.customer_engine.labels("python")._value.get() == 1
    assert outcomes["core"] == outcomes["python"]
    assert outcomes["core"][1] == 5


async def test_redis_and_tag_topic_are_written_before_the_state(tmp_path: Path, metrics: Metrics) -> None:
    producer, store = FakeProducer(), DictStore()
    stage, redis = customer_stage(tmp_path, producer, metrics, store, Group())
    order: list[str] = []
    real_put = store.put

    def put(key: bytes, state: CustomerState, record: Delivered, encoded: bytes | None = None) -> None:
        order.append(f"save after {len(producer.on('tags'))} tag records, {len(redis.log)} redis flushes")
        assert encoded == state.dumps()  # made once by the stage, handed to the store
        real_put(key, state, record, encoded)

    store.put = put  # type: ignore[method-assign]
    await stage.process([envelope("c2", 3)])
    assert order == ["save after 1 tag records, 1 redis flushes"]
    saving = stage.settled()
    assert saving is not None
    await saving
    assert store.flushes == 1  # the writes are pushed out before the batch can be acknowledged
    assert redis.log == [("flush", 0)]  # Redis first, then the tag topic


def test_rebuild_due_index_reschedules_every_state(tmp_path: Path, metrics: Metrics) -> None:
    """Every state keeps its due time; one made under other rules is also queued for
    re-evaluation (in slices, not all due now)."""
    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())
    old = CustomerState(rule_version="v0")
    old.due_ms = NOW + 5
    store.data.update({b"a": old, b"b": CustomerState(rule_version=stage.engine.version)})
    store.data[b"b"].due_ms = NOW + 10
    assert stage.rebuild_due_index() == 2
    assert sorted(stage.due.pop_due(NOW + 10)) == [(b"a", NOW + 5), (b"b", NOW + 10)]
    assert stage.reevaluation.pending == 1 and stage.reevaluation.take(NOW) == [b"a"]


async def test_customers_in_state_is_counted_without_walking_the_store(tmp_path: Path, metrics: Metrics) -> None:
    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())
    await stage.process([envelope("c1", 1), envelope("c2", 1)])
    await stage.process([envelope("c1", 1, start=3), envelope("c3", 1)])
    assert stage.customers == len(store.data) == 3
    from streams.app.customer_contracts import Updated

    gone = envelope("c2", 1)
    stage.save(Updated(b"c2", CustomerState(), gone, existed=True))  # nothing left: deleted
    assert stage.customers == len(store.data) == 2
    stage.customers = 99
    assert stage.rebuild_due_index() == 2 and stage.customers == 2  # recounted after a recovery


def test_a_batch_s_changes_are_tallied_per_labels_timestamp_and_instant() -> None:
    """``published.tally``: what the customer stage adds to the tag-change counters and latency histograms."""
    from streams.app.published import Published, tally

    def change(tag: str, op: str, cause: str, at_ms: int) -> Any:
        return {"customer_id": "c", "tag": tag, "op": op, "cause": cause, "at_ms": at_ms}

    published = [Published(change("a", "add", "event", 5), 100), Published(change("b", "add", "event", 5), 100),
                 Published(change("a", "remove", "expiry", 7), None), Published(change("a", "add", "event", 9), 101),
                 Published(change("b", "remove", "expiry", 7), None), Published(change("a", "add", "event", 9), 101)]
    counts, from_events, from_clock = tally(published)
    assert counts == {("a", "add", "event"): 3, ("b", "add", "event"): 1, ("a", "remove", "expiry"): 1,
                      ("b", "remove", "expiry"): 1}
    assert from_events == {100: 2, 101: 2}
    assert from_clock == {7: 2}
    assert tally([]) == ({}, {}, {})
    assert tally(published[:2])[2] == {}
