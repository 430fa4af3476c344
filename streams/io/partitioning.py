"""Which partition a customer lives on: the one Kafka's default partitioner gives its id.

The ingest stage and the due timer send a customer's envelopes to this partition of the customer
topic (streams/app/envelope.py), and Faust writes the customers table's changelog record to the
partition of the record being processed, so the customer's state is on the same partition number
of the changelog. A reader that wants one customer (``tagstream explain``) reads that partition only.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=1 << 18)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (murmur2, positive, modulo).

    Cached: aiokafka's murmur2 is pure Python (~3 µs) and active customers recur."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
