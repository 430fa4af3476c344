"""Worker processes a benchmark starts and watches: one (``Proc``) or a consumer group of them
(``ProcGroup``), with their CPU time and peak memory."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .paths import REPO
from .procstat import cpu_seconds, vm_hwm_bytes


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    cwd: Path = REPO
    """Where ``python -m ...`` finds the code: another checkout runs that checkout's worker."""

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as f:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=f, stderr=subprocess.STDOUT, cwd=self.cwd)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, n: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def vm_hwm_bytes(self) -> int:
        return vm_hwm_bytes(self.pid)


@dataclass
class ProcGroup:
    """Several worker processes of one consumer group, watched as one (CPU summed, peak memory
    the largest of them, alive while all are)."""

    procs: list[Proc]

    @property
    def name(self) -> str:
        return "+".join(p.name for p in self.procs)

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return next((p.proc for p in self.procs if not p.alive()), self.procs[0].proc)

    def alive(self) -> bool:
        return all(p.alive() for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.stop()

    def tail(self, n: int = 30) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.tail(n)}" for p in self.procs)

    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds() for p in self.procs)

    def vm_hwm_bytes(self) -> int:
        return max(p.vm_hwm_bytes() for p in self.procs)
