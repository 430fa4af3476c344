"""A Kafka consumer group's leader assigns partitions only once it has metadata for its topics.

aiokafka's leader computes the assignment from the metadata its client holds. When the broker is
unreachable while a consumer subscribes (a worker starting during a broker restart), every
metadata update fails; when the broker returns, the group coordinator is often found before a
metadata update succeeds, and the leader assigns with no metadata for the subscribed topics:
those get no partitions (faust logs "Ignoring missing topic"). aiokafka notices the topics only at
its next periodic refresh, ``metadata_max_age_ms`` later (5 minutes by default): until then the
worker holds no partition of them and processes nothing, while its readiness probe says ready.

``install_fresh_assignment_metadata()`` wraps the leader's assignment step (aiokafka's
``GroupCoordinator._perform_assignment``, used by every consumer in the process: Faust's and the
ingest consumer) so that it first waits until the client's metadata knows every topic the leader
subscribes to, forcing metadata updates meanwhile. A topic still unknown after ``timeout_s`` (it was
deleted) is logged and the assignment proceeds as aiokafka's would. The wrapper only adds a wait
before aiokafka's own code runs; ``check_aiokafka`` refuses an aiokafka without the attributes
it relies on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
"""How long a leader waits for metadata of its topics before it assigns without them."""


class AiokafkaCompatError(RuntimeError):
    """The installed aiokafka lacks what the assignment wrapper relies on."""


def _coordinator_class() -> Any:
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    return GroupCoordinator


def check_aiokafka(coordinator: Any = None) -> None:
    """Raises AiokafkaCompatError unless ``coordinator`` (aiokafka's GroupCoordinator) has the
    assignment step this module wraps."""
    cls = coordinator or _coordinator_class()
    step = getattr(cls, "_perform_assignment", None)
    if step is None or not inspect.iscoroutinefunction(getattr(step, "_tagstream_original", step)):
        raise AiokafkaCompatError("aiokafka's GroupCoordinator has no coroutine _perform_assignment: "
                                  "streams/io/group_metadata.py must be re-checked against this aiokafka")


def missing_topics(cluster: Any, topics: Iterable[str]) -> list[str]:
    """The topics ``cluster`` (aiokafka ClusterMetadata) has no partitions for."""
    return sorted(t for t in topics if not cluster.partitions_for_topic(t))


async def await_topic_metadata(client: Any, topics: Iterable[str], *, timeout_s: float = DEFAULT_TIMEOUT_S,
                               backoff_s: float = 0.1, group: str = "?") -> list[str]:
    """Forces metadata updates of ``client`` (aiokafka AIOKafkaClient) until it knows every topic
    in ``topics`` or ``timeout_s`` passed. Returns the topics still unknown (logged)."""
    wanted = sorted(set(topics))
    missing = missing_topics(client.cluster, wanted)
    if not missing:
        return []
    log.warning("group %s: no metadata yet for %s; updating it before assigning partitions", group,
                ", ".join(missing))
    started = time.monotonic()
    while missing:
        if time.monotonic() - started >= timeout_s:
            log.error("group %s: still no metadata for %s after %.0f s; assigning without them "
                      "(aiokafka re-checks at its next metadata refresh)", group, ", ".join(missing), timeout_s)
            return missing
        for topic in missing:
            client.add_topic(topic)  # tracked by the client's metadata requests (a no-op if already)
        await client.force_metadata_update()
        missing = missing_topics(client.cluster, wanted)
        if missing:
            await asyncio.sleep(backoff_s)
    log.info("group %s: metadata of every subscribed topic known after %.1f s; assigning", group,
             time.monotonic() - started)
    return []


def install_fresh_assignment_metadata(timeout_s: float = DEFAULT_TIMEOUT_S, coordinator: Any = None) -> None:
    """Makes every aiokafka group leader in this process wait for metadata of its subscribed topics
    before it assigns partitions (idempotent)."""
    cls = coordinator or _coordinator_class()
    check_aiokafka(cls)
    real: Callable[..., Any] = cls._perform_assignment
    if getattr(real, "_tagstream_original", None) is not None:
        return

    async def _perform_assignment(self: Any, response: Any) -> Any:
        await await_topic_metadata(self._client, self._subscription.topics, timeout_s=timeout_s,
                                   backoff_s=self._retry_backoff_ms / 1000, group=self.group_id)
        return await real(self, response)

    _perform_assignment._tagstream_original = real  # type: ignore[attr-defined]
    cls._perform_assignment = _perform_assignment
