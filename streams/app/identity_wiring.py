"""Identity resolution bound to Faust: the links topic, the identity table and agent, and what
the ingest and customer stages get of it.

    ingest ──links──> <app>-identity-links (1 partition) ── identity agent ──┬─> aliases in Redis
                                                                            └─> absorb orders ─> customer-events
    customers: absorb -> forwarding stub + merge item -> survivor's partition -> merged state

Nothing here with ``identity.enabled`` off: the worker is the single-id-space one it always was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from streams.app.customer_identity import IdentityOutput
from streams.app.envelope import EnvelopeSender
from streams.app.faust_producer import kafka_producer
from streams.app.faust_take_events import take_events
from streams.app.identity_stage import IdentityStage, Lease, graph_limits
from streams.app.table_store import TableStore
from streams.engine.identity.graph import REFUSAL_REASONS
from streams.io.aliases import AliasWriter
from streams.io.contract import BatchSender
from streams.io.deadletter import DeadLetterWriter
from streams.io.metrics import Metrics
from streams.io.topics import identity_changelog_topic_name, identity_links_topic_name
from streams.settings import Settings


@dataclass
class IdentityWiring:
    links: EnvelopeSender
    """Where ingest sends links."""
    output: IdentityOutput
    """What the customer stage needs: where forwards and merge items go."""
    stage: IdentityStage


def wire_identity(app: faust.App, settings: Settings, metrics: Metrics, redis_client: Any,
                  customer_topic: str, lease: Lease) -> IdentityWiring | None:
    """``lease``: the worker's group membership, which the stage's writes are checked and fenced by."""
    if not settings.identity.enabled:
        return None
    ks = settings.kafka

    def batches() -> BatchSender | None:
        return kafka_producer(app)

    links_topic = app.topic(identity_links_topic_name(settings), partitions=1, internal=True,
                            key_serializer="raw", value_serializer="raw")
    changelog = app.topic(identity_changelog_topic_name(settings), partitions=1, internal=True, compacting=True,
                          deleting=False, acks=False, key_serializer="raw", value_serializer="raw", allow_empty=True)
    table = app.Table("identity", default=None, partitions=1, key_type=bytes, value_type=bytes,
                      changelog_topic=changelog)
    table.value_serializer = "raw"  # type: ignore[attr-defined]
    stage = IdentityStage(
        limits=graph_limits(settings.identity), partitions=ks.partitions,
        store=TableStore(table, batches=batches, encode=bytes),  # values are the records' bytes
        orders=EnvelopeSender(app.producer, customer_topic, batches=batches),
        aliases=AliasWriter(redis_client, prefix=settings.redis_key_prefix(), hash_tag=settings.redis.cluster,
                            backoff_max_ms=settings.redis.retry_backoff_max_ms),
        deadletter=DeadLetterWriter(app.producer, ks.deadletter_topic, metrics), metrics=metrics,
        erasure_period_ms=settings.identity.erasure_period_ms, lease=lease)
    metrics.precreate_identity(REFUSAL_REASONS)
    within_s = settings.engine.batch_within_ms / 1000

    @app.agent(links_topic, name="identity")
    async def process_links(stream: faust.StreamT[Any]) -> None:
        async for events in take_events(stream, settings.engine.envelopes_max, within_s, settled=stage.settled):
            await stage.process(events)

    async def recovered() -> None:
        stage.recover()

    table.on_recover(recovered)
    links_name = links_topic.get_topic_name()
    return IdentityWiring(
        links=EnvelopeSender(app.producer, links_name, batches=batches),
        output=IdentityOutput(EnvelopeSender(app.producer, customer_topic, batches=batches), ks.partitions,
                              tag_anonymous=settings.identity.tag_anonymous,
                              anonymous_ttl_ms=settings.identity.anonymous_ttl_ms),
        stage=stage)
