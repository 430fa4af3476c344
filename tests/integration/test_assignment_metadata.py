"""A consumer that subscribes while the broker is away still gets its partitions when it is back.

aiokafka's group leader assigns from the metadata its client has. A subscription made while the
broker is unreachable never gets metadata for its topics (every update fails), and when the broker
returns the group coordinator is often found before a metadata update succeeds: the leader then
assigns with no metadata for the topics (faust logs "Ignoring missing topic") and nothing is
re-checked until ``metadata_max_age_ms`` (5 minutes). A Faust worker whose broker restarted during
its start processed nothing for those minutes (CI, test_broker_restart). ``streams.io.group_metadata``
makes the leader wait for metadata of every subscribed topic before it assigns."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.io.group_metadata import install_fresh_assignment_metadata
from streams.io.topics import ensure_topics

from .conftest import Stack, stack_cmd


async def _assignment(consumer: AIOKafkaConsumer, want: int, timeout_s: float = 30) -> set[TopicPartition]:
    """Polls until ``want`` partitions are assigned or ``timeout_s`` passed (far below aiokafka's
    metadata_max_age_ms, 300 s, the only other way it would notice a topic)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(consumer.assignment()) < want:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consumer.getmany(timeout_ms=200), 5)
    return set(consumer.assignment())


def _consumer(stack: Stack) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, group_id=f"it-md-{uuid.uuid4().hex[:6]}",
                            enable_auto_commit=False, retry_backoff_ms=100)


async def test_a_topic_unknown_when_the_group_formed_is_assigned_once_it_exists(stack: Stack) -> None:
    """Deterministic: the leader's first assignment happens before the topic exists. Without the
    wait, aiokafka assigns nothing and keeps it so for 5 minutes (checked once: this test fails)."""
    install_fresh_assignment_metadata()
    topic = f"it-md-{uuid.uuid4().hex[:6]}"
    consumer = _consumer(stack)
    await consumer.start()
    try:
        consumer.subscribe([topic])

        async def create_later() -> None:
            await asyncio.sleep(1)
            await ensure_topics(stack.bootstrap, [topic], 2)  # the stack's default is 2 partitions too

        creating = asyncio.create_task(create_later())
        got = await _assignment(consumer, 2)
        await creating
        assert got == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
    finally:
        await consumer.stop()


async def test_a_subscription_made_while_the_broker_is_away_gets_its_partitions(stack: Stack) -> None:
    """The case CI met: whether the coordinator or a metadata update answers first after the
    restart is up to timing; either way the consumer ends with every partition."""
    install_fresh_assignment_metadata()
    topic = f"it-md-{uuid.uuid4().hex[:6]}"
    await ensure_topics(stack.bootstrap, [topic], 2)
    consumer = _consumer(stack)
    await consumer.start()
    try:
        await asyncio.to_thread(stack_cmd, stack, "stop", "kafka")
        consumer.subscribe([topic])
        await asyncio.sleep(2)  # the group coordinator lookup and metadata updates fail meanwhile
        await asyncio.to_thread(stack_cmd, stack, "up", "kafka")
        assert await _assignment(consumer, 2) == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
    finally:
        await consumer.stop()
