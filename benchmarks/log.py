"""The benchmarks' progress lines: ``[HH:MM:SS] message`` on stdout, flushed at once."""

from __future__ import annotations

import time


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
