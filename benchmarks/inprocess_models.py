"""Stand-ins for Kafka, Redis and the Faust table that do the worker's CPU work without a network:
what ``benchmarks.rules_inprocess`` runs the real ``CustomerStage`` against.

Each does what the real client does per record or command up to the socket, with the real
library code where it can be called without a connection:

* ``ModelProducer`` — aiokafka's own ``AIOKafkaProducer`` (``send`` per record, or whole batches)
  on metadata filled in by hand; a stand-in for its sender task builds each ready batch (CRC) and
  resolves its futures as on the broker's acknowledgement. Not modelled: faust's thin
  ``Producer.send`` wrapper, the request encoding and the socket.
* ``ModelRedis`` — redis-py's pipeline: commands queued, then ``execute`` packs them into RESP
  bytes (``Connection.pack_commands``, the real one) and returns a reply per command. Not
  modelled: the socket and hiredis parsing the replies.
* ``ModelStore`` — the Faust ``memory://`` table: ``get`` returns the object, ``put`` encodes the
  state with the table's codec (``CustomerState.dumps``) and sends it to the changelog partition.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.structs import PartitionMetadata
from redis.asyncio.connection import Connection

from streams.engine.features.state import CustomerState


class ModelProducer:
    """A ``RecordSender`` running aiokafka's own ``AIOKafkaProducer.send`` (never started: the
    metadata of ``topics`` is filled in as a broker would); a stand-in sender task takes every
    ready batch, builds it and acknowledges it. ``batch_sender`` is aiokafka's batch API, as the
    worker's tag topic uses it."""

    def __init__(self, topics: Iterable[str], partitions: int = 4, *, digests: bool = False) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")  # the worker's faust defaults
        by_topic = self._producer.client.cluster._partitions  # what a metadata response fills
        for topic in topics:
            by_topic[topic] = {p: PartitionMetadata(topic, p, 0, [0], [0], None) for p in range(partitions)}
        self._sender = asyncio.ensure_future(self._send_loop())
        self.records: dict[str, int] = {}
        self.batch_bytes: dict[str, int] = {}
        """Records and bytes of the record batches sent, per topic."""
        self.digests: dict[tuple[str, int], Any] | None = {} if digests else None
        """With ``digests``: per topic partition, a sha256 over every record's key and value, in order."""

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any) -> asyncio.Future[Any]:
        # faust's Producer.send: seconds -> ms, then aiokafka's
        timestamp_ms = int(timestamp * 1000.0) if timestamp else None
        fut: asyncio.Future[Any] = await self._producer.send(topic, value, key=key, partition=partition,
                                                             timestamp_ms=timestamp_ms, headers=headers)
        return fut

    def batch_sender(self) -> Any:
        """The aiokafka producer itself: what ``faust_producer.kafka_producer`` gives the worker."""
        return self._producer

    async def _send_loop(self) -> None:
        acc = self._producer._message_accumulator
        while True:
            await acc.waiter()
            nodes, _ = acc.drain_by_nodes(ignore_nodes=set())
            for batches in nodes.values():
                for tp, batch in batches.items():
                    data = batch.get_data_buffer()  # the request's bytes (CRC over the batch)
                    batch.done(base_offset=0, timestamp=-1)  # the broker's acknowledgement
                    self.records[tp.topic] = self.records.get(tp.topic, 0) + batch.record_count
                    self.batch_bytes[tp.topic] = self.batch_bytes.get(tp.topic, 0) + len(data)
                    if self.digests is not None:
                        digest = self.digests.setdefault((tp.topic, tp.partition), hashlib.sha256())
                        for record in DefaultRecordBatch(bytearray(data)):
                            digest.update(b"%d:%b%d:%b" % (len(record.key or b""), record.key or b"",
                                                           len(record.value or b""), record.value or b""))

    async def close(self) -> None:
        self._sender.cancel()
        self._producer._closed = True  # never started: nothing to stop


class ModelPipeline:
    def __init__(self, conn: Connection, stats: dict[str, int], digest: Any) -> None:
        self._conn = conn
        self._stats = stats
        self._digest = digest
        self._stack: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any) -> None:
        self._stack.append(args)

    async def execute(self) -> list[Any]:
        packed = self._conn.pack_commands(self._stack)
        self._stats["commands"] += len(self._stack)
        self._stats["bytes"] += sum(len(p) for p in packed)
        if self._digest is not None:
            for p in packed:
                self._digest.update(p)
        return [0] * len(self._stack)


class ModelRedis:
    """The part of ``redis.asyncio.Redis`` the tag sink uses, packing commands but sending nothing."""

    def __init__(self, *, digest: bool = False) -> None:
        self._conn = Connection()
        self.stats = {"commands": 0, "bytes": 0}
        self.digest = hashlib.sha256() if digest else None
        """With ``digest``: a sha256 over every command sent, in order."""

    def pipeline(self, transaction: bool = False) -> ModelPipeline:
        return ModelPipeline(self._conn, self.stats, self.digest)

    async def aclose(self) -> None:
        return None


class ModelStore:
    """The customers table (``memory://``): objects in a dict, every write encoded for the changelog."""

    def __init__(self, producer: ModelProducer, changelog: str = "customers-changelog") -> None:
        self.data: dict[bytes, CustomerState] = {}
        self._producer = producer
        self._changelog = changelog
        self._acks: list[asyncio.Future[Any]] = []

    def get(self, key: bytes) -> CustomerState | None:
        return self.data.get(key)

    def put(self, key: bytes, state: CustomerState, record: Any, encoded: bytes | None = None) -> None:
        self.data[key] = state
        self._send(key, encoded or state.dumps(), record)  # as TableStore: the stage's bytes

    def delete(self, key: bytes, record: Any) -> None:
        self.data.pop(key, None)
        self._send(key, None, record)

    def put_local(self, key: bytes, state: CustomerState, record: Any) -> None:
        self.data[key] = state

    def delete_local(self, key: bytes, record: Any) -> None:
        self.data.pop(key, None)

    def _send(self, key: bytes, value: bytes | None, record: Any) -> None:
        # faust sends a table write from a synchronous ``__setitem__``: the send runs as a task
        coro = self._producer.send(self._changelog, key, value, record.message.partition, None, None)
        self._acks.append(asyncio.ensure_future(coro))

    def items(self) -> Iterable[tuple[bytes, object]]:
        return list(self.data.items())

    def held_keys(self) -> Iterable[bytes]:
        return list(self.data)

    def drop_pending(self) -> int:
        return 0  # every write is sent at once, as faust's table does

    async def flush(self) -> None:
        acks, self._acks = self._acks, []
        await asyncio.gather(*[await a for a in acks])


@dataclass
class Message:
    """A consumed customer-topic record (what the stage reads of faust's ``Message``)."""

    value: bytes
    partition: int
    offset: int
    topic: str = "customer-events"
    timestamp: float = 0.0
    key: bytes | None = None
    generation_id: int = 1
    items: int = 0
    """Events in the envelope (the benchmark's clock advances by them)."""

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)


@dataclass
class Delivered:
    message: Message


class Group:
    """One worker owning every partition, no rebalance."""

    def generation(self) -> int:
        return 1

    def fence_token(self) -> int:
        return 1

    def owns(self, record: Any) -> bool:
        return True

    def read_again(self, record: Any) -> bool:
        return False

    def lease_expired(self) -> bool:
        return False
