"""Identity resolution under faults (issue 11, item 4): a worker SIGKILLed while merges are in flight,
and a rebalance during merges, end with exactly the per-canonical feature values of the in-process
reference (tests/integration/identitycheck.py): every event counted once, in the right customer."""

from __future__ import annotations

import time
import urllib.request
import uuid

from .conftest import Stack, WorkerProc, now_ms
from .identity_traffic import events_only, identity_traffic
from .identitycheck import await_same_features, reference
from .test_identity import identity_worker


def merges_applied(port: int) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return 0.0
    return sum(float(ln.split()[-1]) for ln in text.splitlines()
               if ln.startswith('tagstream_identity_merges_total{result="applied"}'))


def produce(w: WorkerProc, traffic: list[tuple[str, bytes]]) -> None:
    by_source: dict[str, list[bytes]] = {}
    for source, value in traffic:
        by_source.setdefault(source, []).append(value)
    for source, values in by_source.items():
        w.produce(source, values)


def wait_merges(w: WorkerProc, n: int) -> None:
    deadline = time.monotonic() + 120
    while merges_applied(w.metrics_port) < n:
        w.assert_alive()
        assert time.monotonic() < deadline, f"no {n} merges applied:\n{w.tail()}"
        time.sleep(0.05)


def test_sigkill_while_merging_loses_doubles_and_misplaces_no_event(stack: Stack) -> None:
    traffic = identity_traffic(40, 3000, seed=11, start_ms=now_ms() - 3_600_000)
    # the default TAG_ANONYMOUS (off): anonymous visitors keep features only (TagEngine.fold_only)
    w = identity_worker(stack, f"idkill-{uuid.uuid4().hex[:6]}",
                        TAGSTREAM_IDENTITY__TAG_ANONYMOUS="false").start().wait_ready()
    try:
        produce(w, traffic[:1500])
        wait_merges(w, 10)
        w.stop(kill=True)  # mid-load, merges in flight: no clean shutdown, no final commit
        produce(w, traffic[1500:])
        w.start()
        want, _, stubs = await_same_features(w, events_only(traffic))
        assert len(want) < 60 and stubs, "the traffic must merge most ids (40 people)"
    finally:
        w.stop()


def test_a_rebalance_during_merges_loses_doubles_and_misplaces_no_event(stack: Stack) -> None:
    traffic = identity_traffic(40, 3000, seed=12, start_ms=now_ms() - 3_600_000)
    name = f"idrebal-{uuid.uuid4().hex[:6]}"
    first = identity_worker(stack, name).start().wait_ready()
    second = identity_worker(stack, name)
    second.instance = "2"
    try:
        produce(first, traffic[:1000])
        wait_merges(first, 5)
        second.start()  # joins the group: partitions (the identity one among them) move mid-load
        produce(first, traffic[1000:2000])
        first.stop()  # and leaves it: everything moves to the second worker
        produce(second, traffic[2000:])
        await_same_features(second, events_only(traffic))
    finally:
        first.stop()
        second.stop()


def test_the_comparison_sees_one_event_lost_or_doubled() -> None:
    """The check is sharp: the reference of the traffic with one event left out, or one event counted
    twice (under a new event id: a redelivery with the same id rightly counts once), differs from the
    reference of the traffic (same links)."""
    traffic = events_only(identity_traffic(40, 600, seed=13, start_ms=now_ms() - 3_600_000))
    links = [{"link_id": "x", "ids": ["member:m-1", "user:u-1"], "ts_ms": 0}]
    full, _ = reference(traffic, links)
    one_lost, _ = reference(traffic[:300] + traffic[301:], links)
    source, value = traffic[300]
    one_doubled, _ = reference([*traffic, (source, value.replace(b'"ev-13-', b'"again-13-', 1))], links)
    assert full != one_lost and full != one_doubled
