"""Prometheus metrics as one typed bundle built from a registry you pass in (tests use a fresh
``CollectorRegistry()``; the worker uses the default one and serves it over HTTP)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Fine buckets below a second: the demo and benchmarks read p50/p99 from them.
LATENCY_BUCKETS_S = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2,
                     0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)


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
    expiry_lateness: Histogram
    redis_errors: Counter
    ready: Gauge
    partition_lag: Gauge
    partition_stalled: Gauge
    partition_stall_recoveries: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, prefix: str = "tagstream") -> Metrics:
        p = prefix
        return cls(
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
            customers_in_state=Gauge(f"{p}_customers_in_state", "Customers held in this worker's state",
                                     registry=registry),
            due_index_size=Gauge(f"{p}_due_index_size", "Customers waiting in the due-time index",
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
        )
