"""Hot deploy without Kafka: the rules-topic record format, the engine switch between batches,
and a state made under other rules being re-evaluated by its tick."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.app.rules_watch import RulesWatch, compile_deployment
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from streams.io.metrics import Metrics
from streams.io.rules_topic import BadRulesRecord, Deployment, decode_deployment, deployment_of
from streams.settings import Settings
from tag_rules import load_rules

from .stages_support import NOW, DictStore, Event, FakeProducer, Group, Record, customer_stage, envelope


@pytest.fixture
def metrics() -> Metrics:
    from prometheus_client import CollectorRegistry

    return Metrics.create(CollectorRegistry())


V2 = """
version: v2
features:
  - {name: views_1h, agg: count, window: 1h, where: 'type == "product_view"'}
tags:
  - {name: browser, when: views_1h >= 1}
"""


@pytest.mark.parametrize("value, reason", [
    (None, "tombstone"),
    (b"{", "not JSON"),
    (b"[]", "not a JSON object"),
    (b'{"format": 9}', "unknown format"),
    (b'{"format": 1, "version": "v", "files": {}, "deployed_at_ms": 1}', "files: .*at least 1 item"),
    (b'{"format": 1, "version": "v", "files": {"../x.yaml": "a"}, "deployed_at_ms": 1}', "files.*should match pattern"),
    (b'{"format": 1, "version": "", "files": {"a.yaml": "a"}, "deployed_at_ms": 1}', "version: .*at least 1"),
    (b'{"format": 1, "version": "v", "files": {"a.yaml": "a"}}', "deployed_at_ms: Field required"),
])
def test_bad_rules_records_are_refused_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(BadRulesRecord, match=reason):
        decode_deployment(value)


def test_a_deployment_round_trips_and_compiles(tmp_path: Path) -> None:
    d = deployment_of({"rules.yaml": V2}, "v2", "me")
    back = decode_deployment(d.encode(), offset=7)
    assert (back.version, dict(back.files), back.deployed_by, back.offset) == ("v2", {"rules.yaml": V2}, "me", 7)
    assert compile_deployment(back, tmp_path).version == "v2"


def test_a_rule_set_too_big_for_one_record_is_refused() -> None:
    with pytest.raises(ValueError, match="at most"):
        deployment_of({"rules.yaml": "#" * 1_000_000}, "big")


async def test_swap_queues_every_customer_and_the_tick_re_evaluates(tmp_path: Path, metrics: Metrics) -> None:
    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())
    await stage.process([envelope("c1", 1)])  # one view: not a browser under v1 (views_1h >= 2)
    assert store.data[b"c1"].tags == {}
    (tmp_path / "v2.yaml").write_text(V2)
    assert await stage.swap_engine(TagEngine(load_rules(tmp_path / "v2.yaml"))) == 1
    assert stage.reevaluation.pending == 1
    key, = stage.reevaluation.take(NOW)
    # the stored state is a copy (as a RocksDB store returns): its due time is not the tick's
    store.data[b"c1"] = CustomerState.loads(store.data[b"c1"].dumps())
    await stage.process([envelope_tick(key, NOW, reeval=True)])
    assert store.data[b"c1"].tags.keys() == {"browser"}
    assert stage.reevaluation.pending == 0  # the slice is done
    changes = [orjson.loads(v or b"") for _, _, v, _, _ in producer.on("tags")]
    assert [(c["tag"], c["op"], c["cause"]) for c in changes] == [("browser", "add", "rule_change")]


async def test_after_a_swap_customers_go_out_in_slices_between_event_batches(tmp_path: Path,
                                                                             metrics: Metrics) -> None:
    """The timer sends at most ``in_flight_max`` re-evaluation ticks until the stage has
    processed them; live events are processed meanwhile, and every customer is re-evaluated."""
    from streams.app.timers import DueTimer
    from streams.io.health import Health

    producer, store = FakeProducer(), DictStore()
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group())  # slices of 2
    await stage.process([envelope(f"c{i}", 1) for i in range(5)])
    (tmp_path / "v2.yaml").write_text(V2)
    assert await stage.swap_engine(TagEngine(load_rules(tmp_path / "v2.yaml"))) == 5
    sent = FakeEnvelopes()
    timer = DueTimer(due=stage.due, reevaluation=stage.reevaluation, clock=stage.clock, partitions=4,
                     envelopes=sent, health=Health(), redis=stage.redis, metrics=metrics)  # type: ignore[arg-type]
    slices = []
    while stage.reevaluation.pending:
        await timer.fire(5)
        await timer.fire(5)  # nothing more goes out before the slice is processed
        sent_now = sent.take()
        ticks = [Event(Record(v, topic="cust", partition=p)) for p, v in sent_now]
        slices.append(sum(len(orjson.loads(v)) for _, v in sent_now))
        await stage.process([envelope("live", 1)])  # a live event between two slices
        await stage.process(ticks)
    assert slices == [2, 2, 1]
    assert all(store.data[f"c{i}".encode()].tags.keys() == {"browser"} for i in range(5))
    assert store.data[b"live"].rule_version == stage.engine.version


class FakeEnvelopes:
    def __init__(self) -> None:
        self.records: list[tuple[int, bytes]] = []

    async def send(self, builder: Any) -> None:
        self.records += builder.records()

    def take(self) -> list[tuple[int, bytes]]:
        out, self.records = self.records, []
        return out


def envelope_tick(key: bytes, due_ms: int, *, reeval: bool = False) -> Any:
    from streams.app.envelope import EnvelopeBuilder

    from .stages_support import PARTITIONS, Event, Record

    b = EnvelopeBuilder(PARTITIONS)
    b.add(key, orjson.dumps({"customer_id": key.decode(), "tick": due_ms, **({"reeval": 1} if reeval else {})}))
    (p, value), = b.records()
    return Event(Record(value, topic="cust", partition=p))


class FakeRedis:
    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, bytes]] = {}

    async def hset(self, key: str, field: str, value: bytes) -> None:
        self.hashes.setdefault(key, {})[field] = value


async def test_a_deployment_that_does_not_compile_is_rejected_and_the_rules_kept(tmp_path: Path) -> None:
    applied: list[str] = []
    rejected: list[str] = []

    async def apply(rules: Any, births: Any) -> int:
        applied.append(rules.version)
        return 0

    (tmp_path / "v2.yaml").write_text(V2)
    settings = Settings(data_dir=tmp_path / "data")
    redis = FakeRedis()
    watch = RulesWatch(settings, current=load_rules(tmp_path / "v2.yaml"), offset=-1, apply=apply, redis=redis,
                       prefix="p", on_rejected=rejected.append)
    await watch._take(Deployment("v3", {"r.yaml": "version: v3\ntags: [{name: x, when: nope >= 1}]\n"}, 1, "", 5))
    assert applied == [] and rejected == ["does not compile"] and watch.version == "v2" and watch.offset == 5
    await watch._take(Deployment("v2", {"r.yaml": V2}, 1, "", 6))  # the version already running
    assert applied == []
    await watch._take(Deployment("v4", {"r.yaml": V2.replace("v2", "v4")}, 1, "", 7))
    assert applied == ["v4"] and watch.version == "v4"
    status = orjson.loads(redis.hashes["p:workers"][next(iter(redis.hashes["p:workers"]))])
    assert (status["version"], status["offset"]) == ("v4", 7)


async def test_a_kafka_outage_skips_the_check_and_keeps_the_rules(tmp_path: Path) -> None:
    """A broker restart made the watch's poll raise inside its timer, which crashed the worker
    (test_broker_restart); now the tick is skipped and the next one reads on."""
    from aiokafka.errors import KafkaConnectionError

    applied: list[str] = []

    async def apply(rules: Any, births: Any) -> int:
        applied.append(rules.version)
        return 0

    (tmp_path / "v2.yaml").write_text(V2)
    watch = RulesWatch(Settings(data_dir=tmp_path / "data"), current=load_rules(tmp_path / "v2.yaml"), offset=-1,
                       apply=apply, redis=FakeRedis(), prefix="p", on_rejected=lambda why: None)
    polls: list[Any] = [KafkaConnectionError("Unable to bootstrap"), [Deployment("v4", {"r.yaml": V2.replace(
        "v2", "v4")}, 1, "", 7)]]

    class Follower:
        async def poll(self) -> list[Deployment]:
            got = polls.pop(0)
            if isinstance(got, Exception):
                raise got
            return list(got)

    watch._follower = Follower()  # type: ignore[assignment]
    await watch.check()
    assert watch.version == "v2" and applied == []
    await watch.check()
    assert watch.version == "v4" and applied == ["v4"]
