"""What operators see of a real worker: /metrics before and after the first event (build info,
pre-created series, no ``_created``, batch evaluation time, audience size = SCARD), JSON log lines,
and the ``tags`` command's JSON output against the real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.io.redis_sink import audience_key
from streams.version import package_version

from .conftest import REPO, Stack, WorkerProc, now_ms, text

TAGS = ("browsing_now", "big_spender", "omnichannel", "lapsed")  # tests/integration/rules
SOURCES = ("clickstream", "pos", "orders")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def worker(stack: Stack) -> Iterator[WorkerProc]:
    w = WorkerProc(stack, "observability", extra_env={"TAGSTREAM_LOG_FORMAT": "json",
                                                      "TAGSTREAM_METRICS__AUDIENCE_INTERVAL_MS": "1000"}).start()
    try:
        yield w
    finally:
        w.stop()


def get(worker: WorkerProc, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def scrape(worker: WorkerProc) -> tuple[str, Samples]:
    body = get(worker, "/metrics")[1].decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(body) for s in f.samples}
    return body, samples


def wait_for(worker: WorkerProc, what: str, check: Callable[[], Any], timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        worker.assert_alive()
        try:
            result = check()
        except (OSError, urllib.error.URLError):
            result = None  # the HTTP server is not up yet
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}; worker log:\n{worker.tail()}"
        time.sleep(0.5)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_before_the_first_event_every_known_series_exists_at_zero(worker: WorkerProc) -> None:
    wait_for(worker, "readiness", lambda: get(worker, "/readyz")[0] == 200)
    want_lag = {(worker.topic(s), str(p)) for s in SOURCES for p in (0, 1)} | {
        (f"{worker.prefix}-customer-events", str(p)) for p in (0, 1)}

    def lag_of_every_partition() -> tuple[str, Samples] | None:
        body, samples = scrape(worker)
        lag = {(dict(labels)["topic"], dict(labels)["partition"]) for name, labels in samples
               if name == "tagstream_partition_lag"}
        return (body, samples) if lag == want_lag else None

    body, samples = wait_for(worker, "lag of all 8 input partitions", lag_of_every_partition)
    info = [dict(labels) for name, labels in samples if name == "tagstream_build_info"]
    assert info == [{"version": package_version("tagstream"), "rules_version": "it-1",
                     "faust": package_version("faust-streaming"),
                     "python": ".".join(map(str, sys.version_info[:3])), "engine": "native"}]
    for source in SOURCES:
        for name in ("tagstream_events_in_total", "tagstream_events_processed_total",
                     "tagstream_events_anonymous_total"):
            assert value(samples, name, source=source) == 0, (name, source)
        assert value(samples, "tagstream_events_invalid_total", source=source, reason="invalid_json") == 0
        assert value(samples, "tagstream_deadletter_total", source=source, reason="missing_field") == 0
    for tag in TAGS:
        for op in ("add", "remove"):
            for cause in ("event", "expiry", "rule_change"):
                assert value(samples, "tagstream_tag_changes_total", tag=tag, op=op, cause=cause) == 0
        assert value(samples, "tagstream_audience_size", tag=tag) == 0  # read from Redis at start
    assert value(samples, "tagstream_producer_buffer_full_total") == 0
    assert value(samples, "tagstream_batch_evaluation_seconds_count") == 0
    assert "_created" not in body


def cid() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def pos_sale(member: str, total: float) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "ts": now_ms(), "store_id": "s01", "member_id": member, "type": "sale",
            "items": [{"sku": "sku-1", "category": "shoes", "qty": 1, "unit_price": total}], "total": total,
            "payment_method": "card"}


BUYERS = (cid(), cid())


def test_after_events_batch_time_and_audience_size_equal_to_scard(worker: WorkerProc) -> None:
    worker.produce("pos", [pos_sale(b, 600.0) for b in BUYERS])
    worker.tag_changes(until=lambda cs: {c["customer_id"] for c in cs if c["tag"] == "big_spender"} >= set(BUYERS))
    r = worker.redis()
    key = audience_key(worker.prefix, "big_spender")

    def audience_read() -> Samples | None:
        _, samples = scrape(worker)
        return samples if value(samples, "tagstream_audience_size", tag="big_spender") == 2 else None

    samples = wait_for(worker, "tagstream_audience_size{tag=big_spender} == 2", audience_read)
    assert r.scard(key) == 2
    assert value(samples, "tagstream_audience_size", tag="omnichannel") == r.scard(
        audience_key(worker.prefix, "omnichannel")) == 0
    assert value(samples, "tagstream_tag_changes_total", tag="big_spender", op="add", cause="event") == 2
    assert value(samples, "tagstream_events_in_total", source="pos") == 2
    count = value(samples, "tagstream_batch_evaluation_seconds_count")
    assert count is not None and count >= 1
    assert (value(samples, "tagstream_batch_evaluation_seconds_sum") or 0) > 0
    inf = value(samples, "tagstream_batch_evaluation_seconds_bucket", le="+Inf")
    assert inf == count


def tagstream(worker: WorkerProc, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", "tags", *args], env=worker.env(), cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_tags_json_output_is_what_redis_holds(worker: WorkerProc) -> None:
    a = BUYERS[0]
    out = tagstream(worker, a, "nobody", "--json")
    assert out.returncode == 0, out.stderr
    # `lapsed` joins 4 s after the purchase by the clock (a slow machine gets there first, maybe
    # between the two reads here): it is left out of the comparison
    got, want = json.loads(out.stdout), {a: worker.tags_of(a), "nobody": {}}
    for tags in (got[a], want[a]):
        tags.pop("lapsed", None)
    assert got == want
    assert set(got[a]) == {"big_spender"}
    out = tagstream(worker, "--audience", "big_spender", "--json")
    assert out.returncode == 0, out.stderr
    members = sorted(text(m) for m in worker.redis().smembers(audience_key(worker.prefix, "big_spender")))
    assert json.loads(out.stdout) == {"tag": "big_spender", "count": 2, "customers": members}
    assert members == sorted(BUYERS)
    out = tagstream(worker, "--audience", "big_spend")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == ("tagstream tags: error: unknown tag 'big_spend'; did you mean 'big_spender'? the rule set "
                          "(version it-1) has 4 tags: big_spender, browsing_now, lapsed, omnichannel\n")


def test_json_logs_parse_line_by_line_with_no_escape_codes(worker: WorkerProc) -> None:
    worker.stop()  # SIGTERM: the shutdown lines are in the log too
    assert worker.log is not None
    raw = worker.log.read_bytes()
    assert b"\x1b" not in raw
    lines = [orjson.loads(line) for line in raw.decode().splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= set(line), line
        assert line["ts"].endswith("Z")
    messages = [line["message"] for line in lines]
    assert any(m.startswith("tagstream worker: rules it-1 (") for m in messages)
    assert any(line["logger"].startswith("faust") for line in lines)  # faust's own records go through ours
