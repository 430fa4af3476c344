"""The topics a worker needs, created before Faust subscribes (idempotent)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from streams.io.deadletter import DLQ_MAX_RECORD_BYTES
from streams.settings import Settings


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Configs of the topics the worker creates when they are missing."""
    return {settings.kafka.deadletter_topic: {"max.message.bytes": str(DLQ_MAX_RECORD_BYTES)},
            **internal_topics(settings)}


def internal_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Topics the worker owns besides the source/DLQ/tag topics, with their configs.

    They are created before Faust subscribes: a consumer that subscribes to a topic that does
    not exist yet drops it from its subscription ("Ignoring missing topic") until the next
    rebalance, which would stall the customer agent.
    """
    return {
        customer_topic_name(settings): {},
        changelog_topic_name(settings): {"cleanup.policy": "compact"},
    }


def customer_topic_name(settings: Settings) -> str:
    """The internal topic of envelopes, partitioned by customer."""
    return f"{settings.app_id}-customer-events"


def changelog_topic_name(settings: Settings) -> str:
    """The compacted changelog of the customers table."""
    return f"{settings.app_id}-customers-changelog"


def identity_links_topic_name(settings: Settings) -> str:
    """The one-partition topic of identity links (ingest -> the identity stage, docs/identity.md)."""
    return f"{settings.app_id}-identity-links"


def identity_changelog_topic_name(settings: Settings) -> str:
    """The compacted, one-partition changelog of the identity table (cluster records)."""
    return f"{settings.app_id}-identity-changelog"


def identity_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """The identity stage's one-partition topics and configs (none with identity resolution off)."""
    if not settings.identity.enabled:
        return {}
    return {identity_links_topic_name(settings): {},
            identity_changelog_topic_name(settings): {"cleanup.policy": "compact"}}


def rules_topic_name(settings: Settings) -> str:
    """The compacted, one-partition topic of deployed rule sets (streams/io/rules_topic.py)."""
    return f"{settings.app_id}-rules"


RULES_TOPIC_CONFIG = {"cleanup.policy": "compact"}


def worker_topics(settings: Settings) -> list[str]:
    """Every topic a worker reads or writes."""
    ks = settings.kafka
    return [*settings.ingest_topics().values(), ks.deadletter_topic, ks.tag_changes_topic, *internal_topics(settings)]



async def ensure_topics(bootstrap_servers: str, names: Iterable[str], partitions: int, replication: int = 1,
                        configs: Mapping[str, Mapping[str, str]] | None = None,
                        client_options: Mapping[str, Any] | None = None) -> None:
    """Create the topics in ``names`` that do not exist yet; existing ones are left alone.

    ``configs`` gives topic configs by name (e.g. ``{"x-changelog": {"cleanup.policy": "compact"}}``).

    Raises:
        RuntimeError: the broker at ``bootstrap_servers`` is unreachable, or creation failed.
    """
    wanted = list(dict.fromkeys(names))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="tagstream-admin",
                                **dict(client_options or {}))
    try:
        try:
            await admin.start()
        except KafkaConnectionError as exc:
            raise RuntimeError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from exc
        missing = [n for n in wanted if n not in set(await admin.list_topics())]
        if not missing:
            return
        response = await admin.create_topics(
            [NewTopic(name=n, num_partitions=partitions, replication_factor=replication,
                      topic_configs=dict((configs or {}).get(n, {}))) for n in missing]
        )
        # create_topics reports per-topic errors in the response instead of raising.
        failures = []
        for topic, code, *rest in response.topic_errors:
            if code == 0 or code == TopicAlreadyExistsError.errno:  # lost a race: fine
                continue
            failures.append(f"{topic}: error {code} {rest[0] if rest and rest[0] else ''}".rstrip())
        if failures:
            raise RuntimeError(f"creating topics on {bootstrap_servers} failed: {'; '.join(failures)}")
        # A fresh topic has no partition leaders for a moment; wait (briefly) until metadata
        # shows one per partition so producers start with fewer NotLeaderForPartition retries.
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            described = await admin.describe_topics(missing)
            if all(
                t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                break
            await asyncio.sleep(0.1)
    except KafkaError as exc:
        raise RuntimeError(f"Kafka admin request to {bootstrap_servers} failed: {exc!r}") from exc
    finally:
        await admin.close()


async def check_copartitioned(bootstrap_servers: str, pairs: Iterable[tuple[str, str]],
                              client_options: Mapping[str, Any] | None = None) -> None:
    """Raises RuntimeError naming the topics when a table's source topic and its changelog have
    different partition counts (e.g. a changelog auto-created by a reader before the worker made it):
    Faust would crash its agent on every write, over and over, instead of stopping."""
    pairs = list(pairs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="tagstream-admin",
                                **dict(client_options or {}))
    try:
        await admin.start()
        names = sorted({n for pair in pairs for n in pair})
        counts = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)
                  if t["error_code"] == 0}
    except KafkaError as exc:
        raise RuntimeError(f"Kafka admin request to {bootstrap_servers} failed: {exc!r}") from exc
    finally:
        await admin.close()
    wrong = [f"{source} has {counts[source]} partitions but its changelog {changelog} has {counts[changelog]}"
             for source, changelog in pairs if source in counts and changelog in counts
             and counts[source] != counts[changelog]]
    if wrong:
        raise RuntimeError("; ".join(wrong) + " — delete the changelog topic (its state is rebuilt only from "
                           "it, so only when that state may go) or recreate both with one partition count")


def copartitioned_pairs(settings: Settings) -> list[tuple[str, str]]:
    """(source topic, changelog) of every table of the worker."""
    pairs = [(customer_topic_name(settings), changelog_topic_name(settings))]
    if settings.identity.enabled:
        pairs.append((identity_links_topic_name(settings), identity_changelog_topic_name(settings)))
    return pairs
