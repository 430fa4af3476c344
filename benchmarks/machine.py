"""What a benchmark ran on: the machine, the library versions, the Redis server and the code."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from .paths import REPO


def git_state(repo: Path | None = None) -> dict[str, Any]:
    """Which code a worker started now runs: HEAD and the uncommitted files of the packages."""

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], capture_output=True, text=True, cwd=repo or REPO).stdout.strip()

    return {"git_head": git("rev-parse", "--short", "HEAD"),
            "git_uncommitted_in_code": git("status", "--porcelain", "--", "streams", "tag_rules",
                                           "schemas").splitlines()}


def machine_info(redis_url: str) -> dict[str, Any]:
    from importlib.metadata import version

    cpu_model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "mem_total_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }
    for pkg in ("faust-streaming", "aiokafka", "orjson", "redis", "pydantic", "prometheus-client"):
        try:
            info[pkg] = version(pkg)
        except Exception:
            info[pkg] = None
    try:
        import redis

        info["redis_server"] = redis.Redis.from_url(redis_url).info("server").get("redis_version")
    except Exception:
        info["redis_server"] = None
    info.update(git_state())
    info["kafka"] = sorted(p.name for p in (REPO / ".cache").glob("kafka-*") if p.is_dir())
    return info
