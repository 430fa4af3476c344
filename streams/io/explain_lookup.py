"""Explaining one customer from its live state: the changelog lookup behind ``tagstream explain`` and
``GET /customers/{customer_id}/explain``.

The customer's latest state is read from the customers table's changelog, from the one partition
its id hashes to (``ChangelogReader.find``; the partitioner is the customer topic's, so it is the
partition the workers write that customer's state to), then explained under the rule set in force
by streams/engine/explain.py. No consumer group, nothing committed, nothing written. A lookup costs
one partition read: with memory held to one record, but time proportional to that partition's
size, so the API runs at most ``max_concurrent`` at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaError

from schemas.api import CustomerExplain
from streams.engine.explain import explain_customer
from streams.engine.features.state import CustomerState
from streams.engine.tag_engine import TagEngine
from streams.io.changelog_reader import ChangelogReader
from streams.io.topics import changelog_topic_name
from streams.settings import Settings
from tag_rules import CompiledRuleSet

RulesSource = Callable[[], Awaitable[CompiledRuleSet]]
"""Gives the rule set in force each time it is called."""

LOOKUP_TIMEOUT_S = 60.0


class CustomerNotFound(LookupError):
    """The changelog holds no state for the customer (or a deleted one)."""


class StateUnavailable(RuntimeError):
    """The changelog could not be read: Kafka unreachable, the topic missing, a timeout."""


class CorruptState(ValueError):
    """The customer's changelog record is not a state this version can read."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Explainer:
    """``await Explainer(settings, rules).explain(customer_id)`` -> :class:`CustomerExplain`.

    Use it from one event loop (the engine it keeps is not shared across threads)."""

    def __init__(self, settings: Settings, rules: RulesSource, *, now_ms: Callable[[], int] = wall_clock_ms,
                 max_concurrent: int = 2, timeout_s: float = LOOKUP_TIMEOUT_S) -> None:
        ks = settings.kafka
        self.topic = changelog_topic_name(settings)
        self._bootstrap = ks.bootstrap_servers
        self._options = ks.client_options()
        self._fetch_max_bytes = ks.fetch_max_bytes
        self._rules = rules
        self._now_ms = now_ms
        self._timeout_s = timeout_s
        self._max_concurrent = max_concurrent
        self._slots: asyncio.Semaphore | None = None
        self._engine: TagEngine | None = None

    async def explain(self, customer_id: str) -> CustomerExplain:
        """Raises CustomerNotFound, StateUnavailable or CorruptState, each with a message for a person."""
        if self._slots is None:  # created on the loop that uses it
            self._slots = asyncio.Semaphore(self._max_concurrent)
        rules = await self._rules()
        engine = self._engine
        if engine is None or engine.rules is not rules:
            engine = self._engine = TagEngine(rules)
        async with self._slots:
            try:
                async with asyncio.timeout(self._timeout_s):
                    async with ChangelogReader(self._bootstrap, self.topic, client_options=self._options,
                                               fetch_max_bytes=self._fetch_max_bytes) as reader:
                        found = await reader.find(customer_id.encode())
            except TimeoutError:
                raise StateUnavailable(f"reading {self.topic} took longer than {self._timeout_s:.0f} s") from None
            except KafkaError as exc:
                raise StateUnavailable(f"reading {self.topic} failed: {exc!r}") from exc
            except RuntimeError as exc:  # the reader's: broker unreachable, topic missing, no progress
                raise StateUnavailable(str(exc)) from exc
        if found is None:
            raise CustomerNotFound(f"customer {customer_id!r} has no state in {self.topic} (an unknown id, or no "
                                   "event of it has reached the workers)")
        where = f"{self.topic}[{found.partition}]@{found.offset}"
        if found.value is None:
            raise CustomerNotFound(f"customer {customer_id!r} has no state: deleted at {where} (nothing was left "
                                   "to remember: no tag held, no feature data in any window)")
        try:
            state = CustomerState.loads(found.value)
        except (ValueError, TypeError, AttributeError) as exc:
            raise CorruptState(f"the state of {customer_id!r} at {where} cannot be read: {exc}") from exc
        return explain_customer(engine, customer_id, state, self._now_ms(), topic=self.topic,
                                partition=found.partition, offset=found.offset, written_ms=found.timestamp_ms)
