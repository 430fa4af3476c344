"""The worker's aiokafka consumer, with what faust does not let us set.

faust creates the consumer in ``AIOKafkaConsumerThread._create_worker_consumer`` (fingerprinted in
``faust_compat.FINGERPRINTS``: a faust whose code differs makes the worker refuse to start) with
``fetch_max_wait_ms=1500`` hard-coded. The options here are kept per app and set on the consumer
faust creates for it, before it starts (its Fetcher reads them in ``start``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_CONSUMER_OPTIONS = "_tagstream_consumer_options"


def install_consumer_options(app: Any, *, fetch_max_wait_ms: int | None = None,
                             read_committed: bool | None = None) -> None:
    """Options of the worker's Kafka consumer that faust does not expose, set on the aiokafka
    consumer faust creates for ``app`` (before it starts: its Fetcher reads them in ``start``).

    ``fetch_max_wait_ms``: faust hard-codes 1,500 ms. aiokafka keeps one fetch in flight per broker
    and leaves out of it the partitions whose records the application has not taken yet; when only
    idle partitions are left (faust's ``__assignor-__leader``, an empty links partition), that fetch
    waits the whole ``fetch_max_wait_ms`` on the broker, and the busy partitions wait behind it once
    their records are taken. Measured: the customer agent starved for 0.5-1.5 s, several times per
    200,000-event drain with identity resolution on (docs/identity.md, Cost).
    ``read_committed``: the consumer's isolation level (the exactly-once output)."""
    options = dict(getattr(app, _CONSUMER_OPTIONS, None) or {})
    if fetch_max_wait_ms is not None:
        options["fetch_max_wait_ms"] = fetch_max_wait_ms
    if read_committed is not None:
        options["read_committed"] = read_committed
    setattr(app, _CONSUMER_OPTIONS, options)
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    real = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(real, "_tagstream_original", None) is not None:
        return

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = real(self, transport)
        apply_consumer_options(consumer, getattr(self.app, _CONSUMER_OPTIONS, None) or {})
        return consumer

    _create_worker_consumer._tagstream_original = real  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]


def apply_consumer_options(consumer: Any, options: Mapping[str, Any]) -> None:
    """Sets ``install_consumer_options``'s options on an aiokafka consumer that has not started."""
    for attr in ("_fetch_max_wait_ms", "_isolation_level"):
        if not hasattr(consumer, attr):
            raise RuntimeError(f"aiokafka's consumer has no {attr} any more: streams/app/faust_compat.py "
                               "install_consumer_options must be re-checked against it")
    if "fetch_max_wait_ms" in options:
        consumer._fetch_max_wait_ms = int(options["fetch_max_wait_ms"])  # read by AIOKafkaConsumer.start()
    if options.get("read_committed"):
        consumer._isolation_level = "read_committed"  # read by AIOKafkaConsumer.start() (its Fetcher)
