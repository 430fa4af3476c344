"""The membership lease: stamped by aiokafka's group coordinator, read by the customer stage."""

from __future__ import annotations

import time
from typing import Any

from aiokafka.consumer.group_coordinator import GroupCoordinator

from streams.app import group_lease


class _Coordinator:
    pass


def test_the_lease_expires_after_most_of_the_session_timeout() -> None:
    c: Any = _Coordinator()
    assert not group_lease.expired(c, 10.0)  # never confirmed: nothing was assigned yet
    assert not group_lease.expired(None, 10.0)
    c._tagstream_confirmed_at = time.monotonic() - 7.0
    assert not group_lease.expired(c, 10.0)
    c._tagstream_confirmed_at = time.monotonic() - 8.5  # past 0.8 of 10 s
    assert group_lease.expired(c, 10.0)


async def test_a_successful_heartbeat_or_a_join_renews_it(monkeypatch: Any) -> None:
    answers = iter([True, False])

    async def heartbeat(self: Any) -> bool:
        return next(answers)

    async def join(self: Any, *args: Any) -> str:
        return "joined"

    monkeypatch.setattr(GroupCoordinator, "_do_heartbeat", heartbeat)
    monkeypatch.setattr(GroupCoordinator, "_on_join_complete", join)
    assert group_lease.install()
    assert not group_lease.install()  # once
    c: Any = _Coordinator()
    assert await GroupCoordinator._do_heartbeat(c) is True
    first = c._tagstream_confirmed_at
    c._tagstream_confirmed_at = first - 100
    assert await GroupCoordinator._do_heartbeat(c) is False  # a failed one renews nothing
    assert c._tagstream_confirmed_at == first - 100
    assert group_lease.joined_ms(c) == 0  # no join yet: no fence token
    assert await GroupCoordinator._on_join_complete(c, 1, "leader") == "joined"
    assert group_lease.confirmed_s_ago(c) < 1.0
    joined = group_lease.joined_ms(c)
    assert abs(joined - time.time() * 1000) < 1_000
    c._tagstream_joined_ms = joined + 3_600_000  # the wall clock went back an hour since
    await GroupCoordinator._on_join_complete(c, 2, "leader")
    assert group_lease.joined_ms(c) == joined + 3_600_001  # the token never goes backwards
    assert group_lease.joined_ms(None) == 0
