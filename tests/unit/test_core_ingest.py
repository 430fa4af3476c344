"""A whole ingest batch through the Rust core (``native/src/ingest.rs``) against the Python path
(``streams.app.ingest`` with the core switched off): the same envelopes per partition (items, order,
splitting at the size limit), the same dead-letter records and reasons, links, repeats and counters,
on the generator's traffic (bad records, identity traffic, junk ids, ``events.identity`` records),
identity resolution off and on. Without a build of the core these tests fail rather than skip
(``python -m streams.tools.build_native``)."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.app import ingest
from streams.app.envelope import EnvelopeSender, decode_envelope
from streams.app.identity_links import decode_links
from streams.app.ingest import IngestStage
from streams.engine import native_core
from streams.engine.clock import ManualClock
from streams.engine.identity.repeats import LinkRepeats
from streams.io.deadletter import DeadLetterWriter
from streams.io.metrics import Metrics
from streams.io.partitioning import murmur2
from streams.tools.generator import RetailGenerator

from .stages_support import NOW, FakeProducer, Record

TOPICS = {"events.clickstream": "clickstream", "events.pos": "pos", "events.orders": "orders",
          "events.identity": "identity"}


def stage(producer: FakeProducer, identity: bool) -> tuple[IngestStage, Metrics]:
    metrics = Metrics.create(CollectorRegistry())
    return IngestStage(source_by_topic=TOPICS, partitions=4, clock=ManualClock(NOW), future_tolerance_ms=60_000,
                       envelopes=EnvelopeSender(producer, "cust"),
                       deadletter=DeadLetterWriter(producer, "dlq", metrics), metrics=metrics,
                       links=EnvelopeSender(producer, "links") if identity else None,
                       repeats=LinkRepeats(300_000, 1000, lambda: NOW) if identity else None), metrics


def batches(seed: int, identity: bool) -> list[list[Record]]:
    """Generator traffic in batches of 1-400 records over four partitions per topic, with a few
    events dated in the future, empty values and events over the internal record limit."""
    rng = random.Random(seed)
    gen = RetailGenerator(seed=seed, customers=300, bad_ratio=0.05, identity=True, start_ms=NOW - 86_400_000,
                          step_ms=5_000)
    records: list[Record] = []
    for i, e in enumerate(gen.take(3000)):
        if e.source == "identity" and not identity:
            continue  # the worker reads events.identity with identity resolution on only
        value = e.value
        roll = rng.random()
        if roll < 0.01 and e.source != "identity":  # in the future, as a number or a string
            future = b'"ts":%d,"x":' % (NOW + 3_600_000) if i % 2 else b'"ts":"2199-01-01T00:00:00Z","x":'
            value = value.replace(b'"ts":', future)
        elif roll < 0.015:
            value = b""
        elif roll < 0.02 and e.source == "clickstream":
            value = value[:-1] + b',"url":"' + b"u" * 700 + b'"}'
        # record times as aiokafka gives them (ms / 1000) and any float (int() truncates, not rounds)
        seconds = (NOW - rng.randrange(10**7)) / 1000 if i % 2 else NOW / 1000 - rng.random() * 1e4
        records.append(Record(value, topic=f"events.{e.source}", partition=rng.randrange(4), offset=i,
                              timestamp=seconds))
    out, i = [], 0
    while i < len(records):
        n = rng.randint(1, 400)
        out.append(records[i:i + n])
        i += n
    return out


def outcome(producer: FakeProducer, metrics: Metrics) -> dict[str, Any]:
    def counter(c: Any) -> dict[tuple[str, ...], float]:
        return {tuple(s.labels.values()): s.value for m in c.collect() for s in m.samples if s.name.endswith("_total")}

    return {
        "envelopes": [(p, decode_envelope(v)) for _, _, v, p, _ in producer.on("cust")],
        "links": [(p, decode_links(v)) for _, _, v, p, _ in producer.on("links")],
        "dlq": [(k, v, sorted(h)) for _, k, v, _, h in producer.on("dlq")],
        "events_in": counter(metrics.events_in), "anonymous": counter(metrics.events_anonymous),
        "refused": counter(metrics.identity_refused), "links_metric": counter(metrics.identity_links),
    }


async def run(identity: bool, seed: int, envelope_bytes: int) -> dict[str, Any]:
    producer = FakeProducer()
    st, metrics = stage(producer, identity)
    for batch in batches(seed, identity):
        await st.process(batch)
    return outcome(producer, metrics)


@pytest.mark.parametrize("identity", [False, True], ids=["identity_off", "identity_on"])
@pytest.mark.parametrize("seed,envelope_bytes", [(1, 512 * 1024), (2, 3_000)])
async def test_the_core_makes_the_batches_the_python_path_makes(identity: bool, seed: int, envelope_bytes: int,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert native_core.CORE is not None, native_core.CORE_REASON
    monkeypatch.setattr(ingest, "INTERNAL_RECORD_MAX_BYTES", 1_000)
    monkeypatch.setattr(ingest, "ENVELOPE_MAX_BYTES", envelope_bytes)
    monkeypatch.setattr("streams.app.envelope.ENVELOPE_MAX_BYTES", envelope_bytes)
    monkeypatch.setattr("streams.app.envelope.EnvelopeBuilder.__init__.__defaults__", (envelope_bytes,))
    core = await run(identity, seed, envelope_bytes)
    monkeypatch.setattr(ingest, "_CORE", None)
    python = await run(identity, seed, envelope_bytes)
    assert core["envelopes"] == python["envelopes"]
    assert core == python
    reasons = {dict(h)["ts.reason"] for _, _, h in core["dlq"]}
    assert {b"invalid_json", b"future_timestamp", b"too_large"} <= reasons, reasons
    if identity:
        assert core["links"] and core["refused"]
    if envelope_bytes < 10_000:  # envelopes were closed at the size limit and new ones started
        assert len(core["envelopes"]) > 2 * len(batches(seed, identity))


def test_murmur2_is_kafkas() -> None:
    rng = random.Random(3)
    for n in range(300):
        data = bytes(rng.randrange(256) for _ in range(n % 40)) if n % 3 else f"user:c{n:06d}".encode()
        assert native_core.CORE is not None
        assert native_core.CORE.murmur2(data) == murmur2(data)


def test_a_record_the_core_stops_at_is_handled_once() -> None:
    """Only records the core finished count in its tallies; the rest go to ``_one`` (one each)."""
    assert native_core.CORE is not None
    core = native_core.CORE.Ingest(4, 1 << 19, True, NOW + 60_000, 900_000, TOPICS, frozenset({"0"}))
    click = {"event_id": "e1", "ts": NOW - 1, "type": "login", "session_id": "s", "user_id": "u1", "anonymous_id": "a1"}
    recs = [Record(orjson.dumps({**click, "anonymous_id": None})),  # a known customer: taken
            Record(orjson.dumps(click)),  # two ids: a link, the Python path's (with the core's decoding)
            Record(orjson.dumps({**click, "user_id": None})),  # a visitor: taken, as anonymous:a1
            Record(b"{")]  # not plain: the Python path's, undecoded
    assert core.run(recs, 0)[0] == 1
    i, decoded = core.run(recs, 1)
    assert i == 1 and decoded is not None and decoded.ids == [("user", "u1"), ("anonymous", "a1")]
    assert core.run(recs, 2) == (3, None)
    assert core.run(recs, 4) == (4, None)
    assert core.counts() == ({"clickstream": 2}, {})
    assert core.items == 2
    off = native_core.CORE.Ingest(4, 1 << 19, False, NOW + 60_000, 900_000, TOPICS, frozenset({"0"}))
    assert off.run(recs, 0) == (3, None)  # without identity resolution: no link, the visitor dropped
    assert off.counts() == ({"clickstream": 3}, {"clickstream": 1})
    assert off.items == 2


def test_the_core_finishes_a_link_with_the_stages_repeat_check_and_link_batch() -> None:
    assert native_core.CORE is not None
    asked: list[tuple[list[str], int]] = []
    sent: list[bytes] = []

    def repeat(ids: list[str], ts_ms: int) -> bool:
        asked.append((ids, ts_ms))
        return len(asked) > 1  # the first is new, the second a repeat

    core = native_core.CORE.Ingest(4, 1 << 19, True, NOW + 60_000, 900_000, TOPICS, frozenset({"0"}),
                                   repeat, sent.append)
    click = {"event_id": "e1", "ts": NOW - 1, "type": "login", "session_id": "s", "user_id": "u1", "anonymous_id": "a1"}
    recs = [Record(orjson.dumps(click), partition=2, offset=7),
            Record(orjson.dumps({**click, "event_id": "e2", "anonymous_id": "0"}), offset=8),  # a junk id left out
            Record(orjson.dumps({**click, "event_id": "e3"}), offset=9)]
    assert core.run(recs, 0) == (3, None)
    assert asked == [(["user:u1", "anonymous:a1"], NOW - 1)] * 2
    assert [orjson.loads(v) for v in sent] == [{"link_id": "clickstream:e1", "ids": ["user:u1", "anonymous:a1"],
                                                "ts_ms": NOW - 1, "source": "clickstream",
                                                "src": ["events.clickstream", 2, 7]}]
    assert core.junk_refused == 1 and core.items == 3
    assert {obj["customer_id"] for _, v in core.records() for obj in decode_envelope(v)} == {"user:u1"}
