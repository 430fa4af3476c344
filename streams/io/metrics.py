"""Prometheus metrics as one typed bundle built from a registry you pass in (tests use a fresh
``CollectorRegistry()``; the worker uses the default one and serves it over HTTP).

``precreate`` gives every labelled series the worker knows in advance (sources, reasons, tags,
ops, causes) a value of 0, so dashboards and ``rate()`` have a series before the first event.
The ``*_created`` series prometheus-client adds to counters and histograms are switched off: they
double the series count and no panel or alert reads them.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

from schemas import REASONS, SOURCES
from schemas.tags import ChangeCause, TagOp
from streams.version import versions

# Fine buckets below a second: the demo and benchmarks read p50/p99 from them.
LATENCY_BUCKETS_S = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2,
                     0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
# A customer batch folds up to ENVELOPES_MAX x BATCH_MAX events at ~40 us each: 0.1 ms .. 1 s.
BATCH_BUCKETS_S = (0.0001, 0.00025, 0.0005, *LATENCY_BUCKETS_S)
BATCH_OUTPUTS = ("redis", "tag_topic", "changelog")
"""What a customer batch waits for, in order (tagstream_batch_output_wait_seconds)."""
INTERNAL_REASON = "internal_error"
"""The dead-letter reason of a record the worker failed on (not the sender's fault)."""
INTERNAL_SOURCE = "customers"
"""The dead-letter ``source`` label of the customer stage's failures."""


@dataclass(frozen=True)
class Metrics:
    events_in: Counter
    events_invalid: Counter
    deadletter: Counter
    events_anonymous: Counter
    events_late: Counter
    events_processed: Counter
    events_duplicate: Counter
    event_to_tag_latency: Histogram
    tag_changes: Counter
    customers_in_state: Gauge
    due_index_size: Gauge
    reevaluation_pending: Gauge
    expiry_lateness: Histogram
    redis_errors: Counter
    ready: Gauge
    partition_lag: Gauge
    partition_stalled: Gauge
    partition_stall_recoveries: Counter
    build_info: Info
    batch_evaluation: Histogram
    batch_output_wait: Histogram
    audience_size: Gauge
    producer_buffer_full: Counter
    rules_rejected: Counter
    offset_holes: Counter
    records_read_again: Counter
    customer_engine: Counter
    batches_refused: Counter
    backfill_events: Counter
    identity_links: Counter
    identity_refused: Counter
    identity_cluster_size: Histogram
    identity_members: Gauge
    identity_merges: Counter
    identity_merge_overlap: Counter
    identity_forwarded: Counter
    identity_events: Counter
    identity_erasures: Counter
    identity_erased_items: Counter
    identity_batches_refused: Counter
    gc_pause: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry, prefix: str = "tagstream") -> Metrics:
        disable_created_metrics()  # process-wide in prometheus-client; every tagstream process wants it off
        return cls(**_event_metrics(prefix, registry), **_worker_metrics(prefix, registry),
                   **_identity_metrics(prefix, registry))

    def set_build_info(self, rules_version: str) -> None:
        """``tagstream_build_info{version, rules_version, faust, python, engine} 1``."""
        self.build_info.info({**versions(), "rules_version": rules_version})

    def precreate(self, *, tags: Iterable[str], sources: Iterable[str] = SOURCES) -> None:
        """Every label set known before the first event, at 0 (``labels()`` creates the child)."""
        sources = tuple(sources)
        tags = tuple(tags)
        for source in sources:
            for counter in (self.events_in, self.events_anonymous, self.events_late, self.events_processed,
                            self.events_duplicate):
                counter.labels(source)
            for reason in (*REASONS, INTERNAL_REASON):
                self.events_invalid.labels(source, reason)
                self.deadletter.labels(source, reason)
        self.events_invalid.labels(INTERNAL_SOURCE, INTERNAL_REASON)
        self.deadletter.labels(INTERNAL_SOURCE, INTERNAL_REASON)
        for result in ("applied", "skipped"):
            self.backfill_events.labels(result)
        for output in BATCH_OUTPUTS:
            self.batch_output_wait.labels(output)
        for tag in tags:
            for op in get_args(TagOp):
                for cause in get_args(ChangeCause):
                    self.tag_changes.labels(tag, op, cause)

    def precreate_identity(self, reasons: Iterable[str]) -> None:
        """The identity series (only when identity resolution is on)."""
        for result in ("merged", "unchanged", "refused"):
            self.identity_links.labels(result)
        for reason in reasons:
            self.identity_refused.labels(reason)
        for linked in ("all", "with_account"):
            self.identity_members.labels(linked)
        for result in ("applied", "duplicate"):
            self.identity_merges.labels(result)
        for kind in ("event", "merge"):
            self.identity_forwarded.labels(kind)
        for attribution in ("known", "contact", "anonymous"):
            self.identity_events.labels(attribution)


