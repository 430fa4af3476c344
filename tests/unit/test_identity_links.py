"""Ingest's typed keys (``streams.app.identity_links.usable_ids``): remembered per (type, value)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from schemas.decode import decode_event
from streams.app import identity_links
from streams.app.identity_links import usable_ids

HASH = "AB" * 32


TS_MS = 1769857200250


def click(**ids: Any) -> Any:
    doc = {"event_id": "c-1", "ts": TS_MS, "session_id": "s", "type": "page_view", **ids}
    return decode_event("clickstream", orjson.dumps(doc))


def order(**ids: Any) -> Any:
    doc = {"event_id": "o-1", "ts": TS_MS, "order_id": "o-1", "status": "paid", "amount": 1.0, "currency": "EUR",
           "channel": "web", "items": [], **ids}
    return decode_event("orders", orjson.dumps(doc))


@pytest.mark.parametrize("twice", [False, True])
def test_typed_keys_in_priority_order_with_junk_apart(twice: bool) -> None:
    identity_links._KEYS.clear()
    ev = order(user_id="u-1", email_sha256=HASH)
    junk_click = click(user_id="unknown", anonymous_id="a-1")
    for _ in range(2 if twice else 1):  # the second time from the memory: the same answer
        assert usable_ids(ev) == (["user:u-1", f"email_sha256:{HASH.lower()}"], [])
        assert usable_ids(junk_click) == (["anonymous:a-1"], ["user:unknown"])


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    identity_links._KEYS.clear()
    monkeypatch.setattr(identity_links, "_KEYS_MAX", 3)
    for i in range(10):
        assert usable_ids(click(user_id=f"u-{i}")) == ([f"user:u-{i}"], [])
        assert len(identity_links._KEYS) <= 3
