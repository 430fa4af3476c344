"""``tagstream forget ID``: erasure of a person (PIPL / GDPR right to be forgotten), docs/identity.md.

The request goes to the identity stage through its own topic (``<app>-identity-links``), in line with
the links, so it is applied in order with them: the whole cluster of ``ID`` is forgotten — every id's
state (or forwarding stub) replaced by a tombstone, its tags removed from Redis and audiences (tag
changes with ``cause: "erasure"``), the aliases deleted, the cluster record deleted. For
``identity.erasure_period_ms`` events naming any of those ids are counted and dropped and links
naming them are refused (``erased``), so a replay of old events cannot bring the person back.

With ``--wait S`` it waits until the changelog holds a tombstone for ``ID``.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import orjson
from aiokafka import AIOKafkaProducer

from schemas.ids import parse_id_key
from streams.engine.features.state import CustomerState
from streams.io.changelog_reader import ChangelogReader
from streams.io.topics import changelog_topic_name, ensure_topics, identity_links_topic_name, identity_topics
from streams.settings import Settings


class ForgetRefused(ValueError):
    """The request cannot be made (identity off, not a typed id): nothing was sent."""


def request(id_key: str) -> dict[str, object]:
    return {"link_id": f"forget:{uuid.uuid4().hex}", "forget": id_key, "ids": [id_key],
            "ts_ms": int(time.time() * 1000), "source": "forget"}


def forget(settings: Settings, id_key: str, wait_s: float) -> int:
    if not settings.identity.enabled:
        raise ForgetRefused("identity resolution is off (TAGSTREAM_IDENTITY__ENABLED=false): customers are the "
                            "input's ids; delete their Redis keys and state by id instead (docs/identity.md)")
    try:
        parse_id_key(id_key)
    except ValueError:
        raise ForgetRefused(f"{id_key!r} is not a typed id: <type>:<value>, e.g. user:u-1") from None
    ks, topic = settings.kafka, identity_links_topic_name(settings)
    record = request(id_key)

    async def send() -> None:
        await ensure_topics(ks.bootstrap_servers, [topic], 1, ks.replication_factor,
                            configs=identity_topics(settings), client_options=ks.client_options())
        producer = AIOKafkaProducer(bootstrap_servers=ks.bootstrap_servers, acks="all", **ks.client_options())
        await producer.start()
        try:
            await producer.send_and_wait(topic, orjson.dumps(record), key=b"")
        finally:
            await producer.stop()

    asyncio.run(send())
    days = settings.identity.erasure_period_ms / 86_400_000
    print(f"erasure of {id_key} requested ({record['link_id']}): its whole cluster's states, tags and aliases go; "
          f"events and links naming them are dropped for {days:g} days")
    if wait_s <= 0:
        return 0
    return asyncio.run(_wait_for_tombstone(settings, id_key, wait_s))


async def _wait_for_tombstone(settings: Settings, id_key: str, wait_s: float) -> int:
    ks = settings.kafka
    deadline = time.monotonic() + wait_s
    while True:
        async with ChangelogReader(ks.bootstrap_servers, changelog_topic_name(settings),
                                   client_options=ks.client_options()) as reader:
            found = await reader.find(id_key.encode())
        if found is not None and found.value is not None:
            moved = CustomerState.loads(found.value).moved or {}
            if "erased_until" in moved:
                print(f"{id_key}: forgotten (tombstone until {moved['erased_until']})")
                return 0
        if time.monotonic() > deadline:
            print(f"tagstream forget: no tombstone for {id_key} after {wait_s:g} s (is a worker running?)",
                  file=sys.stderr)
            return 1
        await asyncio.sleep(0.5)
