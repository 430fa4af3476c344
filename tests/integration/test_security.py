"""Security settings against the real servers: Kafka SASL/SCRAM and a Redis ACL user."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import redis

from streams.io.redis_sink import tags_key

from .conftest import Stack, WorkerProc, free_port, now_ms
from .test_pipeline import of, pos_sale
from .test_redis_outage import OwnRedis

SCRAM_PASSWORD = "tagstream-secret"
REDIS_PASSWORD = "redis-acl-Secret-42"


def test_worker_over_sasl_scram_and_a_redis_acl_user(stack: Stack, tmp_path: Path) -> None:
    own = OwnRedis(tmp_path)
    own.start()
    name = f"secure-{uuid.uuid4().hex[:6]}"
    # Only an ACL user may use this Redis: the default (password-less) user is switched off.
    acl = ["redis-cli", "-p", str(own.port)]
    subprocess.run([*acl, "ACL", "SETUSER", "tagstream", "on", f">{REDIS_PASSWORD}", f"~it-{name}:*", "+@all"],
                   check=True, capture_output=True)
    subprocess.run([*acl, "ACL", "SETUSER", "default", "off"], check=True, capture_output=True)
    w = WorkerProc(stack, name, extra_env={
        # the SASL listener: a plaintext client could not even connect to it
        "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": stack.sasl_bootstrap,
        "TAGSTREAM_KAFKA__SASL_MECHANISM": "SCRAM-SHA-256",
        "TAGSTREAM_KAFKA__SASL_USERNAME": "tagstream",
        "TAGSTREAM_KAFKA__SASL_PASSWORD": SCRAM_PASSWORD,
        "TAGSTREAM_REDIS__URL": f"redis://127.0.0.1:{own.port}/0",
        "TAGSTREAM_REDIS__USERNAME": "tagstream",
        "TAGSTREAM_REDIS__PASSWORD": REDIS_PASSWORD,
    }).start()
    try:
        a = f"u-{uuid.uuid4().hex[:8]}"
        w.produce("pos", [pos_sale(a, 800.0, now_ms())])  # the test itself uses the plaintext listener
        w.tag_changes(until=lambda cs: ("big_spender", "add", "event") in of(cs, a))
        r = redis.Redis(port=own.port, username="tagstream", password=REDIS_PASSWORD)
        assert r.hexists(tags_key(f"it-{name}", a), "big_spender")
        log = w.log.read_text(errors="replace") if w.log else ""
        assert SCRAM_PASSWORD not in log and REDIS_PASSWORD not in log  # secrets never logged
    finally:
        w.stop()
        own.stop()


def test_worker_over_tls_to_kafka_and_redis(stack: Stack, tmp_path: Path) -> None:
    """Kafka's SSL listener and a TLS-only Redis, both with the stack's self-signed CA."""
    tls = stack.dir / "tls"
    port = free_port()
    redis_tls = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(port),
                                  "--tls-cert-file", str(tls / "cert.pem"), "--tls-key-file", str(tls / "key.pem"),
                                  "--tls-ca-cert-file", str(tls / "ca.pem"), "--tls-auth-clients", "no",
                                  "--dir", str(tmp_path), "--save", ""],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = f"tls-{uuid.uuid4().hex[:6]}"
    w = WorkerProc(stack, name, extra_env={
        "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": stack.ssl_bootstrap,  # TLS only on this port
        "TAGSTREAM_KAFKA__SECURITY_PROTOCOL": "SSL",
        "TAGSTREAM_KAFKA__SSL_CAFILE": str(tls / "ca.pem"),
        "TAGSTREAM_REDIS__URL": f"rediss://127.0.0.1:{port}/0",
        "TAGSTREAM_REDIS__SSL_CA_CERTS": str(tls / "ca.pem"),
    }).start()
    try:
        a = f"u-{uuid.uuid4().hex[:8]}"
        w.produce("pos", [pos_sale(a, 800.0, now_ms())])
        w.tag_changes(until=lambda cs: ("big_spender", "add", "event") in of(cs, a))
        r = redis.Redis(port=port, ssl=True, ssl_ca_certs=str(tls / "ca.pem"))
        assert r.hexists(tags_key(f"it-{name}", a), "big_spender")
    finally:
        w.stop()
        redis_tls.terminate()
        redis_tls.wait(timeout=20)
