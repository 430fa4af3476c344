"""The Faust internals we rely on are guarded: a faust that differs makes the worker refuse."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from streams.app import faust_compat
from streams.app.faust_compat import FINGERPRINTS, FaustCompatError, check_faust, source_fingerprint
from streams.app.faust_consumer_options import apply_consumer_options, install_consumer_options


def test_installed_faust_is_the_tested_one() -> None:
    check_faust()  # raises if the installed faust-streaming is not what faust_compat was written for


@pytest.mark.parametrize("version", ["0.15.2", "0.16.0", "1.0.0", "0.11.0"])
def test_a_version_outside_the_tested_range_is_refused(version: str) -> None:
    with pytest.raises(FaustCompatError, match="not in the tested range"):
        check_faust(version)


def _a_different_take_events(self: object, max_: int, within: float) -> None:
    """Another implementation under the same name: its source differs."""


def test_a_different_implementation_is_refused() -> None:
    from faust.streams import Stream

    targets = {"faust.streams.Stream.take_events": _a_different_take_events,
               "faust.transport.consumer.Consumer._drain_messages": Stream.take_events}
    with pytest.raises(FaustCompatError, match="differs from the tested one"):
        check_faust("0.15.3", targets)


def test_fingerprints_are_of_the_installed_source() -> None:
    from faust.streams import Stream

    assert source_fingerprint(Stream.take_events) == FINGERPRINTS["faust.streams.Stream.take_events"]


def test_batch_delivery_patch_refuses_a_different_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    from faust.transport import consumer as faust_consumer

    monkeypatch.setattr(faust_consumer.Consumer, "_drain_messages", _a_different_take_events)
    assert faust_compat.install_batch_delivery() is False
    assert faust_consumer.Consumer._drain_messages is _a_different_take_events


def test_importing_the_app_touches_no_faust_private_without_the_patch() -> None:
    import subprocess
    import sys

    code = ("import faust.streams as s, faust.transport.consumer as c\n"
            "del s._current_event\n"  # a faust without the private: importing must still work
            "import streams.app.topology, streams.app.worker\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


async def test_drain_producer_buffer_waits_until_faust_s_buffer_is_empty() -> None:
    """faust's ProducerBuffer.flush() gives up after 100 ms without progress; the drain does not."""

    class Buffer:
        def __init__(self) -> None:
            self.queued = 5
            self.flush_calls = 0

        @property
        def size(self) -> int:
            return self.queued

        async def flush(self) -> None:  # like faust's: returns early, having sent one record
            self.flush_calls += 1
            self.queued -= 1

    class App:
        class producer:
            buffer = Buffer()

    await faust_compat.drain_producer_buffer(App())
    assert App.producer.buffer.size == 0 and App.producer.buffer.flush_calls == 5


def test_read_committed_highwaters_patch_is_idempotent_and_keeps_faust_checkable() -> None:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    assert faust_compat.install_read_committed_highwaters()
    patched = AIOKafkaConsumerThread._highwaters
    assert faust_compat.install_read_committed_highwaters()
    assert AIOKafkaConsumerThread._highwaters is patched  # not wrapped twice
    check_faust()  # fingerprints are taken of faust's own function, not of the patch


class _TP:
    def __init__(self, topic: str, partition: int = 0) -> None:
        self.topic, self.partition = topic, partition

    def __hash__(self) -> int:
        return hash((self.topic, self.partition))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _TP) and (self.topic, self.partition) == (other.topic, other.partition)


def test_hole_guard_rereads_a_skip_once_and_accepts_a_gap_that_comes_back() -> None:
    from streams.app.faust_compat import HoleGuard

    seen: list[tuple[int, int, bool]] = []
    guard = HoleGuard({"cust"}, lambda tp, a, b, real: seen.append((a, b, real)))
    tp = _TP("cust")
    assert guard.check(tp, 5, 6) and guard.check(tp, None, 40) and guard.check(_TP("other"), 5, 40)
    assert seen == []
    assert not guard.check(tp, 5, 20)  # 6..19 never delivered: re-read them from 5
    assert not guard.check(tp, 5, 21)  # fetched before the seek back: not the re-read yet
    assert not guard.check(tp, 5, 20)  # the same: a stale fetch is not a real gap
    assert guard.check(tp, 5, 5)  # the re-read starts
    assert guard.check(tp, 5, 20)  # ... and the same hole comes back: a real gap (transaction markers)
    assert seen == [(6, 19, False), (6, 19, True)]
    assert not guard.check(tp, 30, 33)  # a new hole is re-read again
    assert guard.check(tp, 12, 12)  # faust sought the partition elsewhere itself: that re-read counts
    assert guard.check(tp, 12, 13)


