"""Due times survive a worker crash: the tag added before the crash still leaves on time."""

from __future__ import annotations

import time
import uuid

import pytest

from .conftest import Stack, WorkerProc, now_ms
from .test_pipeline import click, of, pos_sale


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_expiry_survives_a_worker_kill_between_add_and_due_time(stack: Stack, store: str) -> None:
    """memory:// recovers from the changelog alone; rocksdb:// from its local files plus the delta."""
    worker = WorkerProc(stack, f"restart-{store[:-3]}-{uuid.uuid4().hex[:6]}",
                        extra_env={"TAGSTREAM_STORE": store}).start().wait_ready()  # 5 s windows: see test_rebalance
    try:
        _kill_and_restart(worker)
    finally:
        worker.stop()


def _kill_and_restart(worker: WorkerProc) -> None:
    a = f"u-{uuid.uuid4().hex[:10]}"
    t = now_ms()
    worker.produce("clickstream", [click(a, "product_view", t + i) for i in range(3)])
    worker.tag_changes(until=lambda cs: ("browsing_now", "add", "event") in of(cs, a))
    time.sleep(1.5)  # let the changelog and offsets reach Kafka
    worker.stop(kill=True)  # kill -9: no clean shutdown
    time.sleep(6)  # the tag falls due while no worker owns the partition
    worker.start()
    changes = worker.tag_changes(until=lambda cs: ("browsing_now", "remove", "expiry") in of(cs, a), timeout_s=90)
    removed = next(c for c in changes if c["customer_id"] == a and c["op"] == "remove")
    assert removed["at_ms"] == (t // 100 + 1) * 100 + 5000  # the true due time, not the recovery time
    assert "browsing_now" not in worker.tags_of(a)
    # and new events still work after the restart
    b = f"u-{uuid.uuid4().hex[:10]}"
    worker.produce("pos", [pos_sale(b, 800.0, now_ms())])
    worker.tag_changes(until=lambda cs: ("big_spender", "add", "event") in of(cs, b))
