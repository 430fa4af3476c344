"""Repeated links kept off the links topic (streams/engine/identity/repeats.py) and ingest's use of them:
a repeat is only one after the broker acknowledged the first, an earlier event time is sent, the
window and the size bound, and the graph decides the same with and without the filter."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.app.envelope import EnvelopeSender, decode_envelope
from streams.app.identity_links import decode_links
from streams.app.ingest import IngestStage
from streams.engine.clock import ManualClock
from streams.engine.identity.graph import GraphLimits, IdentityGraph
from streams.engine.identity.repeats import LinkRepeats
from streams.io.deadletter import DeadLetterWriter
from streams.io.metrics import Metrics
from tests.unit.stages_support import NOW, FakeProducer, Record, ingest_path_fixture  # noqa: F401


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def sent(r: LinkRepeats, ids: list[str], ts: int) -> bool:
    return not r.repeat(ids, ts)


def test_a_link_is_a_repeat_only_once_the_first_was_acknowledged() -> None:
    r = LinkRepeats(60_000, 100, Clock())
    assert sent(r, ["user:u1", "anonymous:a1"], 10)
    assert not sent(r, ["anonymous:a1", "user:u1"], 11)  # the same batch: it goes out with the first
    r.discard()  # the batch failed: nothing of it reached the broker
    assert sent(r, ["user:u1", "anonymous:a1"], 11)
    r.acknowledged()
    assert not sent(r, ["anonymous:a1", "user:u1"], 11) and not sent(r, ["user:u1", "anonymous:a1"], 500)
    assert sent(r, ["user:u1", "anonymous:a2"], 500)  # other ids
    assert sent(r, ["user:u1", "anonymous:a1", "email_sha256:" + "a" * 64], 500)  # a superset is another link


def test_an_earlier_event_time_is_sent_and_becomes_the_one_to_beat() -> None:
    r = LinkRepeats(60_000, 100, Clock())
    assert sent(r, ["user:u1", "anonymous:a1"], 100)
    r.acknowledged()
    assert sent(r, ["user:u1", "anonymous:a1"], 99)  # may move first_seen_ms: the graph must see it
    assert not sent(r, ["user:u1", "anonymous:a1"], 99)
    r.acknowledged()
    assert not sent(r, ["user:u1", "anonymous:a1"], 99)
    assert sent(r, ["user:u1", "anonymous:a1"], 50)


def test_the_window_sends_a_set_again_and_the_size_is_bounded() -> None:
    clock = Clock()
    r = LinkRepeats(60_000, 3, clock)
    assert sent(r, ["user:u1", "anonymous:a1"], 1)
    r.acknowledged()
    clock.ms += 59_999
    assert not sent(r, ["user:u1", "anonymous:a1"], 1)
    clock.ms += 1
    assert sent(r, ["user:u1", "anonymous:a1"], 1)  # a window after it was sent
    r.acknowledged()
    for i in range(2, 6):
        assert sent(r, [f"user:u{i}", "anonymous:a1"], 1)
    r.acknowledged()
    assert len(r) == 3  # the oldest sent went first
    assert sent(r, ["user:u1", "anonymous:a1"], 1) and sent(r, ["user:u2", "anonymous:a1"], 1)
    assert not sent(r, ["user:u5", "anonymous:a1"], 1)


def test_a_window_or_size_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="above 0"):
        LinkRepeats(0, 10, Clock())
    with pytest.raises(ValueError, match="above 0"):
        LinkRepeats(1000, 0, Clock())


def test_the_graph_decides_the_same_with_and_without_the_filter() -> None:
    """Random links over few ids (repeats, earlier times, caps exceeded) applied to one graph as they
    come and to another through the filter: the same clusters, canonical ids and first-seen times."""
    rnd = random.Random(7)
    ids = [f"user:u{i}" for i in range(6)] + [f"anonymous:a{i}" for i in range(10)] + ["member:m1", "member:m2"]
    limits = GraphLimits(per_type={"member": 1, "user": 2, "anonymous": 4}, max_cluster=6)
    for _ in range(20):
        plain, filtered = IdentityGraph(limits), IdentityGraph(limits)
        clock = Clock()
        r = LinkRepeats(10_000, 8, clock)
        for _ in range(200):
            link = rnd.sample(ids, rnd.choice((2, 2, 2, 3)))
            ts = rnd.randrange(1_000, 1_100)
            plain.link(link, ts)
            if not r.repeat(link, ts):
                filtered.link(link, ts)
            if rnd.random() < 0.3:  # a batch's end (what a failed batch does: the ingest test below)
                r.acknowledged()
            clock.ms += rnd.randrange(0, 2_000)
        for k in ids:
            assert plain.resolve(k) == filtered.resolve(k)
            assert plain.members(plain.resolve(k)) == filtered.members(filtered.resolve(k))
        assert plain.link([ids[0], ids[1]], 0).refused == filtered.link([ids[0], ids[1]], 0).refused


def ingest(producer: FakeProducer, repeats: LinkRepeats) -> tuple[IngestStage, Metrics]:
    metrics = Metrics.create(CollectorRegistry())
    stage = IngestStage(source_by_topic={"events.clickstream": "clickstream", "events.identity": "identity"},
                        partitions=4, clock=ManualClock(NOW), future_tolerance_ms=60_000,
                        envelopes=EnvelopeSender(producer, "cust"),
                        deadletter=DeadLetterWriter(producer, "dlq", metrics), metrics=metrics,
                        links=EnvelopeSender(producer, "links"), repeats=repeats)
    return stage, metrics


def login(i: int, user: str = "u-1", anon: str = "a-1", ts: int = NOW - 1000) -> Record:
    ev = {"event_id": f"e{i}", "ts": ts, "type": "product_view", "session_id": "s", "user_id": user,
          "anonymous_id": anon}
    return Record(orjson.dumps(ev), offset=i)


def crm(i: int, *ids: tuple[str, str], ts: int = NOW - 1000) -> Record:
    rec = {"event_id": f"crm{i}", "ts": ts, "source": "crm", "ids": [{"type": t, "value": v} for t, v in ids]}
    return Record(orjson.dumps(rec), topic="events.identity", offset=i)


def links_sent(producer: FakeProducer) -> list[dict[str, Any]]:
    return [link for _, _, v, _, _ in producer.on("links") for link in decode_links(v)]


@pytest.mark.usefixtures("ingest_path")
async def test_ingest_sends_a_repeated_link_once_and_counts_the_repeats() -> None:
    producer = FakeProducer()
    stage, metrics = ingest(producer, LinkRepeats(300_000, 1000, Clock()))
    await stage.process([login(i) for i in range(5)] + [login(5, anon="a-2")])
    await stage.process([login(6), login(7, ts=NOW - 2000),  # an earlier time: sent
                         crm(1, ("user", "u-1"), ("member", "m-1")), crm(2, ("member", "m-1"), ("user", "u-1"))])
    got = [(link["ids"], link["ts_ms"]) for link in links_sent(producer)]
    assert got == [(["user:u-1", "anonymous:a-1"], NOW - 1000), (["user:u-1", "anonymous:a-2"], NOW - 1000),
                   (["user:u-1", "anonymous:a-1"], NOW - 2000), (["user:u-1", "member:m-1"], NOW - 1000)]
    assert metrics.identity_links.labels("repeat")._value.get() == 6
    # every event still goes to its customer
    items = [obj for _, _, v, _, _ in producer.on("cust") for obj in decode_envelope(v)]
    assert len(items) == 8


class FailingLinks(FakeProducer):
    """The links topic's first send fails (the broker did not acknowledge it)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any) -> asyncio.Future[None]:
        fut = await super().send(topic, key, value, partition, timestamp, headers)
        if topic == "links" and not self.failed:
            self.failed = True
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(RuntimeError("not acknowledged"))
        return fut


