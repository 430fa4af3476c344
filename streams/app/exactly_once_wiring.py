"""Exactly-once output for the customer stage (``processing_guarantee=exactly_once``), wired to Faust:
one transactional producer per customer partition (``streams/io/transactions.py``), fenced when the
partition is assigned (before its table is recovered), released when it is revoked, closed at
shutdown; Faust itself stays at-least-once and reads committed records only
(``faust_compat.install_read_committed``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faust

from streams.app import faust_compat
from streams.app.customer_contracts import ExactlyOnce
from streams.io.deadletter import DLQ_MAX_RECORD_BYTES
from streams.io.transactions import PartitionTransactions
from streams.settings import Settings


def wire_exactly_once(app: faust.App, settings: Settings, changelog_topic: str,
                      customer_topic: str) -> ExactlyOnce | None:
    """The customer stage's transactions (exactly_once), fencing on assignment, released on revoke."""
    if settings.processing_guarantee != "exactly_once":
        return None
    faust_compat.install_read_committed(app)  # Faust stays at-least-once; it reads committed state
    ks = settings.kafka
    transactions = PartitionTransactions(
        bootstrap_servers=ks.bootstrap_servers, transactional_prefix=f"{settings.app_id}-tagstream-customers",
        client_options=ks.client_options(), linger_ms=ks.linger_ms, max_request_size=DLQ_MAX_RECORD_BYTES)

    def ours(tps: Iterable[Any]) -> list[int]:
        return sorted(tp.partition for tp in tps if tp.topic == customer_topic)

    @app.on_partitions_revoked.connect
    async def _release(*args: Any, **kwargs: Any) -> None:  # (sender, revoked)
        await transactions.release(ours(args[1]))  # waits for a commit in flight on those partitions

    async def _fence(assigned: set[Any]) -> None:
        # start (InitProducerId) before the recovery reads the changelog: the previous owner's
        # transaction is then committed (and read) or aborted, never committed after the read
        await transactions.acquire(ours(assigned))

    faust_compat.before_table_recovery(app, _fence)

    @app.on_before_shutdown.connect
    async def _close(*args: Any, **kwargs: Any) -> None:
        await transactions.close()

    return ExactlyOnce(transactions, ks.tag_changes_topic, changelog_topic)
