"""The customer stage: envelopes of canonical events and ticks -> state, tag changes, due times.

Per batch, each customer's state is read once, updated by all its items in order, its tag
changes published (Redis, then the tag topic), and only then its new state saved (one changelog
record per customer and batch). A crash before the save replays the batch from the old state
and publishes the same changes again (same ``change_id``); the other order could persist a state
whose tag changes never reached the tag topic.

With ``processing_guarantee=exactly_once`` (``ExactlyOnce``), the tag changes and the states of a
partition's customers are written in one Kafka transaction instead (``commit_transactions``): a
replay then finds either none of the batch's output or all of it, so no change is published twice.

The stage is written against small contracts (``customer_contracts.py``: ``StateStore``,
``Membership``; the io sinks), so its batch logic is unit-tested with fakes; ``topology.py`` binds
them to Faust.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson

from streams.app.customer_batches import group_by_customer
from streams.app.customer_contracts import (
    Delivered,
    ExactlyOnce,
    LeaseExpired,
    Membership,
    StateStore,
    Updated,
    failed,
)
from streams.app.customer_core import CoreCustomers
from streams.app.customer_identity import IdentityItems, IdentityOutput, wake_at
from streams.app.group_lease import LEASE_SHARE
from streams.app.published import Published, tally
from streams.engine.clock import Clock
from streams.engine.due import DueIndex
from streams.engine.features.state import CustomerState
from streams.engine.native_engine import CoreTagEngine, core_engine_for, is_state, python_state
from streams.engine.reevaluation import Reevaluation
from streams.engine.tag_engine import Change, TagEngine
from streams.io.deadletter import DeadLetterWriter, ItemRecord
from streams.io.metrics import ByLabels, Metrics, Tally, observe_many
from streams.io.redis_sink import Fence, RedisFenced, RedisTagSink
from streams.io.tag_topic import TagTopicWriter
from streams.io.transactions import Fenced

log = logging.getLogger(__name__)


class CustomerStage:
    """Folds batches of customer-topic records into state and publishes the tag changes."""

    def __init__(self, *, engine: TagEngine, clock: Clock, store: StateStore, membership: Membership,
                 due: DueIndex, redis: RedisTagSink, tag_topic: TagTopicWriter, deadletter: DeadLetterWriter,
                 metrics: Metrics, reevaluation: Reevaluation, exactly_once: ExactlyOnce | None = None,
                 identity: IdentityOutput | None = None, tag_engine: str = "python") -> None:
        """``tag_engine``: which engine folds a customer's batch (``native_engine.ENGINES``)."""
        self.engine = engine
        self.tag_engine = tag_engine
        self._in_python = metrics.customer_engine.labels("python")
        self.reevaluation = reevaluation
        self.clock = clock
        self.store = store
        self.membership = membership
        self.due = due
        self.redis = redis
        self.tag_topic = tag_topic
        self.deadletter = deadletter
        self.metrics = metrics
        self._processed = Tally(metrics.events_processed)
        self._tag_changes = ByLabels(metrics.tag_changes)
        self._waits = metrics.batch_output_wait
        self.exactly_once = exactly_once
        self.identity = IdentityItems(identity, metrics) if identity is not None else None
        """Identity resolution's side of the stage (``customer_identity.py``); None when it is off."""
        self._use_core(core_engine_for(engine, tag_engine))
        self._batch = asyncio.Lock()
        self._saving: asyncio.Future[None] | None = None
        """The last batch's changelog writes, on their way (``settled``)."""
        self._refused: asyncio.Future[None] | None = None
        """The last batch's refusal, which keeps it unacknowledged (``settled``): its lease had
        expired (nothing written), or, exactly-once, a partition's transaction was ``Fenced``.
        None when the batch was written."""
        self.stopping = False
        self.customers = 0
        """Customers in the store: counted at recovery, kept up to date by ``save`` (counting a
        RocksDB store walks every key: 1 s per million, too slow for a gauge)."""

    async def process(self, events: Sequence[Delivered]) -> None:
        """Handles one batch; returns once its changes are published and its states saved in the
        store, their changelog records sent: ``settled`` is their acknowledgement, which the
        batch's own acknowledgement must wait for. The next batch is evaluated meanwhile (it
        reads the states from the store) and waits for it before it saves states of its own."""
        async with self._batch:  # a rule switch waits for the batch in flight
            await self._process(events)

    def settled(self) -> asyncio.Future[None] | None:
        """The acknowledgement of the last processed batch's changelog records (None: nothing
        on its way). A failed future when the batch was refused (``_refused``), so that it is not
        acknowledged and its records are read again (by the partition's owner: the new one, or
        this worker after the rebalance or the re-read of the hole)."""
        if self._refused is not None or self.exactly_once is not None:
            return self._refused
        return self._saving

    async def quiesce(self, timeout_s: float = 30.0) -> None:
        """A graceful stop: waits for the batch in flight (its states saved and flushed), then
        ``stopping`` tells the agent to hand back the next batch unprocessed and unacknowledged.
        A batch stuck longer than ``timeout_s`` (Redis down) is left to the stop as it is."""
        try:
            await asyncio.wait_for(self._batch.acquire(), timeout_s)
            try:
                await asyncio.wait_for(self._saved(), timeout_s)
            except BaseException:
                self._batch.release()
                raise
        except TimeoutError:
            log.warning("stopping with a customer batch still in flight after %.0f s (it is not acknowledged)",
                        timeout_s)
            self.stopping = True
            return
        try:
            self.stopping = True
        finally:
            self._batch.release()

    async def swap_engine(self, engine: TagEngine) -> int:
        """Switches to ``engine`` between two batches and queues every customer held for
        re-evaluation (``Reevaluation``: the due timer sends them in slices, a tick re-evaluates a
        state made under other rules: ``rule_change``); returns how many were queued."""
        async with self._batch:
            self._use_core(core_engine_for(engine, self.tag_engine))
            self.engine = engine
            return self.reevaluation.start(list(self.store.held_keys()))

    def _use_core(self, core: CoreTagEngine | None) -> None:
        self.core = core
        """The Rust core's engine for the rules (None: the Python engine folds every batch)."""
        self._in_core = CoreCustomers(core, self.clock, self.metrics, self._processed, self.identity) \
            if core is not None else None

    async def _process(self, events: Sequence[Delivered]) -> None:
        started_s = time.perf_counter()
        self._refused = None
        generation = self.membership.generation()
        fence = Fence(self.membership.fence_token(), frozenset(ev.message.partition for ev in events))
        core = self.core
        grouped = group_by_customer(events, generation, self.membership, self.deadletter, self.metrics,
                                    split=core.split if core is not None else None)
        self.reevaluation.done(grouped.slices, self.clock.now_ms())
        record_of = grouped.record_of
        published: list[Published] = []
        updated: list[Updated] = []
        customers: list[tuple[bytes, list[Any], bool]] = [(k, v, True) for k, v in grouped.events.items()]
        customers += [(k, v, False) for k, v in grouped.by_key.items()]
        for key, objs, raw in customers:
            try:
                before = self.store.get(key)
                done = self._in_core.events(key, objs, before) if raw and self._in_core is not None else None
                if done is None and raw:  # not for the core, or given up by it: the Python engine's
                    objs = [orjson.loads(item) for item in objs]
                    done = self.process_customer(key, objs, before, core=False)
                changes, state = done if done is not None else self.process_customer(key, objs, before)
                # a state that cannot be saved fails here, for this customer only
                encoded = state.dumps() if state is not None else None
            except Exception as exc:
                log.exception("customer processing failed for %r", key)
                self._dead_letter_items(record_of[key], key, objs, exc)
                continue
            if changes and (self.identity is None or self.identity.published(key)):
                published += changes
            if state is not None:
                updated.append(Updated(key, state, record_of[key], existed=before is not None, encoded=encoded))
        self._processed.flush()
        if self.identity is not None:
            self.identity.flush_counts()
        self.metrics.batch_evaluation.observe(time.perf_counter() - started_s)
        if self.membership.lease_expired():
            self._refuse(f"membership not confirmed for {LEASE_SHARE:.0%} of the session timeout "
                         "(was the worker paused?)")
            return
        await self.deadletter.flush()
        forwarded = await self.identity.send() if self.identity is not None and self.identity.pending() else []
        if self.exactly_once is not None:
            await asyncio.gather(*forwarded)  # before any state (a stub among them) is saved
            await self.commit_transactions(published, updated, record_of, generation, fence)
            return
        if published:
            await self.publish(published, fence)
        await asyncio.gather(*forwarded)  # acknowledged with the tag changes: before any stub is saved
        await self._saved()  # the last batch's states first: in order, and its failure stops this one
        if self._refused is None and self.membership.lease_expired():  # paused while publishing
            self._refuse("membership not confirmed after publishing (was the worker paused?): states not saved")
        if self._refused is not None:
            return
        if self.membership.generation() != generation:
            updated = self._still_owned(updated)
        for u in updated:
            self.save(u)
        self._saving = asyncio.ensure_future(self._flush_states())

    def _refuse(self, why: str, exc: Exception | None = None) -> None:
        """Writes nothing (more) of this batch and leaves it unacknowledged (``settled``)."""
        dropped = self.deadletter.discard()  # rejected again when read again
        log.warning("customer batch not written and not acknowledged (its records are read again%s): %s",
                    f"; {dropped} dead-letter records not written" if dropped else "", why)
        self.metrics.batches_refused.inc()
        self._refused = failed(exc if exc is not None else LeaseExpired(why))

    async def _saved(self) -> None:
        """Waits for the last batch's changelog records (their failure is raised here)."""
        saving, self._saving = self._saving, None
        if saving is not None:
            try:
                await saving
            except LeaseExpired as exc:  # its states did not reach the changelog: this batch's must not either
                self._refuse(f"the last batch's: {exc}")

    async def _flush_states(self) -> None:
        waited = time.perf_counter()
        if self.membership.lease_expired():  # paused between saving and sending: a zombie's records
            dropped = self.store.drop_pending()
            raise LeaseExpired(f"membership not confirmed: {dropped} changelog records not sent")
        await self.store.flush()
        self._waits.labels("changelog").observe(time.perf_counter() - waited)

    def _dead_letter_items(self, record: Delivered, key: bytes, objs: list[Any], exc: Exception) -> None:
        msg = record.message
        for obj in objs:  # the customer's own items (decoded, or their bytes), with the envelope's coordinates
            value = obj if isinstance(obj, bytes) else orjson.dumps(obj)
            item = ItemRecord(msg.topic, msg.partition, msg.offset, msg.timestamp, key, value)
            self.deadletter.add(item, "customers", "internal_error", f"{type(exc).__name__}: {exc}")

    def _still_owned(self, updated: list[Updated]) -> list[Updated]:
        """A rebalance happened while we published. A partition that went to another worker is
        restored there from the changelog and its records re-read from the committed offset:
        writing our state of it now would be a zombie write landing in the changelog after the new
        owner's. Partitions we kept are saved as usual (their records come back too and count
        once, by event id)."""
        kept = [u for u in updated if self.membership.owns(u.record)]
        log.info("rebalance during a batch: %d of %d customer states not saved (partition moved)",
                 len(updated) - len(kept), len(updated))
        return kept

    def process_customer(self, key: bytes, objs: list[dict[str, Any]], state: Any, core: bool = True) -> tuple[
            list[Published], Any]:
        """Applies one customer's items (events and ticks) of a batch to its stored ``state``;
        returns its changes and its new state (a ``CustomerState``, or a native state when the
        Rust core's engine folded them: ``customer_core.py``). ``core``: the core may take them."""
        ident = self.identity
        evaluate = ident is None or ident.evaluated(key)
        plain = ident is None or ident.plain(state, objs)
        if core and self._in_core is not None and evaluate and plain:
            done = self._in_core.items(key, objs, state)
            if done is not None:
                return done
        self._in_python.inc()
        return self._fold_in_python(key, objs, python_state(state), evaluate, plain)

    def _fold_in_python(self, key: bytes, objs: list[dict[str, Any]], state: CustomerState | None,
                        evaluate: bool, plain: bool) -> tuple[list[Published], CustomerState | None]:
        out: list[Published] = []
        m = self.metrics
        ident = self.identity
        counted = 0
        for obj in objs:
            now_ms = self.clock.now_ms()
            if ident is not None and not plain:
                changes: list[Change] = []
                done, state = ident.before(self.engine, key, obj, state, now_ms, changes)
                if changes:
                    out += [Published(c, None) for c in changes]
                if done:
                    continue
            tick = obj.get("tick")
            if tick is not None:
                if state is None:
                    continue
                if ident is not None:
                    changes = []
                    if ident.expired(self.engine, key, state, now_ms, changes):  # anonymous, quiet too long
                        out += [Published(c, None) for c in changes]
                        state = CustomerState()  # nothing left: deleted
                        continue
                if not evaluate:
                    continue  # no tags to bring up to date (its only wake-up is its time to live)
                if state.due_ms != tick:
                    if state.rule_version == self.engine.version:
                        continue  # stale tick: an event since then already moved the due time
                    # made under other rules (a restart or a deploy scheduled it): re-evaluate now
                    state.due_ms = tick if state.due_ms is None else min(state.due_ms, tick)
                out += [Published(c, None) for c in self.engine.catch_up(state, obj["customer_id"], now_ms)]
                continue
            if state is None:
                state = CustomerState()
            replay = obj.get("bf")
            if replay is not None:  # replayed by `tagstream backfill` for its new features
                outcome = self.engine.process_backfill(state, obj, replay["keys"], replay["from"], now_ms)
                m.backfill_events.labels("applied" if outcome.backfilled else "skipped").inc()
                out += [Published(c, None) for c in outcome.changes]
                continue
            outcome = (self.engine.process_event if evaluate else self.engine.fold_only)(state, obj, now_ms)
            self._processed.add(obj["source"])
            counted += 1
            if outcome.duplicate:
                m.events_duplicate.labels(obj["source"]).inc()
            if outcome.late:
                m.events_late.labels(obj["source"]).inc()
            via = obj.get("via")
            if via is not None:  # forwarded from an absorbed id: the change says which
                for c in outcome.changes:
                    c["via"] = via
            out += [Published(c, obj["src_ts_ms"] if c["cause"] == "event" else None) for c in outcome.changes]
        if counted and ident is not None and state is not None:
            ident.after_events(key, state, counted, self.clock.now_ms())
        return out, state

    async def publish(self, published: list[Published], fence: Fence | None = None) -> None:
        """Redis first, then the tag topic; both acknowledged before any state is saved. Redis
        refusing the writes (``fence``: a later owner wrote a partition) refuses the batch."""
        for p in published:
            self.redis.add(p.change)
        waited = time.perf_counter()
        if not await self._to_redis(fence):
            return
        redis_done = time.perf_counter()
        self._waits.labels("redis").observe(redis_done - waited)
        for p in published:
            self.tag_topic.add(p.change)
        await self.tag_topic.flush()
        self._waits.labels("tag_topic").observe(time.perf_counter() - redis_done)
        self._observe(published)

    async def commit_transactions(self, published: list[Published], updated: list[Updated],
                                  record_of: dict[bytes, Delivered], generation: int,
                                  fence: Fence | None = None) -> None:
        """Exactly-once: Redis first (idempotent), then per customer partition ONE transaction with
        the partition's tag changes and new states; the local store is written only after the
        commit. A replay after a crash sees the old state and writes the same changes once."""
        eo = self.exactly_once
        assert eo is not None
        self._refused = None
        for p in published:
            self.redis.add(p.change)
        if not await self._to_redis(fence):
            return
        if self.membership.generation() != generation:
            updated = self._still_owned(updated)
            kept = {u.key for u in updated}
            published = [p for p in published if str(p.change["customer_id"]).encode() in kept]
        fenced: set[int] = set()
        for partition, out in eo.records([p.change for p in published], updated, record_of).items():
            try:
                await eo.transactions.commit(partition, out)
            except Fenced as exc:
                log.warning("%s: this batch's output for partition %d is dropped and the batch is not "
                            "acknowledged (the partition's owner reads its records again)", exc, partition)
                fenced.add(partition)
        if fenced:
            self._refused = failed(Fenced(f"partitions {sorted(fenced)} refused this batch's output"))
        for u in updated:
            if u.record.message.partition not in fenced:
                self.save(u, local=True)
        self._observe([p for p in published
                       if record_of[str(p.change["customer_id"]).encode()].message.partition not in fenced])

    async def _to_redis(self, fence: Fence | None) -> bool:
        """Flushes the Redis sink; False (the batch refused) when a later owner of one of the
        batch's partitions wrote there (``redis_sink.Fence``: this worker was paused past its session)."""
        try:
            await self.redis.flush(fence)
        except RedisFenced as exc:
            self._refuse(str(exc), exc)
            return False
        return True

    def _observe(self, published: list[Published]) -> None:
        """Counts the changes per (tag, op, cause) and observes their latencies, each distinct value
        once with its multiplicity (a batch's changes share few: those of one event, its latency)."""
        m = self.metrics
        counts, from_events, from_clock = tally(published)
        series = self._tag_changes
        for labels, n in counts.items():
            series[labels].inc(n)
        done_s = self.clock.now_ms() / 1000
        for ts_ms, n in from_events.items():
            observe_many(m.event_to_tag_latency, max(0.0, done_s - ts_ms / 1000), n)
        for at_ms, n in from_clock.items():
            observe_many(m.expiry_lateness, max(0.0, done_s - at_ms / 1000), n)

    def save(self, u: Updated, *, local: bool = False) -> None:
        """Writes the state (or deletes it when nothing is left to remember) and reschedules it;
        ``local``: the store only (the changelog record was written by a transaction)."""
        if u.keep and local:
            self.store.put_local(u.key, u.state, u.record)
        elif u.keep:
            self.store.put(u.key, u.state, u.record, u.encoded)
        else:
            (self.store.delete_local if local else self.store.delete)(u.key, u.record)
        self.customers += u.keep - u.existed
        self.due.schedule(u.key, wake_at(u.state) if u.keep else None)

    def rebuild_due_index(self) -> int:
        """After recovery the store holds exactly the partitions we own: re-index them all.
        Customers evaluated under other rules are queued for re-evaluation (``rule_change``),
        in slices like after a deploy."""
        self.due.clear()
        n = 0
        stale: list[bytes] = []
        for key, state in self.store.items():
            if not is_state(state):
                log.error("unreadable state for %r in the changelog (%s); skipped", key, type(state).__name__)
                continue
            n += 1
            if state.rule_version != self.engine.version:
                stale.append(key)
            self.due.schedule(key, wake_at(state))
        self.reevaluation.clear()
        self.reevaluation.start(stale)
        self.customers = n
        log.info("due index rebuilt: %d customers, %d due, %d to re-evaluate under rules %s", n, len(self.due),
                 len(stale), self.engine.version)
        return n
