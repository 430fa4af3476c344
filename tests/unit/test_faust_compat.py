"""The Faust internals we rely on are guarded: a faust that differs makes the worker refuse."""

from __future__ import annotations

import pytest

from streams.app import faust_compat
from streams.app.faust_compat import FINGERPRINTS, FaustCompatError, check_faust, source_fingerprint


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


async def test_gaps_of_watched_topics_are_reported() -> None:
    from collections import defaultdict

    from faust.transport.consumer import Consumer
    from intervaltree import IntervalTree

    from streams.app.faust_compat import watch_gaps

    seen: list[tuple[str, int, int]] = []
    watch_gaps({"cust"}, lambda tp, a, b: seen.append((tp.topic, a, b)))
    wrapped = Consumer._add_gap
    watch_gaps({"cust2"}, lambda tp, a, b: seen.append((tp.topic, a, b)))
    assert Consumer._add_gap is wrapped  # faust's method is wrapped once

    class TP:
        def __init__(self, topic: str) -> None:
            self.topic = topic

    class StandIn:  # what faust's own _add_gap touches
        def __init__(self) -> None:
            self._committed_offset: dict[object, int | None] = defaultdict(lambda: None)
            self._gap: dict[object, IntervalTree] = defaultdict(IntervalTree)

    consumer = StandIn()
    await Consumer._add_gap(consumer, TP("cust"), 5, 9)  # type: ignore[arg-type]
    await Consumer._add_gap(consumer, TP("other"), 1, 2)  # type: ignore[arg-type]
    assert seen == [("cust", 5, 9)]
    assert sum(len(t) for t in consumer._gap.values()) == 2  # faust's bookkeeping still runs
