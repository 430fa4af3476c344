"""A real Redis Cluster for the tests: three ``redis-server --cluster-enabled yes`` masters on free
loopback ports (Debian's redis-server), joined with ``redis-cli --cluster create``. No replicas:
the tests are about key routing and slots, not failover."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import redis

from .conftest import free_port


class LocalRedisCluster:
    def __init__(self, directory: Path, nodes: int = 3) -> None:
        self.dir = directory
        self.ports = [free_port() for _ in range(nodes)]
        # the cluster bus port, set explicitly: the default (port + 10000) may be taken
        self.bus_ports = [free_port() for _ in range(nodes)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The tagstream URL of the cluster: any one node, the client discovers the others."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def node(self, port: int) -> redis.Redis:
        """A plain client of one node (no redirects followed)."""
        return redis.Redis(port=port)

    def start(self) -> LocalRedisCluster:
        for port, bus in zip(self.ports, self.bus_ports, strict=True):
            d = self.dir / str(port)
            d.mkdir(parents=True)
            self.procs.append(subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--cluster-enabled", "yes",
                 "--cluster-port", str(bus), "--cluster-config-file", str(d / "nodes.conf"), "--dir", str(d),
                 "--save", "", "--appendonly", "no", "--logfile", str(d / "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in self.ports:
            self._wait(partial(self._answers, port), f"redis-server on {port} did not start")
        create = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, text=True, timeout=60)
        assert create.returncode == 0, f"redis-cli --cluster create failed:\n{create.stdout}\n{create.stderr}"
        for port in self.ports:
            self._wait(partial(self._cluster_ok, port), f"cluster node {port} not ok:\n{self.logs()}")
        return self

    def _answers(self, port: int) -> bool:
        return bool(self.node(port).ping())

    def _cluster_ok(self, port: int) -> bool:
        return bool(self.node(port).cluster("info")["cluster_state"] == "ok")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join((self.dir / str(p) / "redis.log").read_text(errors="replace")[-2000:] for p in self.ports)

    @staticmethod
    def _wait(check: Callable[[], Any], message: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if check():
                    return
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, message
            time.sleep(0.1)
