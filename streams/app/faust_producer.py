"""aiokafka's producer behind faust's ``app.producer``, for its batch API (the tag topic).

faust's aiokafka ``Producer`` keeps the client in ``_producer`` (set while the producer service
runs) with no public accessor; its ``_ensure_producer`` raises ``NotReady`` otherwise. Whatever
is not a plain, non-transactional ``AIOKafkaProducer`` (not started yet, another faust) gives
None, and the tag topic then sends through faust's ``send``, one record at a time, as before.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from streams.io.contract import BatchSender


def kafka_producer(app: Any) -> BatchSender | None:
    """The running ``AIOKafkaProducer`` of ``app.producer``, or None."""
    try:
        producer = app.producer._ensure_producer()
    except Exception:  # NotReady, or a faust without it
        return None
    if not isinstance(producer, AIOKafkaProducer):
        return None
    txn = getattr(producer, "_txn_manager", None)
    if txn is not None and getattr(txn, "transactional_id", None) is not None:
        return None  # a transactional producer takes batches only inside a transaction
    sender: BatchSender = producer
    return sender
