"""Adapters between the engine and the outside: Redis tag sink, tag topic, dead-letter topic,
topic creation, metrics, health endpoints, the Kafka readiness probe.

Sinks share one contract (``contract.py``): ``add()`` buffers, ``flush()`` writes and waits,
``close()`` is idempotent.
"""
