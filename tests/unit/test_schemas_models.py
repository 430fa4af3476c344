"""The schemas package's other models and files: tag changes and values, dead-letter headers,
durations and rule files, the committed JSON Schema files, and import hygiene."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import (
    DLQ_HEADERS,
    DLQ_MAX_ERROR_CHARS,
    SOURCES,
    DeadLetter,
    FeatureSpec,
    RuleFile,
    TagChange,
    TagSpec,
    TagValue,
    parse_duration_ms,
)
from schemas.export import DEFAULT_DIR, export, json_schemas, render

# -- tags, dead letters, rules -----------------------------------------------------------------


def test_tag_change_and_tag_value_round_trip() -> None:
    change = {"customer_id": "u-1", "tag": "vip", "op": "add", "at_ms": 10, "event_ts_ms": 9,
              "cause": "event", "rule_version": "v1",
              "features": {"spend_30d": 1200.5, "purchases_30d": 3, "seg": "a", "x": None},
              "event_id": "o-1", "change_id": "abc"}
    parsed = TagChange.model_validate_json(json.dumps(change))
    assert parsed.model_dump(exclude={"via"}) == change and parsed.via is None
    assert TagChange.model_validate({**change, "via": "anonymous:a-1"}).via == "anonymous:a-1"
    assert type(parsed.features["purchases_30d"]) is int
    with pytest.raises(ValidationError):
        TagChange.model_validate({**change, "op": "toggle"})
    with pytest.raises(ValidationError):
        TagChange.model_validate({**change, "cause": "magic"})
    assert TagValue.model_validate_json(b'{"since_ms": 5, "rule_version": "v1"}').since_ms == 5


def test_dead_letter_headers_round_trip() -> None:
    dl = DeadLetter(source_topic="events.pos", source_partition=3, source_offset=42, source_timestamp_ms=1700,
                    reason="invalid_field", error="field 'total': Input should be a valid number")
    headers = dl.to_headers()
    assert [k for k, _ in headers] == ["ts.source_topic", "ts.source_partition", "ts.source_offset",
                                       "ts.source_timestamp_ms", "ts.reason", "ts.error"]
    assert all(isinstance(v, bytes) for _, v in headers)
    assert DeadLetter.from_headers([("traceparent", b"x"), *headers]) == dl
    no_ts = DeadLetter(**{**dl.model_dump(), "source_timestamp_ms": None})
    assert "ts.source_timestamp_ms" not in dict(no_ts.to_headers())
    assert DeadLetter.from_headers(no_ts.to_headers()) == no_ts
    with pytest.raises(ValueError):
        DeadLetter.from_headers(headers[1:])


class _Msg:
    topic, partition, offset, timestamp = "events.orders", 2, 1234, 1769857201.5


def _worker_dlq_headers(msg: Any, reason: str, error: str) -> list[tuple[str, bytes]]:
    """The header layout the worker wrote by hand before it used DeadLetter (streams/app.py, before the split)."""
    return [
        ("ts.source_topic", msg.topic.encode()),
        ("ts.source_partition", str(msg.partition).encode()),
        ("ts.source_offset", str(msg.offset).encode()),
        ("ts.source_timestamp_ms", str(int(msg.timestamp * 1000)).encode()),
        ("ts.reason", reason.encode()),
        ("ts.error", error[:1000].encode("utf-8", "replace")),
    ]


@pytest.mark.parametrize("error", ["field 'ts': bad", "é" * 1500, "x" * 999 + "\ud800tail"])
def test_dead_letter_builds_the_worker_headers_exactly(error: str) -> None:
    msg = _Msg()
    base = _worker_dlq_headers(msg, "bad_timestamp", error)
    key, value = b"k" * 20_000, b"v" * 100
    sha = hashlib.sha256(value).hexdigest()
    # The worker appends the cut-key header first, the cut-value headers when a copy is cut.
    want = [*base, ("ts.key_truncated_from_bytes", b"20000"), ("ts.truncated_from_bytes", b"100"),
            ("ts.value_sha256", sha.encode())]
    dl = DeadLetter(source_topic=msg.topic, source_partition=msg.partition, source_offset=msg.offset,
                    source_timestamp_ms=int(msg.timestamp * 1000), reason="bad_timestamp", error=error,
                    key_truncated_from_bytes=len(key), truncated_from_bytes=len(value), value_sha256=sha)
    assert dl.to_headers() == want
    assert [k for k, _ in want] == list(DLQ_HEADERS)
    plain = DeadLetter(source_topic=msg.topic, source_partition=msg.partition, source_offset=msg.offset,
                       source_timestamp_ms=int(msg.timestamp * 1000), reason="bad_timestamp", error=error)
    assert plain.to_headers() == base
    assert len(plain.error) == min(len(error), DLQ_MAX_ERROR_CHARS)
    assert DeadLetter.from_headers(dl.to_headers()).to_headers() == want
    with pytest.raises(ValidationError):
        DeadLetter(**{**plain.model_dump(), "value_sha256": "not-hex"})
    with pytest.raises(ValidationError):
        DeadLetter(**{**plain.model_dump(), "truncated_from_bytes": -1})


@pytest.mark.parametrize(
    ("text", "ms"),
    [("250ms", 250), ("90s", 90_000), ("10m", 600_000), ("1h", 3_600_000), ("24h", 86_400_000),
     ("7d", 604_800_000), ("30d", 2_592_000_000), ("2w", 1_209_600_000), ("0s", 0)],
)
def test_parse_duration_ms(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "10", "h", "1.5h", "-1h", "1 h", "1H", "1y", "lifetime", "1h30m"])
def test_parse_duration_ms_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration_ms(text)


def test_rule_file_shape() -> None:
    rf = RuleFile.model_validate({
        "version": "v1",
        "features": [
            {"name": "spend_30d", "agg": "sum", "field": "amount", "window": "30d", "sources": "orders"},
            {"name": "purchases", "agg": "count"},
        ],
        "tags": [{"name": "big_spender", "when": "spend_30d > 1000"}],
    })
    assert rf.features[0].sources == ["orders"]
    assert rf.features[1].sources == list(SOURCES)
    assert rf.features[1].window is None
    assert rf.tags == [TagSpec(name="big_spender", when="spend_30d > 1000")]


@pytest.mark.parametrize(
    "feature",
    [
        {"name": "x", "agg": "count", "windw": "7d"},
        {"name": "X", "agg": "count"},
        {"name": "1x", "agg": "count"},
        {"name": "x" * 65, "agg": "count"},
        {"name": "x", "agg": "median"},
        {"name": "x", "agg": "count", "sources": ["web"]},
        {"name": "x", "agg": "count", "sources": []},
    ],
)
def test_feature_spec_rejects(feature: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FeatureSpec.model_validate(feature)


def test_rule_file_rejects_unknown_top_level_key() -> None:
    with pytest.raises(ValidationError, match="tag"):
        RuleFile.model_validate({"tag": []})


# -- JSON Schema files, import hygiene ---------------------------------------------------------


def test_committed_json_schemas_are_current() -> None:
    schemas = json_schemas()
    assert set(schemas) == {"clickstream", "pos", "orders", "identity", "tag_change", "tag_value", "rule_file",
                            "rules_deployment"}
    committed = {p.name for p in DEFAULT_DIR.glob("*.schema.json")}
    assert committed == {f"{name}.schema.json" for name in schemas}, "run: python -m schemas.export"
    for name, schema in schemas.items():
        text = (DEFAULT_DIR / f"{name}.schema.json").read_text(encoding="utf-8")
        assert text == render(schema), f"{name}.schema.json is stale: run python -m schemas.export"


def test_export_writes_files(tmp_path: Path) -> None:
    paths = export(tmp_path / "out")
    assert len(paths) == 8
    for path in paths:
        assert path.read_text(encoding="utf-8").endswith("}\n")
        assert json.loads(path.read_text(encoding="utf-8")) == json_schemas()[path.name.split(".")[0]]


def test_importing_schemas_loads_no_io_frameworks() -> None:
    code = (
        "import sys, schemas, schemas.decode, schemas.canonical, schemas.tags, schemas.rules\n"
        "import schemas.export\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('faust', 'redis', 'aiokafka', 'mode',"
        " 'streams', 'tag_rules'))\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_the_engine_change_dict_has_exactly_the_tag_change_fields() -> None:
    from schemas.tags import TagChange, TagChangeDict

    assert list(TagChangeDict.__annotations__) == list(TagChange.model_fields)