@pytest.mark.usefixtures("ingest_path")
async def test_a_link_whose_send_failed_is_sent_again_with_its_batch() -> None:
    producer = FailingLinks()
    stage, _ = ingest(producer, LinkRepeats(300_000, 1000, Clock()))
    batch = [login(0), login(1)]
    with pytest.raises(RuntimeError, match="not acknowledged"):
        await stage.process(batch)
    await stage.process(batch)  # read again
    await stage.process([login(2)])
    assert [link["link_id"] for link in links_sent(producer)] == ["clickstream:e0", "clickstream:e0"]


def test_the_worker_remembers_links_no_longer_than_a_tombstone_lasts() -> None:
    from streams.app.topology import _link_repeats
    from streams.settings import Settings

    on = {"enabled": True}
    made = _link_repeats(Settings(identity=on))
    assert made is not None and made.window_ms == 300_000 and made.max_entries == 100_000
    short = _link_repeats(Settings(identity={**on, "erasure_period_ms": 2_000}))
    assert short is not None and short.window_ms == 2_000
    assert _link_repeats(Settings(identity={**on, "link_repeat_window_ms": 0})) is None
    assert _link_repeats(Settings(identity={**on, "erasure_period_ms": 0})) is None
    assert _link_repeats(Settings()) is None  # identity resolution off: no links at all
