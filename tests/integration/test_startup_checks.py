"""A worker whose table changelog has another partition count than the table's source topic stops at
start with one line naming both topics (Faust would crash the agent on every write, forever)."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from .conftest import Stack, WorkerProc


def test_a_changelog_with_another_partition_count_stops_the_worker_with_one_line(stack: Stack) -> None:
    w = WorkerProc(stack, "mismatch")

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(f"{w.prefix}-customers-changelog", 3, 1)])
        finally:
            await admin.close()

    asyncio.run(create())
    w.start()
    assert w.proc is not None
    assert w.proc.wait(timeout=60) == 1
    line = w.tail(5)
    assert f"{w.prefix}-customer-events has 2 partitions but its changelog {w.prefix}-customers-changelog has 3" \
        in line, line
