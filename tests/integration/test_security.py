"""Security settings against the real servers: Kafka SASL/SCRAM and a Redis ACL user."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import redis

from .conftest import Stack, WorkerProc, now_ms
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
        assert r.hexists(f"it-{name}:tags:{a}", "big_spender")
        log = w.log.read_text(errors="replace") if w.log else ""
        assert SCRAM_PASSWORD not in log and REDIS_PASSWORD not in log  # secrets never logged
    finally:
        w.stop()
        own.stop()
