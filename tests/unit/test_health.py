"""The probe endpoints, served for real on a loopback port (no Kafka or Redis needed)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry, Counter

from streams.io.health import Health, serve


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_liveness_readiness_and_metrics() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    registry = CollectorRegistry()
    Counter("tagstream_probe_test", "x", registry=registry).inc()
    Counter("tagstream_other_test", "y", ["tag"], registry=registry).labels("t1").inc()
    health = Health(stall_after_s=0.5)
    server = serve(health, host="127.0.0.1", port=port, registry=registry)
    try:
        assert get(port, "/livez")[0] == 200
        status, body = get(port, "/readyz")
        assert status == 503 and json.loads(body)["recovered"] is False
        health.recovered = True
        assert get(port, "/readyz")[0] == 200
        health.redis_ok = False
        status, body = get(port, "/readyz")
        assert status == 503 and json.loads(body)["redis"] is False
        health.redis_ok = True
        health.kafka_ok = False
        status, body = get(port, "/readyz")
        assert status == 503 and json.loads(body)["kafka"] is False
        health.kafka_ok = True
        health.heartbeat_s -= 1.0  # the event loop stopped beating
        assert get(port, "/livez")[0] == 503 and get(port, "/readyz")[0] == 503
        health.beat()
        assert get(port, "/livez")[0] == 200
        status, body = get(port, "/metrics")
        assert status == 200 and b"tagstream_probe_test_total 1.0" in body and b"tagstream_other_test" in body
        status, body = get(port, "/metrics?name[]=tagstream_probe_test_total")  # a progress poll: these only
        assert status == 200 and b"tagstream_probe_test_total 1.0" in body and b"tagstream_other_test" not in body
        assert get(port, "/nope")[0] == 404
    finally:
        server.shutdown()
        server.server_close()
