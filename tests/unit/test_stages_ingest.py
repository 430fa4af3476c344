"""The ingest stage's batch logic: events repartitioned by customer, bad records dead-lettered (fakes
of the io contracts, no Kafka)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.app.envelope import EnvelopeSender, decode_envelope, partition_for
from streams.app.ingest import IngestStage
from streams.engine.clock import ManualClock
from streams.io.deadletter import DeadLetterWriter
from streams.io.metrics import Metrics

from .stages_support import (
    NOW,
    PARTITIONS,
    FakeProducer,
    Record,
    ingest_path_fixture,  # noqa: F401  (the fixture `ingest_path`)
    metrics_fixture,  # noqa: F401  (the fixture `metrics`)
)

pytestmark = pytest.mark.usefixtures("ingest_path")  # every test: through the Rust core and the Python path


def click(cid: str | None, i: int, **kw: Any) -> bytes:
    ev = {"event_id": f"e{cid}-{i}", "ts": NOW - 1000 + i, "type": "product_view", "session_id": "s",
          "user_id": cid, "anonymous_id": None if cid else "anon-1", **kw}
    return orjson.dumps(ev)


def ingest_stage(producer: FakeProducer, metrics: Metrics) -> IngestStage:
    return IngestStage(source_by_topic={"events.clickstream": "clickstream"}, partitions=PARTITIONS,
                       clock=ManualClock(NOW), future_tolerance_ms=60_000,
                       envelopes=EnvelopeSender(producer, "cust"),
                       deadletter=DeadLetterWriter(producer, "dlq", metrics), metrics=metrics)


async def test_ingest_repartitions_by_customer_and_dead_letters_bad_records(metrics: Metrics) -> None:
    producer = FakeProducer()
    records = [Record(click(f"c{i % 5}", i), offset=i) for i in range(20)]
    records += [Record(b"{not json", offset=20), Record(click(None, 21), offset=21),
                Record(click("c9", 22, ts=NOW + 3_600_000), offset=22)]
    await ingest_stage(producer, metrics).process(records)
    envelopes = producer.on("cust")
    assert len(envelopes) == len({partition_for(f"c{i}".encode(), PARTITIONS) for i in range(5)})
    items = [(p, obj) for _, _, v, p, _ in envelopes for obj in decode_envelope(v)]
    assert len(items) == 20
    assert all(p == partition_for(obj["customer_id"].encode(), PARTITIONS) for p, obj in items)
    # each event carries its source position (a backfill tells by it what the live path counted)
    assert sorted(obj["so"] for _, obj in items) == list(range(20))
    assert {obj["sp"] for _, obj in items} == {"clickstream:0"}
    for cid in ("c0", "c3"):  # a customer's events keep their order
        ids = [obj["event_id"] for _, obj in items if obj["customer_id"] == cid]
        assert ids == sorted(ids, key=lambda e: int(e.split("-")[1]))
    dlq = producer.on("dlq")
    reasons = sorted(dict(h)["ts.reason"].decode() for *_, h in dlq)
    assert reasons == ["future_timestamp", "invalid_json"]
    assert {dict(h)["ts.source_offset"] for *_, h in dlq} == {b"20", b"22"}
    assert dlq[0][2] == b"{not json"  # the original bytes, unchanged
    assert metrics.events_anonymous.labels("clickstream")._value.get() == 1


async def test_ingest_dead_letters_an_event_too_big_for_the_internal_topic(metrics: Metrics,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.app import ingest

    monkeypatch.setattr(ingest, "INTERNAL_RECORD_MAX_BYTES", 200)
    producer = FakeProducer()
    await ingest_stage(producer, metrics).process([Record(click("c1", 0, url="https://x/" + "a" * 300))])
    assert producer.on("cust") == []
    assert [dict(h)["ts.reason"] for *_, h in producer.on("dlq")] == [b"too_large"]
