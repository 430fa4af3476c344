"""Anonymous customers in the customer stage with identity resolution on (fakes of the io
contracts): their features count all the same; their tags, and the changes a merge or their expiry
makes to them, are published only with TAG_ANONYMOUS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.engine.clock import ManualClock
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
    metrics_fixture,  # noqa: F401  (the fixture `metrics`)
)


@pytest.mark.parametrize("tag_anonymous", [False, True])
async def test_anonymous_visitors_keep_features_and_get_tags_only_when_published(
        tmp_path: Path, metrics: Metrics, tag_anonymous: bool) -> None:
    """Identity resolution on: with TAG_ANONYMOUS off an anonymous-only customer's tags are not
    evaluated at all (nothing to publish, no due time); its features count all the same."""
    from streams.app.customer_identity import IdentityOutput
    from streams.app.envelope import EnvelopeSender

    producer, store = FakeProducer(), DictStore()
    output = IdentityOutput(EnvelopeSender(producer, "cust"), PARTITIONS, tag_anonymous=tag_anonymous)
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group(), identity=output)
    await stage.process([envelope("anonymous:d1", 3), envelope("user:u1", 3)])
    tagged = {orjson.loads(v or b"")["customer_id"] for _, _, v, _, _ in producer.on("tags")}
    assert tagged == ({"anonymous:d1", "user:u1"} if tag_anonymous else {"user:u1"})
    anon, user = store.data[b"anonymous:d1"], store.data[b"user:u1"]
    assert stage.engine.feature_values(anon, NOW) == stage.engine.feature_values(user, NOW)
    assert anon.tags.keys() == ({"browser"} if tag_anonymous else set())
    assert user.tags.keys() == {"browser"}


@pytest.mark.parametrize("tag_anonymous", [False, True])
async def test_an_anonymous_customers_changes_from_a_merge_or_its_expiry_are_published_only_with_tag_anonymous(
        tmp_path: Path, metrics: Metrics, tag_anonymous: bool) -> None:
    """An anonymous customer holding a tag (made while TAG_ANONYMOUS was on): its removal, by a merge
    into an account or by its time to live, is published only if TAG_ANONYMOUS is on now; the
    account's own changes from the merge always are."""
    from streams.app.customer_identity import IdentityOutput
    from streams.app.envelope import EnvelopeBuilder, EnvelopeSender

    producer, store = FakeProducer(), DictStore()
    output = IdentityOutput(EnvelopeSender(producer, "cust"), PARTITIONS, tag_anonymous=True, anonymous_ttl_ms=60_000)
    stage, _ = customer_stage(tmp_path, producer, metrics, store, Group(), identity=output)
    await stage.process([envelope("anonymous:d1", 3), envelope("anonymous:d2", 3)])
    assert store.data[b"anonymous:d1"].tags.keys() == store.data[b"anonymous:d2"].tags.keys() == {"browser"}
    output.tag_anonymous = tag_anonymous
    producer.sent.clear()

    def item(obj: dict[str, Any]) -> Event:
        b = EnvelopeBuilder(PARTITIONS)
        b.add(obj["customer_id"].encode(), orjson.dumps(obj))
        (p, value), = b.records()
        return Event(Record(value, topic="cust", partition=p))

    snapshot = orjson.loads(store.data[b"anonymous:d1"].dumps())
    await stage.process([item({"customer_id": "user:u1",
                               "merge": {"from": "anonymous:d1", "merge_id": "m-1", "state": snapshot}})])
    assert isinstance(stage.clock, ManualClock)
    stage.clock.advance(61_000)
    expires = store.data[b"anonymous:d2"].expires_ms
    await stage.process([item({"customer_id": "anonymous:d2", "tick": expires})])
    published = [(c["customer_id"], c["op"], c["cause"]) for c in
                 (orjson.loads(v or b"") for _, _, v, _, _ in producer.on("tags"))]
    anonymous = [("anonymous:d1", "remove", "merge"), ("anonymous:d2", "remove", "expiry")]
    assert published == [("user:u1", "add", "merge"), *(anonymous if tag_anonymous else [])]
    assert b"anonymous:d2" not in store.data  # expired all the same
