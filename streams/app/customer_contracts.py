"""What the customer stage (``customers.py``) is written against, and what its batches carry.

``Delivered`` (a consumed record), ``StateStore`` (customer states and their changelog) and
``Membership`` (the consumer group) are the contracts ``topology.py`` binds to Faust and the unit
tests to fakes. ``Updated`` is a customer's new state in a batch, ``ExactlyOnce`` the transactional
output, and ``LeaseExpired`` / ``failed`` how a refused batch stays unacknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from streams.engine.features.state import CustomerState
from streams.io.tag_topic import tag_record
from streams.io.transactions import OutRecord, PartitionTransactions


class LeaseExpired(Exception):
    """A batch wrote nothing: the group may have dropped this worker (``group_lease.py``)."""


def failed(exc: Exception) -> asyncio.Future[None]:
    """A settled future that failed with ``exc``: the batch it stands for is not acknowledged."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


class Delivered(Protocol):
    """A consumed record as the stage sees it (faust's ``EventT``: ``.message`` is the record)."""

    @property
    def message(self) -> Any: ...


class StateStore(Protocol):
    """Customer states by key; writes name the delivered record they belong to (its partition)."""

    def get(self, key: bytes) -> CustomerState | None: ...

    def put(self, key: bytes, state: CustomerState, record: Delivered, encoded: bytes | None = None) -> None:
        """``encoded``: ``state.dumps()`` as the stage just made it (the store need not redo it)."""

    def delete(self, key: bytes, record: Delivered) -> None: ...

    def put_local(self, key: bytes, state: CustomerState, record: Delivered) -> None:
        """Like ``put``, without a changelog record (exactly-once: the transaction wrote it)."""

    def delete_local(self, key: bytes, record: Delivered) -> None: ...

    def items(self) -> Iterable[tuple[bytes, object]]: ...

    def held_keys(self) -> Iterable[bytes]:
        """The keys held (no state decoded)."""

    async def flush(self) -> None:
        """Returns once every write so far is on its way to the changelog (before the batch is
        acknowledged)."""

    def drop_pending(self) -> int:
        """Forgets the changelog records not handed to the Kafka client yet (a batch refused after
        it saved: ``group_lease.py``); returns how many."""


class Membership(Protocol):
    """The consumer group as the stage needs it: the generation and what this worker owns."""

    def generation(self) -> int: ...

    def owns(self, record: Delivered) -> bool: ...

    def read_again(self, record: Delivered) -> bool:
        """True for a record processed and acknowledged already, brought again by the re-read of
        a hole before it (``faust_commits.StrictCommits.read_again``)."""

    def lease_expired(self) -> bool:
        """True when the group may have dropped this worker since it last confirmed its membership
        (a pause longer than the session: ``group_lease.py``): a batch then writes nothing."""

    def fence_token(self) -> int:
        """Orders the successive owners of a partition: when this worker's membership began
        (``group_lease.joined_ms``). Its Redis writes carry it, and Redis refuses them once a later
        owner wrote the partition (``redis_sink.Fence``)."""


@dataclass
class Updated:
    key: bytes
    state: CustomerState
    record: Delivered
    existed: bool = True
    """The store held a state for the key before this batch."""
    encoded: bytes | None = None
    """``state.dumps()``, made when the batch checked it can be saved."""

    @property
    def keep(self) -> bool:
        """False when nothing is left to remember: the state is deleted (keeps the store bounded)."""
        return not self.state.is_empty()


@dataclass
class ExactlyOnce:
    """Exactly-once output (``processing_guarantee=exactly_once``): the transactions and the topics
    they write, the changelog being the customers table's."""

    transactions: PartitionTransactions
    tag_topic: str
    changelog_topic: str

    def records(self, changes: Iterable[Mapping[str, Any]], updated: Iterable[Updated],
                record_of: Mapping[bytes, Delivered]) -> dict[int, list[OutRecord]]:
        """A batch's output per customer partition, for one transaction each: the tag changes of
        the partition's customers, then their new states (a state left with nothing: a tombstone)."""
        records: dict[int, list[OutRecord]] = {}
        for change in changes:
            k, v = tag_record(change)
            partition = record_of[str(change["customer_id"]).encode()].message.partition
            records.setdefault(partition, []).append(OutRecord(self.tag_topic, k, v))
        for u in updated:
            partition = u.record.message.partition
            value = (u.encoded or u.state.dumps()) if u.keep else None
            records.setdefault(partition, []).append(OutRecord(self.changelog_topic, u.key, value, partition))
        return records
