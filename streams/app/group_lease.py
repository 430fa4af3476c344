"""When the consumer group last confirmed this worker as a member: the lease behind its writes.

A worker frozen longer than its session timeout (SIGSTOP, a stopped container, a paused VM) is
dropped from the group, and its partitions move to another worker. When it resumes, its customer
batch in flight carries on before any heartbeat tells it so: its consumer generation has not
changed yet. Its Redis writes and, with at-least-once, its changelog records then land after the
new owner's. The changelog records become the partition's last ones, which the next recovery
reads. Nothing fences those writes (exactly-once fences only its transactions). With at-least-once,
the paused-worker fault test lost counts of ~27 customers that way (c000002: 71 of 123 events,
c000076: 2 of 12); with exactly-once, it left stale tags in Redis.

So the customer stage checks the lease before a batch writes anything (``CustomerStage._process``).
A heartbeat that succeeded, or a join that completed, renews it. A batch that finds the lease older
than ``LEASE_SHARE`` of the session timeout writes nothing and is not acknowledged. Its records
are read again by whoever owns the partition: the new owner, or this worker after it rejoins (or
after the re-read of the hole). A write already on the wire when the pause starts still lands
when the worker resumes: the lease narrows the window a resumed batch had, it does not close it.
For Redis, the join time stamped here (``joined_ms``) closes it: Redis refuses a flush whose token
is earlier than the partition's latest writer's (``streams.io.redis_sink.Fence``).
"""

from __future__ import annotations

import time
from typing import Any, Final

from aiokafka.consumer.group_coordinator import GroupCoordinator

LEASE_SHARE: Final = 0.8
"""Of the session timeout: a confirmation older than this may no longer hold at the broker (the
worker heartbeats every third of the session timeout, at most every 3 s: docs/operations.md)."""

_STAMP = "_tagstream_confirmed_at"
_JOINED = "_tagstream_joined_ms"


def install() -> bool:
    """Stamps aiokafka's group coordinators with the time of each successful heartbeat and
    completed join; idempotent. Returns True when it installed the stamps."""
    if getattr(GroupCoordinator._do_heartbeat, "_tagstream_original", None) is not None:
        return False
    real_heartbeat = GroupCoordinator._do_heartbeat
    real_join = GroupCoordinator._on_join_complete

    async def _do_heartbeat(self: Any) -> Any:
        ok = await real_heartbeat(self)
        if ok:
            setattr(self, _STAMP, time.monotonic())
        return ok

    async def _on_join_complete(self: Any, *args: Any, **kwargs: Any) -> Any:
        setattr(self, _STAMP, time.monotonic())
        # never backwards in one process, whatever the wall clock does
        setattr(self, _JOINED, max(int(time.time() * 1000), getattr(self, _JOINED, 0) + 1))
        return await real_join(self, *args, **kwargs)

    _do_heartbeat._tagstream_original = real_heartbeat  # type: ignore[attr-defined]
    _on_join_complete._tagstream_original = real_join  # type: ignore[attr-defined]
    GroupCoordinator._do_heartbeat = _do_heartbeat
    GroupCoordinator._on_join_complete = _on_join_complete
    return True


def confirmed_s_ago(coordinator: Any) -> float:
    """Seconds since ``coordinator`` last confirmed membership (0.0 when it never did: nothing was
    assigned then, and nothing is held back before the first join)."""
    at = getattr(coordinator, _STAMP, None)
    return 0.0 if at is None else time.monotonic() - at


def expired(coordinator: Any, session_timeout_s: float) -> bool:
    """Whether the broker may have dropped this member by now."""
    if coordinator is None:
        return False
    return confirmed_s_ago(coordinator) > LEASE_SHARE * session_timeout_s


def joined_ms(coordinator: Any) -> int:
    """When ``coordinator`` last completed a join (wall-clock ms; 0 before the first): the fencing
    token of this worker's writes to Redis (``redis_sink.Fence``). A partition's next owner joins
    after this worker's session expired, so later by at least the session timeout, which is what
    the clocks of two workers' machines may disagree by at most."""
    return 0 if coordinator is None else int(getattr(coordinator, _JOINED, 0))
