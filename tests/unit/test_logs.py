"""The worker's log output: JSON lines, no escape codes off a terminal, the producer-buffer filter."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from streams.io.logs import PRODUCER_LOGGER, JsonFormatter, ProducerBufferFull, TextFormatter, setup_logging, strip_ansi


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, producer = logging.getLogger(), logging.getLogger(PRODUCER_LOGGER)
    saved = (list(root.handlers), root.level, list(producer.filters), producer.level)
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])
    producer.filters[:] = saved[2]
    producer.setLevel(saved[3])
    logging.captureWarnings(False)


def record(msg: str, *args: object, level: int = logging.WARNING, name: str = "x") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


@pytest.mark.parametrize("text, plain", [
    ("\x1b[?25lstarting\x1b[?25h", "starting"),
    ("\x1b[31mred\x1b[0m and \x1b(0lqk\x1b(B", "red and lqk"),
    ("no escapes [0m", "no escapes [0m"),
])
def test_strip_ansi(text: str, plain: str) -> None:
    assert strip_ansi(text) == plain


def test_json_lines_carry_ts_level_logger_message_and_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        rec = logging.LogRecord("streams.x", logging.ERROR, __file__, 1, "failed for %r\nsecond line", ("c1",),
                                sys.exc_info())
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["level"] == "ERROR" and obj["logger"] == "streams.x"
    assert obj["message"] == "failed for 'c1'\nsecond line"
    assert obj["ts"].endswith("Z") and "T" in obj["ts"]
    assert "ValueError: boom" in obj["exc_info"]


def test_text_has_no_escape_codes_off_a_terminal_and_colours_on_one() -> None:
    rec = record("\x1b[1mbold\x1b[0m %s", "arg")
    plain = TextFormatter(color=False).format(rec)
    assert "\x1b" not in plain and "[WARNING] x: bold arg" in plain
    assert "\x1b[33mWARNING" in TextFormatter(color=True).format(record("m"))


def test_producer_buffer_full_is_counted_and_logged_at_most_once_a_period() -> None:
    counter = Counter("buffer_full", "x", registry=CollectorRegistry())
    now = [0.0]
    f = ProducerBufferFull(counter, every_s=60, clock=lambda: now[0])
    passed = []
    for i in range(5):
        rec = record(f"producer buffer full size {101 + i}")
        if f.filter(rec):
            passed.append(rec.getMessage())
        assert not f.filter(record("producer flush took 0.01", level=logging.INFO))
    now[0] = 61.0
    rec = record("producer buffer full size 300")
    assert f.filter(rec)
    passed.append(rec.getMessage())
    assert counter._value.get() == 6
    assert len(passed) == 2
    assert "1 time(s)" in passed[0] and "5 time(s)" in passed[1] and "size 300" in passed[1]
    assert f.filter(record("something else"))


def test_setup_logging_json_counts_buffer_full_even_above_warning(restore_logging: None) -> None:
    counter = Counter("buffer_full", "x", registry=CollectorRegistry())
    out = io.StringIO()
    setup_logging(level="error", fmt="json", buffer_full=counter, stream=out)
    logging.getLogger(PRODUCER_LOGGER).warning("producer buffer full size 101")
    logging.getLogger("streams.app.worker").info("tagstream worker: rules v1")
    logging.getLogger("faust.x").warning("hidden at error level")
    logging.getLogger("faust.x").error("shown")
    lines = [json.loads(ln) for ln in out.getvalue().splitlines()]
    assert [ln["message"] for ln in lines] == ["tagstream worker: rules v1", "shown"]
    assert counter._value.get() == 1


def test_setup_logging_text_on_a_terminal_and_off(restore_logging: None) -> None:
    out = io.StringIO()
    setup_logging(level="WARN", fmt="text", stream=out)
    logging.getLogger("faust.x").warning("\x1b[?25lplain")
    assert out.getvalue().endswith("faust.x: plain\n")
    tty = FakeTTY()
    setup_logging(level="warning", fmt="text", stream=tty)
    logging.getLogger("faust.x").warning("coloured")
    assert "\x1b[33m" in tty.getvalue()
    assert len(logging.getLogger().handlers) == 1