class ByLabel(dict[str, Counter]):
    """A counter's series by its one label value, each looked up once: ``labels()`` takes a lock and
    builds a tuple per call, ~1 µs that the per-event paths (ingest, the customer stage) paid twice
    per event."""

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self._counter = counter

    def __missing__(self, value: str) -> Counter:
        series = self[value] = self._counter.labels(value)
        return series


class ByLabels(dict[tuple[str, ...], Counter]):
    """``ByLabel`` for a counter with several labels, by the tuple of their values: the customer
    stage counts tag changes by (tag, op, cause), with 1,000 tags ~0.8 distinct label sets per
    event, each a ``labels()`` call before."""

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self._counter = counter

    def __missing__(self, values: tuple[str, ...]) -> Counter:
        series = self[values] = self._counter.labels(*values)
        return series


class Tally:
    """One batch's increments of a labelled counter, added per label in one step (``flush``).

    A per-event ``inc()`` costs ~1 µs (prometheus-client takes a lock per call): the stages count
    their events here, a dictionary update each, and flush once per batch."""

    __slots__ = ("_counts", "_series")

    def __init__(self, counter: Counter) -> None:
        self._series = ByLabel(counter)
        self._counts: dict[str, int] = {}

    def add(self, label: str, n: int = 1) -> None:
        self._counts[label] = self._counts.get(label, 0) + n

    def flush(self) -> None:
        for label, n in self._counts.items():
            self._series[label].inc(n)
        self._counts.clear()


