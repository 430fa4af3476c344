"""The HTTP API against the real Redis: `tagstream serve` processes (with and without a token) on
tags written by the real sink, audience paging over 5,000 members, the CLI's audience paging, and
the API a worker serves itself on tags it computed from real Kafka events."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from schemas.api import ApiError, AudiencePage, CustomerTags
from streams.io.redis_sink import RedisTagSink

from .conftest import REPO, Stack, WorkerProc, free_port, now_ms

TOKEN = "it-token-0123456789"


@dataclass
class ServeProc:
    """A real `tagstream serve` subprocess on the stack's Redis."""

    proc: subprocess.Popen[bytes]
    port: int
    prefix: str
    log: Path
    token: str | None

    def get(self, path: str, *, token: str | None = "default") -> tuple[int, Any]:
        return http_get(self.port, path, self.token if token == "default" else token)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def http_get(port: int, path: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read())


def start_serve(stack: Stack, prefix: str, token: str | None) -> ServeProc:
    port = free_port()
    env = {**os.environ, "TAGSTREAM_REDIS__URL": stack.redis_url, "TAGSTREAM_REDIS__KEY_PREFIX": prefix,
           "TAGSTREAM_API__PORT": str(port)}
    env.pop("TAGSTREAM_API__TOKEN", None)
    if token:
        env["TAGSTREAM_API__TOKEN"] = token
    log = stack.dir / f"serve-{prefix}-{port}.log"
    with log.open("wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "serve"], env=env, cwd=REPO, stdout=f,
                                stderr=subprocess.STDOUT)
    serve = ServeProc(proc, port, prefix, log, token)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"tagstream serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            if http_get(port, "/openapi.json")[0] == 200:
                return serve
        except OSError:
            time.sleep(0.2)
    serve.stop()
    pytest.fail(f"tagstream serve did not answer within 60 s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"it-api-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def secured(stack: Stack, prefix: str) -> Iterator[ServeProc]:
    s = start_serve(stack, prefix, TOKEN)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def open_api(stack: Stack, prefix: str) -> Iterator[ServeProc]:
    s = start_serve(stack, prefix, None)
    yield s
    s.stop()


def change(customer: str, tag: str, op: str, at_ms: int = 1_800_000_000_000) -> dict[str, Any]:
    return {"customer_id": customer, "tag": tag, "op": op, "at_ms": at_ms, "rule_version": "it-api-1"}


def write(stack: Stack, prefix: str, changes: list[dict[str, Any]]) -> None:
    """Through the worker's own sink, so the API reads what a worker writes."""

    async def run() -> None:
        sink = RedisTagSink(aioredis.Redis.from_url(stack.redis_url), prefix=prefix)
        for c in changes:
            sink.add(c)
        await sink.flush()
        await sink.close()

    asyncio.run(run())


def test_a_customers_tags_follow_the_sink(stack: Stack, secured: ServeProc) -> None:
    a = f"c-{uuid.uuid4().hex[:8]}"
    write(stack, secured.prefix, [change(a, "vip", "add", 1_800_000_000_001), change(a, "lapsed", "add")])
    status, body = secured.get(f"/customers/{a}/tags")
    assert status == 200
    got = CustomerTags.model_validate(body)
    assert got.customer_id == a and set(got.tags) == {"vip", "lapsed"}
    assert got.tags["vip"].since_ms == 1_800_000_000_001 and got.tags["vip"].rule_version == "it-api-1"

    write(stack, secured.prefix, [change(a, "lapsed", "remove")])
    assert set(secured.get(f"/customers/{a}/tags")[1]["tags"]) == {"vip"}
    write(stack, secured.prefix, [change(a, "vip", "remove")])
    status, body = secured.get(f"/customers/{a}/tags")
    assert status == 404 and ApiError.model_validate(body).error == "not_found" and a in body["message"]


def test_customer_ids_with_slashes_spaces_and_unicode(stack: Stack, secured: ServeProc) -> None:
    odd = f"shop/{uuid.uuid4().hex[:6]} é?#%"
    write(stack, secured.prefix, [change(odd, "vip", "add")])
    status, body = secured.get(f"/customers/{urllib.parse.quote(odd, safe='')}/tags")
    assert status == 200 and body["customer_id"] == odd and set(body["tags"]) == {"vip"}


def test_token_required_when_set_and_not_otherwise(stack: Stack, secured: ServeProc,
                                                         open_api: ServeProc) -> None:
    a = f"c-{uuid.uuid4().hex[:8]}"
    write(stack, secured.prefix, [change(a, "vip", "add")])
    assert secured.get(f"/customers/{a}/tags", token=None)[0] == 401
    assert secured.get(f"/customers/{a}/tags", token="not-it")[0] == 401
    assert secured.get("/audiences/vip", token=None)[0] == 401
    assert secured.get(f"/customers/{a}/tags")[0] == 200
    assert open_api.get(f"/customers/{a}/tags")[0] == 200  # same Redis and prefix, no token configured


def test_a_large_audience_pages_every_member_exactly_once(stack: Stack, secured: ServeProc) -> None:
    tag = f"aud_{uuid.uuid4().hex[:8]}"
    members = {f"m{i:05d}" for i in range(5000)}
    write(stack, secured.prefix, [change(m, tag, "add") for m in sorted(members)])
    seen: list[str] = []
    cursor: str | None = "0"
    pages = 0
    while cursor is not None:
        status, body = secured.get(f"/audiences/{tag}?limit=100" + (f"&cursor={cursor}" if cursor != "0" else ""))
        assert status == 200, body
        page = AudiencePage.model_validate(body)
        assert page.tag == tag and page.count == 5000
        assert len(page.members) <= 1000  # COUNT 100 is a hint, but never the whole set at once
        seen.extend(page.members)
        cursor = page.next_cursor
        pages += 1
        assert pages <= 5000, "the scan does not end"
    assert len(seen) == len(members) and set(seen) == members
    assert pages >= 20  # paged, not one reply

    status, body = secured.get(f"/audiences/{tag}?cursor=zz")
    assert status == 400 and "cursor" in body["message"]
    status, body = secured.get(f"/audiences/no_such_tag_{uuid.uuid4().hex[:6]}")
    assert status == 200 and body == {"tag": body["tag"], "count": 0, "members": [], "next_cursor": None}


def test_the_cli_counts_and_pages_an_audience(stack: Stack, secured: ServeProc) -> None:
    from tag_rules import DEFAULT_RULES, load_rules

    tag = sorted(load_rules(DEFAULT_RULES).tags)[0]  # the CLI refuses a tag the rule set in force lacks
    members = {f"k{i:04d}" for i in range(1500)}
    write(stack, secured.prefix, [change(m, tag, "add") for m in sorted(members)])
    env = {**os.environ, "TAGSTREAM_REDIS__URL": stack.redis_url, "TAGSTREAM_REDIS__KEY_PREFIX": secured.prefix,
           "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": stack.bootstrap}
    out = subprocess.run([sys.executable, "-m", "streams.cli", "tags", "--audience", tag, "--limit", "1200"],
                         env=env, cwd=REPO, capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == f"{tag}: 1500 customers"
    listed = [line.strip() for line in out[1:]]
    assert len(listed) == 1200 and len(set(listed)) == 1200 and set(listed) <= members


def test_a_worker_serves_the_tags_it_computes(stack: Stack) -> None:
    worker = WorkerProc(stack, "api-worker", extra_env={"TAGSTREAM_API__TOKEN": TOKEN}).start()
    try:
        a = f"u-{uuid.uuid4().hex[:10]}"
        worker.produce("pos", [{"event_id": uuid.uuid4().hex, "ts": now_ms(), "store_id": "s01", "member_id": a,
                                "type": "sale", "total": 600.0, "payment_method": "card",
                                "items": [{"sku": "x", "category": "shoes", "qty": 1, "unit_price": 600.0}]}])
        worker.tag_changes(until=lambda cs: any(c["customer_id"] == a and c["tag"] == "big_spender" for c in cs))
        status, body = http_get(worker.api_port, f"/customers/{a}/tags", TOKEN)
        assert status == 200, body
        tags = CustomerTags.model_validate(body).tags
        assert tags["big_spender"].rule_version == "it-1"  # ("lapsed" follows 4 s after the purchase)
        assert http_get(worker.api_port, f"/customers/{a}/tags")[0] == 401
        status, body = http_get(worker.api_port, "/audiences/big_spender", TOKEN)
        assert status == 200 and a in body["members"] and body["count"] >= 1
    finally:
        worker.stop()
