"""HTTP endpoints of a worker: ``/metrics`` (Prometheus; ``?name[]=…`` for some series only), ``/livez``
and ``/readyz``.

Served from a thread (like prometheus-client's own server) so a busy or stuck event loop
cannot hide its own state: liveness is a heartbeat the event loop must keep beating.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest


@dataclass
class Health:
    """What the worker tells the probes; written by the event loop, read by the HTTP thread."""

    stall_after_s: float = 10.0
    heartbeat_s: float = field(default_factory=time.monotonic)
    recovered: bool = False
    """Partitions assigned and state recovered (False again while rebalancing)."""
    redis_ok: bool = True
    kafka_ok: bool = True
    ingest_ok: bool = True
    """False once the source consumer failed (the worker is stopping)."""
    stalled: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per consumer, assigned partitions with lag whose committed offset stands still (app/watchdog.py)."""

    def beat(self) -> None:
        self.heartbeat_s = time.monotonic()

    def live(self) -> tuple[bool, dict[str, object]]:
        age_s = time.monotonic() - self.heartbeat_s
        return age_s < self.stall_after_s, {"event_loop_heartbeat_age_s": round(age_s, 3)}

    def ready(self) -> tuple[bool, dict[str, object]]:
        live, detail = self.live()
        stalled = sorted(p for parts in self.stalled.values() for p in parts)
        detail.update(recovered=self.recovered, redis=self.redis_ok, kafka=self.kafka_ok, ingest=self.ingest_ok,
                      stalled_partitions=stalled)
        ok = live and self.recovered and self.redis_ok and self.kafka_ok and self.ingest_ok and not stalled
        return ok, detail


def serve(health: Health, *, host: str, port: int, registry: CollectorRegistry = REGISTRY) -> ThreadingHTTPServer:
    """Starts the endpoints on ``host:port`` in a daemon thread and returns the server."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                # ?name[]=a&name[]=b: only those series (as prometheus-client's own handler): a
                # progress poll of a worker with 1,000 tags need not render their 5,000 series
                names = parse_qs(urlsplit(self.path).query).get("name[]")
                target = registry.restricted_registry(names) if names else registry
                self._send(200, generate_latest(target), CONTENT_TYPE_LATEST)
            elif self.path.startswith(("/livez", "/readyz")):
                ok, detail = health.live() if self.path.startswith("/livez") else health.ready()
                self._send(200 if ok else 503, orjson.dumps({"ok": ok, **detail}), "application/json")
            else:
                self._send(404, b"not found: try /metrics, /livez, /readyz\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # probes every few seconds would flood the worker log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="tagstream-http", daemon=True).start()
    return server
