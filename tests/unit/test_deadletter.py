"""Dead-letter copies: headers from the one model (schemas.tags.DeadLetter), cut to fit the topic."""

from __future__ import annotations

import hashlib

from schemas.tags import DeadLetter
from streams.io.deadletter import DLQ_MAX_KEY_BYTES, SAFE_RECORD_BYTES, ItemRecord, dlq_headers


def record(key: bytes | None, value: bytes | None) -> ItemRecord:
    return ItemRecord("events.pos", 3, 42, 1_800_000_000.25, key, value)


def test_a_small_record_goes_unchanged_with_its_origin_and_reason() -> None:
    key, value, headers = dlq_headers(record(b"k", b'{"x":1}'), "invalid_json", "bad " * 400)
    assert (key, value) == (b"k", b'{"x":1}')
    dead = DeadLetter.from_headers(headers)
    assert (dead.source_topic, dead.source_partition, dead.source_offset) == ("events.pos", 3, 42)
    assert dead.source_timestamp_ms == 1_800_000_000_250 and dead.reason == "invalid_json"
    assert len(dead.error) <= 1000 and dead.truncated_from_bytes is None


def test_a_null_value_stays_null() -> None:
    assert dlq_headers(record(None, None), "invalid_json", "empty")[:2] == (None, None)


def test_a_record_too_big_for_the_topic_is_cut_and_says_so() -> None:
    big = b"v" * (2 * SAFE_RECORD_BYTES)
    key, value, headers = dlq_headers(record(b"k" * (DLQ_MAX_KEY_BYTES + 5), big), "too_large", "x",
                                      limit=SAFE_RECORD_BYTES)
    assert key is not None and len(key) == DLQ_MAX_KEY_BYTES
    assert value is not None and big.startswith(value)
    assert len(key) + len(value) + sum(len(k) + len(v) for k, v in headers) < SAFE_RECORD_BYTES
    dead = DeadLetter.from_headers(headers)
    assert dead.truncated_from_bytes == len(big)
    assert dead.value_sha256 == hashlib.sha256(big).hexdigest()
    assert dead.key_truncated_from_bytes == DLQ_MAX_KEY_BYTES + 5
