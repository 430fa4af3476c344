"""The wait a group leader makes for metadata of its topics (streams/io/group_metadata.py), against
a stand-in client; tests/integration/test_assignment_metadata.py runs it against the real broker."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from streams.io.group_metadata import (
    AiokafkaCompatError,
    await_topic_metadata,
    check_aiokafka,
    install_fresh_assignment_metadata,
)


class Cluster:
    def __init__(self) -> None:
        self.known: dict[str, set[int]] = {}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.known.get(topic)


class Client:
    """Learns ``topic`` at its ``learn_after``-th forced metadata update (never when None)."""

    def __init__(self, learn_after: int | None, topic: str = "t") -> None:
        self.cluster = Cluster()
        self.topics: set[str] = set()
        self.updates = 0
        self.learn_after, self.topic = learn_after, topic

    def add_topic(self, topic: str) -> None:
        self.topics.add(topic)

    async def force_metadata_update(self) -> bool:
        self.updates += 1
        if self.learn_after is not None and self.updates >= self.learn_after and self.topic in self.topics:
            self.cluster.known[self.topic] = {0, 1}
        return True


async def test_known_topics_cost_no_metadata_update() -> None:
    client = Client(learn_after=1)
    client.cluster.known["t"] = {0}
    assert await await_topic_metadata(client, ["t"]) == []
    assert client.updates == 0


async def test_updates_until_the_topic_is_known(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(learn_after=3)
    with caplog.at_level(logging.INFO, logger="streams.io.group_metadata"):
        assert await await_topic_metadata(client, ["t"], backoff_s=0, group="g") == []
    assert client.updates == 3 and client.topics == {"t"}
    assert "group g: no metadata yet for t" in caplog.text


async def test_gives_up_after_the_timeout_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(learn_after=None)
    with caplog.at_level(logging.ERROR, logger="streams.io.group_metadata"):
        assert await await_topic_metadata(client, ["t", "u"], timeout_s=0.05, backoff_s=0.01, group="g") == ["t", "u"]
    assert client.updates >= 2
    assert "still no metadata for t, u" in caplog.text


async def test_the_installed_step_waits_then_runs_aiokafkas() -> None:
    calls: list[Any] = []

    class Coordinator:
        _client: Client
        _subscription: Any
        _retry_backoff_ms: int
        group_id: str

        async def _perform_assignment(self, response: Any) -> Any:
            calls.append(("assign", sorted(self._client.cluster.known)))
            return {"m": response}

    install_fresh_assignment_metadata(coordinator=Coordinator)
    install_fresh_assignment_metadata(coordinator=Coordinator)  # idempotent: wrapped once
    c = Coordinator()
    c._client = Client(learn_after=2)
    c._subscription = type("S", (), {"topics": {"t"}})()
    c._retry_backoff_ms = 0
    c.group_id = "g"
    assert await c._perform_assignment("r") == {"m": "r"}
    assert calls == [("assign", ["t"])]


def test_an_aiokafka_without_the_step_is_refused() -> None:
    with pytest.raises(AiokafkaCompatError, match="re-checked"):
        check_aiokafka(type("Coordinator", (), {}))
    check_aiokafka()  # the installed aiokafka has it
