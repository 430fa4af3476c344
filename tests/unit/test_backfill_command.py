"""``tagstream backfill``'s pure parts: which features it accepts, where it starts, what it refuses
before retention, which source records it sends and how, its progress line (no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.app.envelope import decode_envelope
from streams.engine.backfill import state_keys
from streams.tools.backfill import Replay, progress_line
from streams.tools.backfill_checks import (
    BackfillRefused,
    Range,
    check_retention,
    check_workers,
    parse_from,
    parse_offsets,
    resolve_targets,
)
from tag_rules import load_rules

from .test_backfill import V1, V2

D = 86_400_000
NOW = 1_800_000_000_000
WINDOW = 7 * D


@pytest.fixture()
def rules(tmp_path: Path) -> tuple[Any, Any]:
    (tmp_path / "v1.yaml").write_text(V1)
    (tmp_path / "v2.yaml").write_text(V2)
    return load_rules(tmp_path / "v1.yaml"), load_rules(tmp_path / "v2.yaml")


def births_of(v1: Any, v2: Any, at_ms: int) -> dict[str, int]:
    return dict.fromkeys(state_keys(v2) - state_keys(v1), at_ms)


def test_only_features_a_deployment_added_lately_can_be_backfilled(rules: tuple[Any, Any]) -> None:
    v1, v2 = rules
    births = births_of(v1, v2, NOW - D)
    target = resolve_targets(v2, births, ["views_7d", "spend_7d"], now_ms=NOW, window_ms=WINDOW)
    assert target.names == ("views_7d", "spend_7d") and set(target.keys) == set(births)
    assert target.version == "v2"
    with pytest.raises(BackfillRefused) as refused:
        resolve_targets(v2, births, ["views_7d", "nope", "events"], now_ms=NOW, window_ms=WINDOW)
    text = str(refused.value)
    assert "nope: no such feature in the deployed rule set v2" in text
    assert "events: not added by a deployment" in text
    assert "features that can be backfilled now: spend_7d, views_7d" in text
    with pytest.raises(BackfillRefused, match=r"views_7d: added at .*more than 7d .*count events twice"):
        resolve_targets(v2, births, ["views_7d"], now_ms=NOW - D + WINDOW, window_ms=WINDOW)


def test_a_feature_no_tag_reads_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(V2.replace("  - {name: viewer, when: views_7d >= 3}\n", ""))
    rules = load_rules(tmp_path / "r.yaml")
    with pytest.raises(BackfillRefused, match="views_7d: no tag of v2 reads it"):
        resolve_targets(rules, {}, ["views_7d"], now_ms=NOW, window_ms=WINDOW)


def test_workers_on_other_rules_are_refused() -> None:
    fresh, stale = NOW - 5_000, NOW - 120_000
    check_workers({"a": {"version": "v2", "seen_ms": fresh}, "gone": {"version": "v1", "seen_ms": stale}}, "v2", NOW)
    with pytest.raises(BackfillRefused, match="b runs v1"):
        check_workers({"a": {"version": "v2", "seen_ms": fresh}, "b": {"version": "v1", "seen_ms": fresh}}, "v2", NOW)


def test_where_to_start() -> None:
    assert parse_from("earliest", NOW) is None
    assert parse_from("3d", NOW) == NOW - 3 * D
    assert parse_from("2027-01-15T08:00:00Z", NOW) == NOW  # 1_800_000_000_000 is that instant
    assert parse_from("2027-01-15T08:00:00+01:00", NOW) == parse_from("2027-01-15T07:00:00Z", NOW)
    for bad in ("yesterday", "2027-01-15T08:00:00"):
        with pytest.raises(BackfillRefused):
            parse_from(bad, NOW)
    assert parse_offsets(["pos:0=1200", "clickstream:3=0"]) == {("pos", 0): 1200, ("clickstream", 3): 0}
    with pytest.raises(BackfillRefused, match="SOURCE:PARTITION=OFFSET"):
        parse_offsets(["pos=12"])


def test_a_start_before_retention_is_refused_saying_what_is_lost() -> None:
    kept = Range("pos", "events.pos", 0, 0, 100, beginning=0, oldest_ts_ms=NOW - 9 * D)
    trimmed = Range("pos", "events.pos", 1, 40, 100, beginning=40, oldest_ts_ms=NOW - 2 * D)
    check_retention([kept, trimmed], None, {})  # earliest: what is retained
    check_retention([kept, trimmed], NOW - D, {})  # after the oldest retained record
    with pytest.raises(BackfillRefused) as refused:
        check_retention([kept, trimmed], NOW - 3 * D, {})
    text = str(refused.value)
    assert "events.pos[1]: the oldest retained record (offset 40)" in text and "offsets 0 … 39" in text
    assert "events.pos[0]" not in text and "--from earliest" in text
    with pytest.raises(BackfillRefused, match=r"events.pos\[1\]: offsets 12 … 39 were deleted"):
        check_retention([kept, trimmed], None, {("pos", 1): 12})


def record(source: str, **fields: Any) -> bytes:
    base: dict[str, Any] = {"event_id": "e1", "ts": NOW - D}
    if source == "clickstream":
        base.update(type="product_view", session_id="s", user_id="c1", sku="k", category="shoes")
    else:
        base.update(order_id="o", user_id="c1", status="paid", amount=60.0, currency="EUR", channel="web",
                    items=[{"sku": "k", "category": "shoes", "qty": 1, "unit_price": 60.0}])
    base.update(fields)
    return orjson.dumps(base)


def test_only_events_of_the_named_features_are_sent_marked_with_their_keys(rules: tuple[Any, Any]) -> None:
    v1, v2 = rules
    target = resolve_targets(v2, births_of(v1, v2, NOW - D), ["views_7d"], now_ms=NOW, window_ms=WINDOW)
    replay = Replay.of(v2, target, future_tolerance_ms=300_000)
    found = replay.item("clickstream", record("clickstream"), 3, 17, NOW - D, start=5)
    assert found is not None
    key, item = found
    assert key == b"c1"
    event = orjson.loads(item)
    assert (event["sp"], event["so"], event["bf"]) == ("clickstream:3", 17, {"keys": list(target.keys), "from": 5})
    assert event["ts_ms"] == NOW - D and event["customer_id"] == "c1"
    assert decode_envelope(b"[" + item + b"]")[0]["bf"]["from"] == 5  # what the customer stage reads
    assert replay.item("orders", record("orders"), 0, 1, NOW - D, start=0) is None  # spend_7d was not named
    assert replay.item("clickstream", record("clickstream", type="search"), 0, 2, NOW, start=0) is None
    assert replay.item("clickstream", record("clickstream", user_id=None, anonymous_id="a"), 0, 3, NOW, 0) is None
    assert replay.item("clickstream", b"{not json", 0, 4, NOW, start=0) is None
    assert replay.item("clickstream", record("clickstream", ts=NOW + D), 0, 5, NOW, start=0) is None  # future
    assert replay.sent == 1
    assert dict(replay.skipped) == {"other features": 2, "anonymous": 1, "invalid": 1, "future": 1}


def test_progress_shows_each_partition_the_rate_and_the_time_left() -> None:
    a = Range("pos", "events.pos", 0, 0, 1000, 0, None, read=250)
    b = Range("orders", "events.orders", 1, 100, 1100, 0, None, read=750)
    empty = Range("orders", "events.orders", 0, 5, 5, 0, None)
    line = progress_line([a, b, empty], elapsed_s=2.0)
    assert line == ("backfill: 1,000 / 2,000 records (50.0 %), 500/s, ETA 2 s | pos[0] 250/1,000 "
                    "orders[1] 750/1,000")
    assert "ETA ?" in progress_line([Range("pos", "events.pos", 0, 0, 10, 0, None)], elapsed_s=1.0)
