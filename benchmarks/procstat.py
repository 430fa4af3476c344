"""CPU time and peak memory of a process, from /proc (Linux)."""

from __future__ import annotations

import os

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name (field 2) may contain spaces; the fields after it are fixed.
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # fields 14 and 15 of proc(5)


def _status_kb(pid: int | str, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def vm_hwm_bytes(pid: int | str = "self") -> int:
    """Peak resident set size (VmHWM)."""
    return _status_kb(pid, "VmHWM")


def vm_rss_bytes(pid: int | str = "self") -> int:
    """Current resident set size (VmRSS)."""
    return _status_kb(pid, "VmRSS")
