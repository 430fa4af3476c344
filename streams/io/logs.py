"""The worker's log output: text (default) or one JSON object per line, no terminal escape codes
unless the log goes to a terminal, and faust's "producer buffer full" noise turned into a metric.

The worker configures logging itself (``setup_logging``) and tells faust not to: faust's setup
writes coloured lines and a progress spinner whose cursor codes (``\\x1b[?25l``) end up in log
files and container logs.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import TextIO

import orjson
from prometheus_client import Counter

ANSI_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[@-Z\\-_])")
"""CSI sequences (colours, cursor), character-set switches (faust's box-drawing tables) and
two-byte escapes."""

PRODUCER_LOGGER = "faust.transport.producer"
STARTUP_LOGGER = "streams.app.worker"
"""The worker's few start-up lines (rules, brokers, metrics address) show at every level."""
_LEVEL_COLORS = {"DEBUG": "34", "INFO": "0", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}


def strip_ansi(text: str) -> str:
    return ANSI_RE.sub("", text) if "\x1b" in text else text


def _iso_ms(created_s: float) -> str:
    return dt.datetime.fromtimestamp(created_s, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (RFC 3339, UTC, ms), ``level``, ``logger``, ``message``,
    and ``exc_info`` / ``stack_info`` (the formatted traceback) when the record has one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {"ts": _iso_ms(record.created), "level": record.levelname, "logger": record.name,
                                  "message": strip_ansi(record.getMessage())}
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """``[ts] [pid] [LEVEL] logger: message``; the level coloured on a terminal only, and escape
    codes inside messages removed when not on a terminal."""

    def __init__(self, *, color: bool) -> None:
        super().__init__("[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s")
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.color:
            return strip_ansi(text)
        code = _LEVEL_COLORS.get(record.levelname, "0")
        return text.replace(f"[{record.levelname}]", f"[\x1b[{code}m{record.levelname}\x1b[0m]", 1)


class ProducerBufferFull(logging.Filter):
    """faust warns "producer buffer full size N" (and logs "producer flush took S" at INFO) each
    time a table write waits for its producer buffer: under load that is many lines per second.
    Each one counts in ``tagstream_producer_buffer_full_total``; at most one summary line passes
    per ``every_s`` (none when ``show`` is false, i.e. the log level is above WARNING)."""

    def __init__(self, counter: Counter | None, *, every_s: float = 60.0, show: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._counter = counter
        self._every_s = every_s
        self._show = show
        self._clock = clock
        self._last_s: float | None = None
        self._since = 0

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if msg.startswith("producer flush took"):
            return False
        if not msg.startswith("producer buffer full"):
            return True
        if self._counter is not None:
            self._counter.inc()
        self._since += 1
        now_s = self._clock()
        if not self._show or (self._last_s is not None and now_s - self._last_s < self._every_s):
            return False
        record.msg = (f"faust's producer buffer was full {self._since} time(s) since the last such line ({msg}); "
                      f"counted in tagstream_producer_buffer_full_total, logged at most every {self._every_s:.0f} s")
        record.args = ()
        self._last_s, self._since = now_s, 0
        return True


def setup_logging(*, level: str, fmt: str, buffer_full: Counter | None = None,
                  stream: TextIO | None = None) -> logging.Handler:
    """Replaces the root logger's handlers with one handler on ``stream`` (stderr) in ``fmt``
    (``text`` or ``json``) at ``level``; returns the handler."""
    stream = stream or sys.stderr
    levelno = logging.getLevelNamesMapping()[level.upper()]
    handler = logging.StreamHandler(stream)
    tty = bool(getattr(stream, "isatty", lambda: False)())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(color=tty))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(levelno)
    logging.getLogger(STARTUP_LOGGER).setLevel(min(levelno, logging.INFO))
    producer = logging.getLogger(PRODUCER_LOGGER)
    producer.setLevel(min(levelno, logging.WARNING))  # counted even when the level hides the line
    for old_filter in list(producer.filters):
        if isinstance(old_filter, ProducerBufferFull):
            producer.removeFilter(old_filter)
    producer.addFilter(ProducerBufferFull(buffer_full, show=levelno <= logging.WARNING))
    logging.captureWarnings(True)
    return handler
