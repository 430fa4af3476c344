"""Identity resolution on the real stack (docs/identity.md): anonymous browsing that logs in, a POS
member and an online account joined by an e-mail hash, a CRM link record, a shared kiosk device
refused at the cap, junk ids and malformed link records dead-lettered; the worker's features per
canonical customer equal the in-process reference; aliases and tag changes name the canonical id."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from streams.engine.features.state import CustomerState

from .conftest import REPO, Stack, WorkerProc, now_ms, text
from .faultcheck import RULES, read_to_end
from .identitycheck import await_same_features, links_read

H1 = hashlib.sha256(b"ann@example.com").hexdigest()


def identity_worker(stack: Stack, name: str, **env: str) -> WorkerProc:
    return WorkerProc(stack, name, rules=RULES, extra_env={
        "TAGSTREAM_IDENTITY__ENABLED": "true",
        "TAGSTREAM_KAFKA__IDENTITY_TOPIC": f"it-{name}.identity",
        "TAGSTREAM_IDENTITY__TAG_ANONYMOUS": "true",
        **env})


@pytest.fixture(scope="module")
def worker(stack: Stack) -> Iterator[WorkerProc]:
    w = identity_worker(stack, "identity").start().wait_ready()
    try:
        yield w
    finally:
        w.stop()


def click(eid: str, ts: int, *, user: str | None = None, anon: str | None = None, type_: str = "product_view",
          price: float = 10.0) -> dict[str, Any]:
    e: dict[str, Any] = {"event_id": eid, "ts": ts, "type": type_, "session_id": "s-1", "sku": "APP-001",
                         "category": "apparel", "price": price}
    if user is not None:
        e["user_id"] = user
    if anon is not None:
        e["anonymous_id"] = anon
    return e


def pos(eid: str, ts: int, member: str, total: float, **ids: str) -> dict[str, Any]:
    return {"event_id": eid, "ts": ts, "store_id": "s1", "member_id": member, "type": "sale", "total": total,
            "payment_method": "card", "items": [{"sku": "GRO-001", "category": "grocery", "qty": 1,
                                                 "unit_price": total}], **ids}


def order(eid: str, ts: int, user: str, amount: float, **ids: str) -> dict[str, Any]:
    return {"event_id": eid, "ts": ts, "order_id": f"o-{eid}", "user_id": user, "status": "paid", "amount": amount,
            "currency": "EUR", "channel": "web", "items": [{"sku": "ELE-001", "category": "electronics", "qty": 1,
                                                           "unit_price": amount}], **ids}


def identity(eid: str, ts: int, *ids: tuple[str, str], source: str = "crm") -> dict[str, Any]:
    return {"event_id": eid, "ts": ts, "source": source, "ids": [{"type": t, "value": v} for t, v in ids]}


def test_one_customer_across_web_app_stores_and_crm(worker: WorkerProc) -> None:
    t = now_ms() - 60_000
    clicks = [click("c1", t, anon="a-1"), click("c2", t + 1, anon="a-1"), click("c3", t + 2, anon="a-1"),
              click("c4", t + 3, user="u-1", anon="a-1", type_="login"),
              click("c5", t + 4, anon="a-1"), click("c6", t + 5, anon="a-1"),
              *[click(f"k{i}", t + 10 + i, user=f"u-k{i}", anon="kiosk-7", type_="login") for i in range(5)],
              click("j1", t + 20, user="null")]
    walk_in = {k: v for k, v in pos("w1", t + 8, "-", 15.0).items() if k != "member_id"}  # counted for nobody
    stores = [pos("p1", t + 6, "m-1", 300.0, email_sha256=H1), pos("p2", t + 7, "m-1", 50.0),
              pos("p3", t + 8, "m-2", 20.0), walk_in]
    orders = [order("o1", t + 9, "u-1", 250.0, email_sha256=H1.upper()), order("o2", t + 9, "u-2", 600.0)]
    links = [identity("crm-1", t, ("member", "m-2"), ("user", "u-2")),
             identity("crm-1-again", t, ("user", "u-2"), ("member", "m-2")),  # a repeat: one of the two is sent
             identity("crm-bad", t, ("member", "m-3"), ("email_sha256", "ann@example.com"))]
    for source, events in (("clickstream", clicks), ("pos", stores), ("orders", orders), ("identity", links)):
        worker.produce(source, events)
    sent = [(s, orjson.dumps(e)) for s, es in (("clickstream", clicks), ("pos", stores), ("orders", orders))
            for e in es]
    want, graph, stubs = await_same_features(worker, sent)

    # one customer for the anonymous visitor, the account, the card and the e-mail hash: the member id
    assert graph.resolve("anonymous:a-1") == "member:m-1"
    assert want["member:m-1"]["events"] == 9 and want["member:m-1"]["spend"] == 600.0
    assert len([link for link in links_read(worker) if set(link["ids"]) == {"user:u-2", "member:m-2"}]) == 1
    assert want["member:m-2"]["spend"] == 620.0
    assert {"anonymous:a-1", "user:u-1"} <= set(stubs) and stubs["anonymous:a-1"] in ("user:u-1", "member:m-1")
    # the kiosk device joined three accounts; the 4th and 5th logins were refused at the cap
    assert len([k for k in graph.members("anonymous:kiosk-7") if k.startswith("user:")]) == 3

    r = worker.redis()
    assert text(r.get(f"{worker.prefix}:alias:anonymous:a-1") or b"") == "member:m-1"
    assert text(r.get(f"{worker.prefix}:alias:user:u-2") or b"") == "member:m-2"
    shown = subprocess.run([sys.executable, "-m", "streams.cli", "tags", "anonymous:a-1"], env=worker.env(),
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "member:m-1" in shown.stderr and "big_spender" in shown.stdout

    dead = worker.consume("deadletter", until=lambda rs: len(rs) >= 4)
    reasons = sorted(text(dict(r.headers)["ts.reason"]) for r in dead)
    assert reasons == ["bad_contact_hash", "junk_id", "too_many_user", "too_many_user"], reasons

    changes = worker.tag_changes(until=lambda cs: any(c["customer_id"] == "member:m-1" and c["tag"] == "big_spender"
                                                      and c["op"] == "add" for c in cs))
    removed = [c for c in changes if c["cause"] == "merge" and c["op"] == "remove"]
    assert all(c["customer_id"] != "member:m-1" for c in removed)
    assert all(c.get("via") for c in changes if c["cause"] == "merge" and c["op"] == "add")


def test_forget_erases_the_whole_cluster_and_keeps_it_out(worker: WorkerProc) -> None:
    t = now_ms() - 60_000
    worker.produce("clickstream", [click("f1", t, anon="fa-1"), click("f2", t + 1, user="fu-1", anon="fa-1",
                                                                    type_="login")])
    worker.produce("orders", [order("f3", t + 2, "fu-1", 700.0)])
    worker.produce("pos", [pos("f4", t + 3, "fm-1", 5.0), pos("f5", t + 3, "fm-2", 5.0)])
    worker.produce("identity", [identity("f-crm", t, ("member", "fm-1"), ("user", "fu-1"))])
    r = worker.redis()
    deadline = time.monotonic() + 120
    while "big_spender" not in worker.tags_of("member:fm-1") or r.get(f"{worker.prefix}:alias:anonymous:fa-1") is None:
        worker.assert_alive()
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.5)

    forgot = subprocess.run([sys.executable, "-m", "streams.cli", "forget", "anonymous:fa-1", "--wait", "60"],
                            env=worker.env(), cwd=REPO, capture_output=True, text=True, timeout=90)
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    changes = worker.tag_changes(until=lambda cs: any(c["cause"] == "erasure" for c in cs))
    erased = {(c["customer_id"], c["tag"]) for c in changes if c["cause"] == "erasure"}
    assert ("member:fm-1", "big_spender") in erased and all(cid == "member:fm-1" for cid, _ in erased)
    deadline = time.monotonic() + 60
    while worker.tags_of("member:fm-1"):
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.5)
    assert not r.sismember(f"{worker.prefix}:tag:big_spender", "member:fm-1")
    assert all(r.get(f"{worker.prefix}:alias:{k}") is None for k in ("anonymous:fa-1", "user:fu-1"))
    states = read_to_end(worker.stack.bootstrap, f"{worker.prefix}-customers-changelog")
    for key in ("member:fm-1", "user:fu-1", "anonymous:fa-1"):
        moved = CustomerState.loads(states[key.encode()] or b"{}").moved or {}
        assert "erased_until" in moved, (key, states[key.encode()])
    assert worker.tags_of("member:fm-2"), "another person is untouched"

    # a replay of old events and a new login of the forgotten device bring nobody back
    worker.produce("orders", [order("f3", t + 2, "fu-1", 700.0), order("f6", t + 4, "fu-1", 900.0)])
    worker.produce("clickstream", [click("f7", t + 5, user="fu-9", anon="fa-1", type_="login")])
    dead = worker.consume("deadletter", until=lambda rs: any(text(dict(x.headers)["ts.reason"]) == "erased"
                                                            for x in rs))
    assert [x for x in dead if text(dict(x.headers)["ts.reason"]) == "erased"]
    time.sleep(3)
    assert not worker.tags_of("user:fu-1") and not worker.tags_of("member:fm-1")
    states = read_to_end(worker.stack.bootstrap, f"{worker.prefix}-customers-changelog")
    assert "erased_until" in (CustomerState.loads(states[b"user:fu-1"] or b"{}").moved or {})


def test_an_anonymous_visitor_quiet_for_the_ttl_is_forgotten(stack: Stack) -> None:
    w = identity_worker(stack, "idttl", TAGSTREAM_IDENTITY__ANONYMOUS_TTL_MS="4000").start().wait_ready()
    try:
        t = now_ms()
        w.produce("clickstream", [click("t1", t, anon="ta-1"), click("t2", t + 1, user="tu-1", anon="tb-1",
                                                                   type_="login")])
        w.produce("orders", [order("t3", t + 2, "tu-1", 600.0)])
        states: dict[bytes, bytes | None] = {}
        deadline = time.monotonic() + 60
        while b"anonymous:ta-1" not in states:
            w.assert_alive()
            assert time.monotonic() < deadline, w.tail()
            time.sleep(0.5)
            states = read_to_end(stack.bootstrap, f"{w.prefix}-customers-changelog")
        assert CustomerState.loads(states[b"anonymous:ta-1"] or b"{}").expires_ms is not None
        assert w.tags_of("anonymous:ta-1"), "tag_anonymous is on in these tests"
        deadline = time.monotonic() + 30
        while read_to_end(stack.bootstrap, f"{w.prefix}-customers-changelog").get(b"anonymous:ta-1") is not None:
            w.assert_alive()
            assert time.monotonic() < deadline, w.tail()
            time.sleep(0.5)
        assert not w.tags_of("anonymous:ta-1")
        kept = read_to_end(stack.bootstrap, f"{w.prefix}-customers-changelog")
        assert kept.get(b"user:tu-1") is not None, "a known customer has no time to live"
    finally:
        w.stop()
