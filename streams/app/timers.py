"""What runs on the worker's clock rather than on records: due-time ticks and health checks.

Due customers get a *tick* through the customer topic (in envelopes, like events), so every
state change, event- or clock-driven, happens inside the customer stage, in order, per customer.
"""

from __future__ import annotations

import orjson

from streams.app.envelope import EnvelopeBuilder, EnvelopeSender
from streams.engine.clock import Clock
from streams.engine.due import DueIndex
from streams.io.health import Health
from streams.io.kafka_probe import KafkaProbe
from streams.io.metrics import Metrics
from streams.io.redis_sink import RedisTagSink


class DueTimer:
    """Pops the customers whose due time has come and sends one tick for each."""

    def __init__(self, *, due: DueIndex, clock: Clock, partitions: int, envelopes: EnvelopeSender,
                 health: Health, redis: RedisTagSink, metrics: Metrics) -> None:
        self._due = due
        self._clock = clock
        self._partitions = partitions
        self._envelopes = envelopes
        self._health = health
        self._redis = redis
        self._metrics = metrics

    async def fire(self, customers_in_state: int) -> int:
        """One wake-up: beats the heartbeat, sends the due ticks; returns how many."""
        self._health.beat()
        self._health.redis_ok = self._redis.healthy
        out = EnvelopeBuilder(self._partitions)
        for key, due_ms in self._due.pop_due(self._clock.now_ms()):
            out.add(key, orjson.dumps({"customer_id": key.decode(), "tick": due_ms}))
        await self._envelopes.send(out)
        self._metrics.due_index_size.set(len(self._due))
        self._metrics.customers_in_state.set(customers_in_state)
        return out.items


async def probe_kafka(probe: KafkaProbe, health: Health) -> None:
    """Readiness also means "the brokers answer"."""
    health.kafka_ok = await probe.check()
