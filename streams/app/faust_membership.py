"""The customer stage's view of the consumer group (``customer_contracts.Membership``), read from the
Faust app: its generation, its assignment, the records to read again after a hole
(``faust_commits``) and the membership lease (``group_lease``)."""

from __future__ import annotations

from typing import Any

import faust

from streams.app import faust_commits, group_lease
from streams.app.customer_contracts import Delivered


class AppMembership:
    """The stage's view of the consumer group, from the faust app."""

    def __init__(self, app: faust.App, strict: faust_commits.StrictCommits, session_timeout_s: float) -> None:
        self.app = app
        self.strict = strict
        self.session_timeout_s = session_timeout_s

    def generation(self) -> int:
        return int(self.app.consumer_generation_id)

    def owns(self, record: Delivered) -> bool:
        return record.message.tp in self.app.consumer.assignment()

    def read_again(self, record: Delivered) -> bool:
        return self.strict.read_again(record.message.tp, record.message.offset)

    def lease_expired(self) -> bool:
        return group_lease.expired(self._coordinator(), self.session_timeout_s)

    def fence_token(self) -> int:
        return group_lease.joined_ms(self._coordinator())

    def _coordinator(self) -> Any:
        try:  # faust's consumer thread holds the aiokafka consumer
            return self.app.consumer._thread._ensure_consumer()._coordinator  # type: ignore[attr-defined]
        except Exception:  # not started (or stopping): nothing assigned to write for
            return None
