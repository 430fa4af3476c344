"""Two workers in one group: a partition moves when one stops, state and due times move with it."""

from __future__ import annotations

import time
import uuid

from .conftest import Stack, WorkerProc, now_ms
from .test_pipeline import click, of, pos_sale

# Partitions move between workers here: the local RocksDB store (plus its changelog) is what a
# multi-worker deployment uses; faust's memory:// store can drop recovered keys on rebalance.
STORE = {"TAGSTREAM_STORE": "rocksdb://"}


def test_tags_and_due_times_survive_a_rebalance(stack: Stack) -> None:
    name = f"rebalance-{uuid.uuid4().hex[:6]}"
    # ready first: browsing_now needs 3 views within 5 s at the worker's clock, and a worker that
    # starts slower than that (a loaded CI machine) would see them too late to add it
    a = WorkerProc(stack, name, extra_env=dict(STORE)).start().wait_ready()
    b = WorkerProc(stack, name, instance="2", extra_env=dict(STORE))  # same app id etc.: one consumer group
    try:
        customers = [f"u-{uuid.uuid4().hex[:8]}" for _ in range(12)]  # spread over both partitions
        t = now_ms()
        for c in customers:
            a.produce("clickstream", [click(c, "product_view", t + i) for i in range(3)], key=c.encode())
        a.tag_changes(until=lambda cs: all(("browsing_now", "add", "event") in of(cs, c) for c in customers))
        b.start()  # the group rebalances: b takes one of the two partitions, with its state
        time.sleep(3)
        a.stop()  # a leaves: b owns everything now
        # every browsing_now still leaves on time (due ~5 s after the views), published by b
        changes = b.tag_changes(until=lambda cs: all(("browsing_now", "remove", "expiry") in of(cs, c)
                                                     for c in customers), timeout_s=120)
        for c in customers:
            removed = [x for x in changes if x["customer_id"] == c and x["op"] == "remove"]
            assert len(removed) >= 1 and removed[0]["at_ms"] == (t // 100 + 1) * 100 + 5000
            assert "browsing_now" not in b.tags_of(c)
        a.start()  # a comes back: the partitions are shared again, state moves back with them
        time.sleep(3)
        # state moved with the partition: lifetime spend adds up across the moves
        buyer = customers[0]
        b.produce("pos", [pos_sale(buyer, 300.0, now_ms()), pos_sale(buyer, 250.0, now_ms())])
        more = b.tag_changes(until=lambda cs: ("big_spender", "add", "event") in of(cs, buyer))
        big = next(x for x in more if x["customer_id"] == buyer and x["tag"] == "big_spender")
        assert big["features"] == {"spend_lifetime": 550.0}
    finally:
        a.stop()
        b.stop()
