"""Envelopes on the internal customer topic: partitioning, order, size limit, old records."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from streams.app.envelope import EnvelopeBuilder, decode_envelope, partition_for


@given(st.binary(min_size=1, max_size=40), st.integers(1, 64))
def test_partition_is_kafkas_default_partitioner(key: bytes, n: int) -> None:
    # The same partition a keyed one-event record got, so old and new records meet one state.
    assert partition_for(key, n) == DefaultPartitioner()(key, list(range(n)), list(range(n)))


def test_items_are_grouped_by_partition_in_order() -> None:
    b = EnvelopeBuilder(4)
    sent: list[dict[str, Any]] = []
    for i in range(200):
        cid = f"u-{i % 17}"
        item = {"customer_id": cid, "seq": i}
        b.add(cid.encode(), orjson.dumps(item))
        sent.append(item)
    assert b.items == 200
    got: dict[str, list[int]] = {}
    for p, value in b.records():
        for got_item in decode_envelope(value):
            assert partition_for(got_item["customer_id"].encode(), 4) == p
            got.setdefault(got_item["customer_id"], []).append(got_item["seq"])
    for cid in {x["customer_id"] for x in sent}:
        assert got[cid] == [x["seq"] for x in sent if x["customer_id"] == cid]


def test_an_envelope_closes_at_its_size_limit() -> None:
    b = EnvelopeBuilder(1, max_bytes=1000)
    items = [orjson.dumps({"customer_id": "u-1", "pad": "x" * 80, "seq": i}) for i in range(50)]
    for it in items:
        b.add(b"u-1", it)
    records = list(b.records())
    assert len(records) > 1 and all(len(v) <= 1000 for _, v in records)
    assert [x["seq"] for _, v in records for x in decode_envelope(v)] == list(range(50))


def test_nothing_added_means_no_records() -> None:
    assert list(EnvelopeBuilder(3).records()) == []


def test_an_old_one_event_record_is_still_read() -> None:
    assert decode_envelope(b'{"customer_id":"u-1","tick":5}') == [{"customer_id": "u-1", "tick": 5}]


@pytest.mark.parametrize("value", [None, b"", b"nope", b"[1,2]", b'{"x":1}', b'[{"customer_id":3}]', b"42"])
def test_foreign_records_are_a_clear_error(value: bytes | None) -> None:
    with pytest.raises(ValueError):
        decode_envelope(value)


def test_partitions_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EnvelopeBuilder(0)
