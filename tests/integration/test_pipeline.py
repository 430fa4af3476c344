"""Events of all three sources on the real Kafka broker -> tags in the real Redis and on the
tag-change topic; tags leaving and arriving with the clock; bad input in the dead-letter topic."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from streams.io.redis_sink import audience_key

from .conftest import WorkerProc, now_ms


def cid() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def click(customer: str | None, typ: str, ts: int, **extra: Any) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": ts, "user_id": customer, "anonymous_id": "anon-1",
            "session_id": "s1", "type": typ, **extra}


def pos_sale(member: str | None, total: float, ts: int) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": ts, "store_id": "s01", "member_id": member, "type": "sale",
            "items": [{"sku": "sku-1", "category": "shoes", "qty": 1, "unit_price": total}], "total": total,
            "payment_method": "card"}


def order(user: str, status: str, amount: float, ts: int) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": ts, "order_id": f"o-{user}", "user_id": user, "status": status,
            "amount": amount, "currency": "EUR", "channel": "web",
            "items": [{"sku": "sku-2", "category": "electronics", "qty": 1, "unit_price": amount}]}


def of(changes: list[dict[str, Any]], customer: str) -> list[tuple[str, str, str]]:
    return [(c["tag"], c["op"], c["cause"]) for c in changes if c["customer_id"] == customer]


def test_events_of_all_sources_become_tags_in_redis_and_on_the_topic(worker: WorkerProc) -> None:
    a = cid()
    t = now_ms()
    worker.produce("pos", [pos_sale(a, 300.0, t)], key=a.encode())
    worker.produce("orders", [order(a, "created", 250.0, t + 1), order(a, "paid", 250.0, t + 2)])
    changes = worker.tag_changes(until=lambda cs: {"big_spender", "omnichannel"} <= {c["tag"] for c in cs
                                                                                      if c["customer_id"] == a})
    # `lapsed` (4 s after the last purchase, by the clock) may join on a slow machine: not this test's subject
    mine = [c for c in of(changes, a) if c[0] != "lapsed"]
    assert sorted(mine) == [("big_spender", "add", "event"), ("omnichannel", "add", "event")]
    big = next(c for c in changes if c["customer_id"] == a and c["tag"] == "big_spender")
    assert big["features"] == {"spend_lifetime": 550.0}
    # the two topics are not ordered against each other: the later of the two purchases adds it
    assert big["rule_version"] == "it-1" and big["event_ts_ms"] in (t, t + 2) and big["event_id"]
    assert set(worker.tags_of(a)) - {"lapsed"} == {"big_spender", "omnichannel"}
    assert worker.tags_of(a)["big_spender"]["rule_version"] == "it-1"
    r = worker.redis()
    assert r.sismember(audience_key(worker.prefix, "big_spender"), a)
    assert r.sismember(audience_key(worker.prefix, "omnichannel"), a)


def test_window_tag_leaves_on_time_with_no_further_event(worker: WorkerProc) -> None:
    a = cid()
    t = now_ms()
    worker.produce("clickstream", [click(a, "product_view", t + i, sku="x", category="shoes") for i in range(3)])
    changes = worker.tag_changes(until=lambda cs: ("browsing_now", "remove", "expiry") in of(cs, a), timeout_s=40)
    assert of(changes, a) == [("browsing_now", "add", "event"), ("browsing_now", "remove", "expiry")]
    removed = next(c for c in changes if c["customer_id"] == a and c["op"] == "remove")
    # window 5 s at 100 ms resolution: the tag goes when the first view's bucket leaves the window,
    # exactly at its end + 5 s, i.e. 5.0-5.1 s after the first view
    assert removed["at_ms"] == (t // 100 + 1) * 100 + 5000
    assert removed["features"] == {"views_5s": 2} or removed["features"]["views_5s"] < 3
    assert "browsing_now" not in worker.tags_of(a)


def test_absence_tag_arrives_with_no_event(worker: WorkerProc) -> None:
    a = cid()
    t = now_ms()
    worker.produce("pos", [pos_sale(a, 20.0, t)])
    changes = worker.tag_changes(until=lambda cs: ("lapsed", "add", "expiry") in of(cs, a), timeout_s=40)
    lapsed = next(c for c in changes if c["customer_id"] == a and c["tag"] == "lapsed")
    assert lapsed["at_ms"] == t + 4000  # exactly when since_last_purchase reaches 4 s
    assert "lapsed" in worker.tags_of(a)


def test_no_duplicate_adds(worker: WorkerProc) -> None:
    a = cid()
    t = now_ms()
    worker.produce("pos", [pos_sale(a, 600.0, t), pos_sale(a, 10.0, t + 1), pos_sale(a, 10.0, t + 2)])
    b = cid()  # a marker customer processed after a's events on the same topic
    worker.produce("pos", [pos_sale(b, 900.0, t + 3)])
    changes = worker.tag_changes(until=lambda cs: ("big_spender", "add", "event") in of(cs, b))
    assert of(changes, a).count(("big_spender", "add", "event")) == 1


def test_bad_events_go_to_the_dead_letter_topic_with_a_reason(worker: WorkerProc) -> None:
    t = now_ms()
    bad = {
        "clickstream": [b"{not json", b"\xff\xfe\x00garbage",
                        orjson.dumps({"event_id": "e1", "ts": "yesterday", "user_id": "u", "session_id": "s",
                                      "type": "page_view"})],
        "pos": [orjson.dumps({"event_id": "e2", "ts": t, "store_id": "s01", "member_id": "m", "type": "sale",
                              "items": [{"sku": "a", "category": "b", "qty": "two", "unit_price": 1}],
                              "total": 1, "payment_method": "card"})],
        "orders": [orjson.dumps({"event_id": "e3", "ts": t, "user_id": "u"}),  # missing fields
                   orjson.dumps(order("u-future", "paid", 1.0, t + 3_600_000))],  # an hour ahead
    }
    for source, values in bad.items():
        worker.produce(source, values)
    expected = sum(len(v) for v in bad.values())
    recs = worker.consume("deadletter", until=lambda rs: len(rs) >= expected)
    assert len(recs) == expected
    by_value = {r.value: dict(r.headers) for r in recs}
    for source, values in bad.items():
        for v in values:
            h = by_value[v]  # the original bytes, unchanged
            assert h["ts.source_topic"].decode() == worker.topic(source)
            assert h["ts.reason"] and h["ts.error"]
            int(h["ts.source_offset"])
    reasons = {v: by_value[v]["ts.reason"].decode() for vs in bad.values() for v in vs}
    assert reasons[b"{not json"] == "invalid_json"
    assert reasons[b"\xff\xfe\x00garbage"] == "invalid_json"
    assert reasons[bad["clickstream"][2]] == "bad_timestamp"
    assert reasons[bad["orders"][0]] == "missing_field"
    assert reasons[bad["orders"][1]] == "future_timestamp"
    assert b"qty" in by_value[bad["pos"][0]]["ts.error"]
    worker.assert_alive()
    # ... and the worker keeps tagging after them.
    a = cid()
    worker.produce("pos", [pos_sale(a, 700.0, now_ms())])
    worker.tag_changes(until=lambda cs: ("big_spender", "add", "event") in of(cs, a))


def test_anonymous_and_walk_in_events_stay_out_of_customer_state(worker: WorkerProc) -> None:
    t = now_ms()
    worker.produce("clickstream", [click(None, "product_view", t + i) for i in range(5)])
    worker.produce("pos", [pos_sale(None, 999.0, t)])
    marker = cid()
    worker.produce("pos", [pos_sale(marker, 999.0, t + 1)])
    changes = worker.tag_changes(until=lambda cs: ("big_spender", "add", "event") in of(cs, marker))
    assert all(c["customer_id"] for c in changes)
    dead = worker.consume("deadletter", until=lambda rs: True, timeout_s=5)
    assert not any(b'"anon-1"' in (r.value or b"") and b"product_view" in (r.value or b"") for r in dead)


def test_an_event_delivered_twice_counts_once(worker: WorkerProc) -> None:
    a = cid()
    t = now_ms()
    sale = pos_sale(a, 300.0, t)
    worker.produce("pos", [sale, sale])  # an at-least-once producer upstream sent it twice
    worker.produce("pos", [pos_sale(a, 250.0, t + 1)])
    changes = worker.tag_changes(until=lambda cs: ("big_spender", "add", "event") in of(cs, a))
    big = next(c for c in changes if c["customer_id"] == a and c["tag"] == "big_spender")
    assert big["features"] == {"spend_lifetime": 550.0}  # not 850


def test_oversized_compressed_and_null_records_are_dead_lettered_too(worker: WorkerProc) -> None:
    big = b'{"event_id": "big", "ts": "' + b"x" * 999_900 + b'"}'  # just under the broker's 1 MB limit
    huge = b"[" * 3 * 1024 * 1024  # 3 MiB, accepted by the broker only because it compresses well
    worker.produce("pos", [big, None], key=b"k-big")
    worker.produce("orders", [huge], key=b"k-huge", compression_type="gzip", max_request_size=8 * 1024 * 1024)
    recs = worker.consume("deadletter", until=lambda rs: {b"k-big", b"k-huge"} <= {r.key for r in rs}
                          and sum(r.key == b"k-big" for r in rs) >= 2)
    mine = [r for r in recs if r.key in (b"k-big", b"k-huge")]
    by_value = {(r.key, r.value[:20] if r.value else r.value): dict(r.headers) for r in mine}
    assert by_value[(b"k-big", big[:20])]["ts.reason"] == b"bad_timestamp"
    assert next(r for r in mine if r.key == b"k-big" and r.value == big)  # unchanged, whole
    assert by_value[(b"k-big", None)]["ts.reason"] == b"invalid_json"  # a null value stays null
    # the DLQ topic takes records up to 8 MiB: the 3 MiB one arrives whole too
    assert next(r for r in mine if r.key == b"k-huge").value == huge
    assert by_value[(b"k-huge", huge[:20])]["ts.reason"] == b"invalid_json"  # nesting too deep to parse
    worker.assert_alive()
    a = cid()  # ... and the worker goes on
    worker.produce("orders", [order(a, "paid", 900.0, now_ms())])
    worker.tag_changes(until=lambda cs: ("big_spender", "add", "event") in of(cs, a))


def test_lag_per_partition_is_exported_and_no_partition_is_stalled(worker: WorkerProc) -> None:
    """The partition watchdog runs: lag per input partition in metrics, stalls in readiness."""
    import time
    import urllib.request

    marker = cid()
    worker.produce("pos", [pos_sale(marker, 999.0, now_ms())])
    worker.tag_changes(until=lambda cs: ("big_spender", "add", "event") in of(cs, marker))
    port = int(worker.env()["TAGSTREAM_METRICS__PORT"])
    deadline = time.monotonic() + 30
    want = {worker.topic(s) for s in ("clickstream", "pos", "orders")} | {f"{worker.prefix}-customer-events"}
    while True:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        lagging = {s.labels["topic"]: s.value for f in text_string_to_metric_families(text)
                   if f.name == "tagstream_partition_lag" for s in f.samples}
        if want <= set(lagging):
            break
        assert time.monotonic() < deadline, lagging
        time.sleep(1)
    ready = orjson.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).read())
    assert ready["ok"] is True and ready["stalled_partitions"] == []