async def test_a_hole_makes_faust_seek_back_instead_of_acknowledging(monkeypatch: pytest.MonkeyPatch) -> None:
    from faust.transport.consumer import Consumer

    from streams.app.faust_compat import HoleGuard, guard_holes

    guard_holes(HoleGuard({"cust"}, lambda *a: None))
    tp, other = _TP("cust"), _TP("src")

    class Msg:
        def __init__(self, offset: int) -> None:
            self.offset = offset

    async def fetched(self: object, timeout: float) -> Any:  # noqa: ASYNC109 (faust's signature)
        for t, off in ((tp, 5), (other, 7), (tp, 20), (tp, 21), (other, 8)):
            yield t, Msg(off)
            if t is tp and off == 5:
                self._read_offset[tp] = 5  # type: ignore[attr-defined]

    monkeypatch.setattr(faust_compat, "_real_getmany", fetched)

    class StandIn:
        def __init__(self) -> None:
            self._read_offset: dict[Any, int] = {tp: 4, other: 6}
            self.seeks: list[tuple[Any, int]] = []

    seeks: list[tuple[Any, int]] = []

    async def fake_seek(self: Any, t: Any, offset: int) -> None:
        seeks.append((t, offset))

    monkeypatch.setattr(faust_compat, "_real_seek", fake_seek)
    consumer = StandIn()
    got = [(t.topic, m.offset) async for t, m in Consumer.getmany(consumer, 1.0)]  # type: ignore[arg-type]
    assert got == [("cust", 5), ("src", 7), ("src", 8)]  # 20 and 21 wait for the re-read
    assert seeks == [(tp, 5)]


async def test_the_hook_before_table_recovery_runs_before_the_tables_rebalance() -> None:
    """Exactly-once fences a partition's previous owner before the recovery reads its changelog
    (faust sends ``on_partitions_assigned`` only after the recovery started)."""
    calls: list[Any] = []

    class Tables:
        async def on_rebalance(self, assigned: set[Any], revoked: set[Any], newly_assigned: set[Any],
                               generation_id: int = 0) -> None:
            calls.append(("recovery", sorted(assigned), generation_id))

    class App:
        tables = Tables()

    async def fence(assigned: set[Any]) -> None:
        await asyncio.sleep(0)
        calls.append(("fence", sorted(assigned)))

    app = App()
    faust_compat.before_table_recovery(app, fence)
    await app.tables.on_rebalance({1, 0}, set(), {1}, 7)
    assert calls == [("fence", [0, 1]), ("recovery", [0, 1], 7)]


async def test_worker_consumer_options_reach_the_aiokafka_consumer_of_their_app_only(tmp_path: Any) -> None:
    """faust hard-codes fetch_max_wait_ms=1500: a long poll of idle partitions starved the busy ones."""
    from streams.app.topology import build_faust_app
    from streams.settings import Settings

    app, other = build_faust_app(Settings(data_dir=tmp_path)), build_faust_app(Settings(data_dir=tmp_path))

    async def made(faust_app: Any) -> tuple[int, str]:
        from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

        thread: Any = SimpleNamespace(app=faust_app, _assignor=faust_app.assignor,  # faust's thread makes a loop
                                      consumer=SimpleNamespace(in_transaction=False))
        consumer = AIOKafkaConsumerThread._create_worker_consumer(thread, faust_app.transport)
        await consumer.stop()  # never started: only closed
        return consumer._fetch_max_wait_ms, consumer._isolation_level

    install_consumer_options(app, fetch_max_wait_ms=100)
    assert await made(app) == (100, "read_uncommitted")
    install_consumer_options(app, read_committed=True)  # the exactly-once output adds its own
    assert await made(app) == (100, "read_committed")
    assert await made(other) == (1500, "read_uncommitted")
    check_faust()  # fingerprints are taken of faust's own function, not of the wrapper


def test_consumer_options_fail_clearly_on_an_aiokafka_without_the_attributes() -> None:
    with pytest.raises(RuntimeError, match="_fetch_max_wait_ms"):
        apply_consumer_options(object(), {"fetch_max_wait_ms": 100})