def observe_many(histogram: Histogram, amount: float, n: int) -> None:
    """``histogram.observe(amount)`` ``n`` times, in one step (an unlabelled histogram).

    A batch's tag changes share few values (every change of one event has its event's latency),
    and prometheus-client's ``observe`` takes two locks and scans the buckets per call: with
    1,000 tags that was ~1 µs per change. Uses its ``_sum``, ``_buckets`` and ``_upper_bounds``
    (unchanged since 0.4); a histogram without them is observed ``n`` times.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    if n == 1 or bounds is None or math.isnan(amount) or not hasattr(histogram, "_buckets"):
        for _ in range(n):
            histogram.observe(amount)
        return
    histogram._sum.inc(amount * n)
    i = bisect_left(bounds, amount)  # the first bound >= amount, as observe's scan finds it
    if i < len(bounds):
        histogram._buckets[i].inc(n)


def _event_metrics(p: str, registry: CollectorRegistry) -> dict[str, Any]:
    """Events in, out and to tags: counts per source, latency, tag changes."""
    return dict(
        events_in=Counter(f"{p}_events_in", "Source events read, per source", ["source"], registry=registry),
        events_invalid=Counter(f"{p}_events_invalid", "Source events rejected, per source and reason",
                               ["source", "reason"], registry=registry),
        deadletter=Counter(f"{p}_deadletter", "Records written to the dead-letter topic",
                           ["source", "reason"], registry=registry),
        events_anonymous=Counter(f"{p}_events_anonymous",
                                 "Valid events without a customer id (anonymous web, walk-in POS)",
                                 ["source"], registry=registry),
        events_late=Counter(f"{p}_events_late", "Events that arrived after a window they feed had passed",
                            ["source"], registry=registry),
        events_processed=Counter(f"{p}_events_processed",
                                 "Events folded into customer state (after repartitioning), per source",
                                 ["source"], registry=registry),
        events_duplicate=Counter(f"{p}_events_duplicate",
                                 "Events whose event_id was already seen within the de-duplication horizon",
                                 ["source"], registry=registry),
        event_to_tag_latency=Histogram(
            f"{p}_event_to_tag_latency_seconds",
            "From the source record's Kafka timestamp to the tag change written to Redis and the tag topic",
            buckets=LATENCY_BUCKETS_S, registry=registry),
        tag_changes=Counter(f"{p}_tag_changes", "Tag changes published", ["tag", "op", "cause"],
                            registry=registry),
    )


def _worker_metrics(p: str, registry: CollectorRegistry) -> dict[str, Any]:
    """The worker's state, partitions, customer batches, Redis and the collector."""
    return dict(
        customers_in_state=Gauge(f"{p}_customers_in_state", "Customers held in this worker's state",
                                 registry=registry),
        due_index_size=Gauge(f"{p}_due_index_size", "Customers waiting in the due-time index",
                             registry=registry),
        reevaluation_pending=Gauge(f"{p}_reevaluation_pending",
                                   "Customers not yet re-evaluated after a rule change (waiting or in flight)",
                                   registry=registry),
        expiry_lateness=Histogram(f"{p}_expiry_lateness_seconds",
                                  "Publish time minus due time of tag changes caused by the clock",
                                  buckets=LATENCY_BUCKETS_S, registry=registry),
        redis_errors=Counter(f"{p}_redis_errors", "Failed Redis writes (retried)", registry=registry),
        ready=Gauge(f"{p}_ready", "1 once this worker has recovered its state and processes events",
                    registry=registry),
        partition_lag=Gauge(f"{p}_partition_lag", "Records not yet committed, per assigned input partition",
                            ["topic", "partition"], registry=registry),
        partition_stalled=Gauge(f"{p}_partition_stalled",
                                "1 while an assigned partition has lag and its committed offset stands still",
                                ["topic", "partition"], registry=registry),
        partition_stall_recoveries=Counter(f"{p}_partition_stall_recoveries",
                                           "Seeks of a stalled partition back to its committed offset",
                                           ["topic", "partition"], registry=registry),
        build_info=Info(f"{p}_build", "Versions this worker runs: tagstream, the rule set, faust-streaming, "
                                      "Python, the engine (native: compiled; python)", registry=registry),
        batch_evaluation=Histogram(
            f"{p}_batch_evaluation_seconds",
            "Per customer batch: decoding its envelopes, folding the events into state and evaluating the "
            "rules (Redis and Kafka writes excluded)", buckets=BATCH_BUCKETS_S, registry=registry),
        batch_output_wait=Histogram(
            f"{p}_batch_output_wait_seconds",
            "Per customer batch and output, the wait until the output acknowledged the batch's writes: redis "
            "(tag changes), tag_topic, changelog (states; only after both others)", ["output"],
            buckets=BATCH_BUCKETS_S, registry=registry),
        audience_size=Gauge(f"{p}_audience_size",
                            "Customers holding each tag (SCARD of its Redis set, read every few seconds)",
                            ["tag"], registry=registry),
        producer_buffer_full=Counter(
            f"{p}_producer_buffer_full",
            "Times faust's producer buffer was full and a table write waited for it to drain",
            registry=registry),
        rules_rejected=Counter(f"{p}_rules_rejected", "Rules-topic records this worker ignored, by reason",
                               ["reason"], registry=registry),
        offset_holes=Counter(f"{p}_offset_holes", "Offsets faust skipped on an input partition: re-read (reread) "
                             "or, when the same hole came back, accepted as a real gap (gap); records never "
                             "acknowledged behind acknowledged ones, read again (unacked)",
                             ["topic", "action"], registry=registry),
        records_read_again=Counter(f"{p}_records_read_again", "Customer-topic records a hole's re-read brought "
                                   "again after they were processed and acknowledged: passed by, not "
                                   "processed twice", registry=registry),
        customer_engine=Counter(f"{p}_customer_engine", "Customers' batches folded per engine: the Rust core's (core) "
                                "or Python's (python: no core, rules or a state it cannot run, identity business, "
                                "a backfill replay)", ["engine"], registry=registry),
        batches_refused=Counter(f"{p}_customer_batches_refused", "Customer batches that wrote nothing and "
                                "were left unacknowledged: the consumer group had not confirmed this worker's "
                                "membership for most of the session timeout (a paused worker)", registry=registry),
        backfill_events=Counter(f"{p}_backfill_events", "Replayed events of `tagstream backfill`: applied to at "
                                "least one new feature (applied), or already counted live or by an earlier "
                                "replay (skipped)", ["result"], registry=registry),
        gc_pause=Histogram(f"{p}_gc_pause_seconds", "Pauses of Python's cyclic garbage collector, per "
                           "generation collected (2: a full collection; streams/app/gc_policy.py)",
                           ["generation"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                           registry=registry),
    )


def _identity_metrics(p: str, registry: CollectorRegistry) -> dict[str, Any]:
    """Identity resolution: links, clusters, merges, erasures (docs/identity.md)."""
    return dict(
        identity_links=Counter(f"{p}_identity_links", "Identity links (a login click, a contact hash beside an "
                               "account, an events.identity record): joined clusters (merged), already one "
                               "cluster (unchanged), refused; repeat: not sent by ingest, the same ids were "
                               "linked within identity.link_repeat_window_ms", ["result"], registry=registry),
        identity_refused=Counter(f"{p}_identity_refused", "Identity links refused, by reason (dead-lettered; "
                                 "junk ids inside an event are left out of its link)", ["reason"],
                                 registry=registry),
        identity_cluster_size=Histogram(f"{p}_identity_cluster_size", "Ids in a cluster after a link changed it",
                                        buckets=(2, 3, 4, 5, 8, 12, 20, 30), registry=registry),
        identity_members=Gauge(f"{p}_identity_members", "Loyalty member ids in the identity graph: all, and those "
                               "linked to an online account (their POS tickets reach the online customer)",
                               ["linked"], registry=registry),
        identity_merges=Counter(f"{p}_identity_merges", "State merges folded into a survivor (applied) or "
                                "ignored as a replay (duplicate)", ["result"], registry=registry),
        identity_merge_overlap=Counter(f"{p}_identity_merge_overlap", "Event ids both sides of a merge had "
                                       "counted (counted twice): must stay 0", registry=registry),
        identity_forwarded=Counter(f"{p}_identity_forwarded", "Items for an absorbed id forwarded to its "
                                   "survivor", ["kind"], registry=registry),
        identity_events=Counter(f"{p}_identity_events", "Events counted, by the type of the customer id they "
                                "counted under (known = member or user)", ["attribution"], registry=registry),
        identity_erasures=Counter(f"{p}_identity_erasures", "Customer ids forgotten (tagstream forget): tags "
                                  "removed, state replaced by a tombstone", registry=registry),
        identity_erased_items=Counter(f"{p}_identity_erased_items", "Events and merges for a forgotten id, "
                                      "dropped while its tombstone lasts", registry=registry),
        identity_batches_refused=Counter(f"{p}_identity_batches_refused", "Identity batches (links) that wrote "
                                         "nothing and were left unacknowledged: the worker's membership was not "
                                         "confirmed, or a later owner of the links partition had written aliases "
                                         "(a paused worker)", registry=registry),
    )
