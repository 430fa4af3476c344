"""The identity stage: links -> the identity graph -> absorb orders for the customer stage.

One partition (topic ``<app>-identity-links``) carries every link, so one worker at a time decides
merges, in one order: no two merges can race for an id, and the graph (``IdentityGraph``: clusters,
canonical ids, caps) is the pure one, whole in memory, restored from its table (``identity``, one
record per cluster, keyed by canonical id) after a rebalance. Merges are rare next to events (most
links join ids already joined, and change nothing), so one partition keeps up with many.

Per batch of links:

1. each link goes through the graph; a refused one (over a cap) is dead-lettered with its reason and
   the source record's position, never half applied;
2. the aliases of ids whose canonical id changed are written to Redis (idempotent);
3. the ``absorb`` orders go to the customer topic (keyed by the absorbed id,
   ``streams/engine/identity/moves.py``) and are acknowledged by the broker;
4. only then the changed cluster records are written to the table (its changelog), each new record
   before the deletions of the clusters it absorbed, all with the batch's *version* (the links-topic
   offset of its last record).

Steps 2 to 4 happen only while this worker still holds the links partition: a batch is refused —
nothing written, not acknowledged, the graph restored from the table — when the group has not
confirmed the worker's membership for most of its session (a paused worker: ``group_lease``), and
when Redis says a later owner of the partition already wrote aliases (``aliases.links_fence_key``).
The partition's owner reads the batch again (docs/operations.md, *A paused worker*).

A crash before step 4 ends leaves the table behind the orders: the batch is read again and decided
again from the same graph, giving the same orders with the same merge ids (the customer stage applies
each once). A crash inside step 4 can leave the record of an absorbed cluster beside the newer
record that holds all its ids: recovery keeps, for every id, the record with the highest version and
drops the older ones (clusters only grow). No transaction is needed — and none is wanted: the
commit markers of transactions on the customer topic look like skipped records to Faust.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from schemas.ids import parse_id_key
from streams.app.customer_contracts import Delivered, LeaseExpired, failed
from streams.app.envelope import EnvelopeBuilder, EnvelopeSender
from streams.app.identity_links import decode_links
from streams.engine.identity.graph import GraphLimits, IdentityGraph, Refusal
from streams.engine.identity.moves import absorb_item, erase_item, merge_id_of
from streams.io.deadletter import DeadLetterWriter, ItemRecord
from streams.io.metrics import Metrics, Tally
from streams.io.redis_sink import Fence, RedisFenced

log = logging.getLogger(__name__)

ERASED_PREFIX = b"erased:"
"""Identity-table keys of tombstones (``erased:<id key>`` -> ``{"until_ms"}``); other keys are clusters."""
LINKS_SOURCE = "identity"
"""The dead-letter ``source`` label of refused links (the link's own source is in the record)."""


class ClusterStore(Protocol):
    """The identity table: cluster records by canonical id (flat ``[id, first_seen_ms, …]`` JSON)."""

    def put(self, key: bytes, value: bytes, record: Delivered) -> None: ...

    def delete(self, key: bytes, record: Delivered) -> None: ...

    def items(self) -> Iterable[tuple[bytes, object]]: ...

    async def flush(self) -> None: ...


class Aliases(Protocol):
    """The Redis alias map (``streams.io.aliases.AliasWriter``)."""

    async def write(self, aliases: Mapping[str, str | None], fence: Fence | None = None) -> None:
        """Raises ``RedisFenced`` (nothing written) when a later owner of a partition of ``fence`` wrote."""


class Lease(Protocol):
    """The worker's hold on the links partition (``customer_contracts.Membership``'s lease part)."""

    def generation(self) -> int: ...

    def lease_expired(self) -> bool: ...

    def fence_token(self) -> int: ...


@dataclass
class _Batch:
    absorbs: EnvelopeBuilder
    clusters: dict[str, dict[str, int] | None] = field(default_factory=dict)
    """canonical id -> its members now, or None: no longer a cluster (absorbed, or erased)."""
    aliases: dict[str, str | None] = field(default_factory=dict)
    """id -> its canonical id now, or None: the alias goes (erased)."""
    erased: dict[str, int] = field(default_factory=dict)
    """id -> end of its tombstone, for the ids this batch forgot."""
    record: Delivered | None = None


def graph_limits(settings: Any) -> GraphLimits:
    """``IdentitySettings`` -> the graph's caps."""
    return GraphLimits(per_type={"member": settings.max_members, "user": settings.max_users,
                                 "email_sha256": settings.max_emails, "phone_sha256": settings.max_phones,
                                 "anonymous": settings.max_anonymous}, max_cluster=settings.max_cluster)


class IdentityStage:
    """Decides merges for one batch of links at a time (see the module docstring)."""

    def __init__(self, *, limits: GraphLimits, store: ClusterStore, partitions: int, orders: EnvelopeSender,
                 aliases: Aliases,
                 deadletter: DeadLetterWriter, metrics: Metrics, erasure_period_ms: int = 30 * 86_400_000,
                 clock: Callable[[], int] = lambda: int(time.time() * 1000), lease: Lease | None = None) -> None:
        self.limits = limits
        self.erasure_period_ms = erasure_period_ms
        self.clock = clock
        self.erased: dict[str, int] = {}
        """Forgotten ids -> end of their tombstone: links naming one are refused (``erased``)."""
        self.store = store
        self.partitions = partitions
        self.orders = orders
        self.aliases = aliases
        self.deadletter = deadletter
        self.metrics = metrics
        self._links = Tally(metrics.identity_links)
        """Links by result, counted per batch (a labelled ``inc()`` per link takes a lock)."""
        self.graph = IdentityGraph(limits)
        self.lease = lease
        """None: nothing checked (tests of the decisions alone)."""
        self._with_account = 0
        self._members = 0
        self._refused: asyncio.Future[None] | None = None

    def recover(self) -> int:
        """Rebuilds the graph from the table (after a rebalance); returns the clusters."""
        records: list[tuple[int, list[Any]]] = []
        self.erased = {}
        for key, value in self.store.items():
            if not isinstance(value, bytes | bytearray):
                continue
            if key.startswith(ERASED_PREFIX):
                self.erased[key[len(ERASED_PREFIX):].decode()] = int(orjson.loads(value)["until_ms"])
            else:
                obj = orjson.loads(value)
                records.append((int(obj["v"]), obj["m"]))
        flats = newest_records(records)
        self.graph = IdentityGraph.from_json(flats, self.limits)
        self._members = self._with_account = 0
        for flat in flats:
            self._count(dict(zip(flat[::2], flat[1::2], strict=True)), +1)
        log.info("identity graph recovered: %d clusters, %d ids", len(flats), len(self.graph))
        return len(flats)

    def settled(self) -> asyncio.Future[None] | None:
        """A failed future when the last batch was refused (it is then not acknowledged), else None."""
        return self._refused

    async def process(self, events: Sequence[Delivered]) -> None:
        self._refused = None
        batch = _Batch(EnvelopeBuilder(self.partitions))
        events, token = self._current(events)
        for ev in events:
            try:
                links = decode_links(ev.message.value)
            except ValueError as exc:
                self.deadletter.add(ev.message, LINKS_SOURCE, "internal_error", f"{type(exc).__name__}: {exc}")
                continue
            for link in links:
                if "forget" in link:
                    self._forget(str(link["forget"]), str(link["link_id"]), batch)
                else:
                    self._link(link, ev, batch)
            batch.record = ev
        self._links.flush()
        writes = batch.record is not None and bool(batch.clusters or batch.erased)
        if self.lease is not None and (writes or len(self.deadletter)) and self.lease.lease_expired():
            # nothing of it is written, its refused links' dead-letter records neither (read again, refused again)
            self._refuse_batch(LeaseExpired("membership not confirmed (was the worker paused?)"))
            return
        await self.deadletter.flush()
        if not writes:
            return
        assert batch.record is not None
        fence = Fence(token, frozenset({batch.record.message.partition})) if self.lease is not None else None
        try:
            await self.aliases.write(batch.aliases, fence)
            await self.orders.send(batch.absorbs)
        except RedisFenced as exc:
            self._refuse_batch(exc)
            return
        except BaseException:
            self.recover()  # the graph in memory is ahead of the table: the batch is decided again
            raise
        self._save(batch)
        await self.store.flush()

    def _current(self, events: Sequence[Delivered]) -> tuple[Sequence[Delivered], int]:
        """The records of the current consumer generation and the fence token, both read as the batch
        starts: a rebalance completed during it must not lend its records the new membership's token (a
        stale write that passes the fence would lock the new owner out). Records fetched before a
        rebalance are skipped; faust delivers them again (they are not acknowledged)."""
        if self.lease is None:
            return events, 0
        generation, token = self.lease.generation(), self.lease.fence_token()
        current = [ev for ev in events if ev.message.generation_id == generation]
        if len(current) < len(events):
            log.info("%d of %d identity records of an old consumer generation skipped",
                     len(events) - len(current), len(events))
        return current, token

    def _refuse_batch(self, exc: Exception) -> None:
        """Nothing (more) of this batch is written and it is not acknowledged (``settled``); the graph
        goes back to the table's, which this batch did not reach."""
        dropped = self.deadletter.discard()
        log.warning("identity batch not written and not acknowledged (the links partition's owner reads it "
                    "again%s): %s", f"; {dropped} dead-letter records not written" if dropped else "", exc)
        self.metrics.identity_batches_refused.inc()
        self.recover()
        self._refused = failed(exc)

    def _forget(self, key: str, erasure_id: str, batch: _Batch) -> None:
        """Erasure of ``key``'s whole cluster: every member's state and tags (an ``erase`` order each),
        the cluster record and the aliases go; tombstones refuse links naming them for the period."""
        canonical = self.graph.resolve(key)
        members = self.graph.forget(key)
        self._count(members, -1)
        until_ms = self.clock() + self.erasure_period_ms
        for member in sorted(members):
            batch.absorbs.add(member.encode(), orjson.dumps(erase_item(member, erasure_id, until_ms)))
            batch.aliases[member] = None
            batch.erased[member] = until_ms
            self.erased[member] = until_ms
        batch.clusters[canonical] = None
        log.info("forgetting %s: %d ids (%s), tombstones until %d", key, len(members), ", ".join(sorted(members)),
                 until_ms)

    def _erased_in(self, ids: list[str]) -> list[str]:
        now = self.clock()
        return [k for k in ids if self.erased.get(k, 0) > now]

    def _link(self, link: dict[str, Any], ev: Delivered, batch: _Batch) -> None:
        m = self.metrics
        ids = [str(k) for k in link["ids"]]
        gone = self._erased_in(ids)
        if gone:
            self._refuse(link, ev, Refusal("erased", tuple(gone), f"{', '.join(gone)} forgotten (tagstream forget)"))
            self._links.add("refused")
            return
        if self.graph.holds(ids, int(link["ts_ms"])):
            self._links.add("unchanged")
            return
        old_canonical: dict[str, str] = {}
        old_clusters: dict[str, dict[str, int]] = {}
        for key in ids:
            c = self.graph.resolve(key)
            if c not in old_clusters:
                old_clusters[c] = self.graph.members(c) or {key: 0}
            old_canonical.update(dict.fromkeys(old_clusters[c], c))
        result = self.graph.link(ids, int(link["ts_ms"]))
        for refusal in result.refused:
            self._refuse(link, ev, refusal)
        survivor = result.canonical
        members = self.graph.members(survivor) if survivor is not None else {}
        if survivor is None or (not result.moves and members == old_clusters.get(survivor)):
            self._links.add("refused" if result.refused else "unchanged")
            return
        self._links.add("merged")
        m.identity_cluster_size.observe(len(members))
        for move in result.moves:
            merge_id = merge_id_of(str(link["link_id"]), move.absorbed, move.survivor)
            batch.absorbs.add(move.absorbed.encode(), orjson.dumps(absorb_item(
                move.absorbed, move.survivor, merge_id, int(link["ts_ms"]))))
            batch.clusters[move.absorbed] = None
        for cluster in old_clusters.values():
            self._count(cluster, -1)
        self._count(members, +1)
        batch.clusters[survivor] = members
        for key in members:
            if old_canonical.get(key, key) != survivor:
                # the canonical id itself has no alias: one it had (absorbed earlier, now the survivor) goes
                batch.aliases[key] = survivor if key != survivor else None

    def _refuse(self, link: dict[str, Any], ev: Delivered, refusal: Refusal) -> None:
        """Counted, and dead-lettered with the position of the record that carried the link."""
        self.metrics.identity_refused.labels(refusal.reason).inc()
        src = link.get("src") or [ev.message.topic, ev.message.partition, ev.message.offset]
        item = ItemRecord(str(src[0]), int(src[1]), int(src[2]), ev.message.timestamp, None, orjson.dumps(link))
        self.deadletter.add(item, LINKS_SOURCE, refusal.reason, f"link {link['link_id']} refused: {refusal.detail}")

    def _count(self, members: Mapping[str, int], sign: int) -> None:
        """The member gauges: member ids in the graph, and those whose cluster has an online account."""
        if len(members) < 2:
            return  # an id alone is not in the graph
        types = [parse_id_key(k)[0] for k in members]
        n = types.count("member")
        self._members += sign * n
        if "user" in types:
            self._with_account += sign * n
        self.metrics.identity_members.labels("all").set(self._members)
        self.metrics.identity_members.labels("with_account").set(self._with_account)

    def _save(self, batch: _Batch) -> None:
        """New cluster records first, then deletions and tombstones (a crash in between leaves an old
        record that recovery drops by version)."""
        record = batch.record
        assert record is not None
        version = record.message.offset
        for canonical, members in batch.clusters.items():
            if members is not None:
                self.store.put(canonical.encode(), orjson.dumps({"v": version, "m": _flat(members)}), record)
        for key, until_ms in batch.erased.items():
            self.store.put(ERASED_PREFIX + key.encode(), orjson.dumps({"until_ms": until_ms}), record)
        for canonical, members in batch.clusters.items():
            if members is None:
                self.store.delete(canonical.encode(), record)


def newest_records(records: list[tuple[int, list[Any]]]) -> list[list[Any]]:
    """The cluster records to rebuild the graph from: for every id the record of the highest version
    (a crash between writing a merged cluster and deleting the clusters it absorbed leaves both)."""
    owner: dict[str, int] = {}
    for i, (version, flat) in enumerate(records):
        for key in flat[::2]:
            j = owner.get(key)
            if j is None or records[j][0] < version:
                owner[key] = i
    keep = set(owner.values())
    return [flat for i, (_, flat) in enumerate(records) if i in keep and all(owner[k] == i for k in flat[::2])]


def _flat(members: Mapping[str, int]) -> list[Any]:
    return [x for k in sorted(members) for x in (k, members[k])]
