"""Identity-heavy traffic for the identity fault tests: few people, many ids each, many merges.

Each person has an anonymous device id (sometimes two), an online account, a loyalty card and an
e-mail hash. Events come in a random order: anonymous clicks, logins and logged-in clicks (device +
account), POS tickets (card, sometimes with the e-mail hash), orders (account, sometimes with the
hash), CRM records (card + account) and logins on a shared kiosk device (refused past the cap).
Amounts vary, so one lost or doubled event changes a sum."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import orjson


def identity_traffic(people: int, events: int, *, seed: int, start_ms: int) -> list[tuple[str, bytes]]:
    """``events`` (source, value) pairs, in production order."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes]] = []
    for i in range(events):
        p = rng.randrange(people)
        ts = start_ms + i * 10
        eid = f"ev-{seed}-{i}"
        email = hashlib.sha256(f"person-{p}@example.com".encode()).hexdigest()
        device = f"d-{p}-{rng.randrange(2)}"
        price = round(rng.uniform(1, 200), 2)
        roll = rng.random()
        if roll < 0.30:
            out.append(("clickstream", _click(eid, ts, price, anon=device)))
        elif roll < 0.45:
            out.append(("clickstream", _click(eid, ts, price, anon=device, user=f"u-{p}",
                                              type_="login" if rng.random() < 0.5 else "product_view")))
        elif roll < 0.50:
            out.append(("clickstream", _click(eid, ts, price, anon="kiosk-1", user=f"u-{p}", type_="login")))
        elif roll < 0.70:
            extra = {"email_sha256": email} if rng.random() < 0.3 else {}
            out.append(("pos", orjson.dumps({
                "event_id": eid, "ts": ts, "store_id": "s1", "member_id": f"m-{p}", "type": "sale", "total": price,
                "payment_method": "card", "items": [{"sku": "G-1", "category": "grocery", "qty": 1,
                                                     "unit_price": price}], **extra})))
        elif roll < 0.92:
            extra = {"email_sha256": email.upper()} if rng.random() < 0.3 else {}
            out.append(("orders", orjson.dumps({
                "event_id": eid, "ts": ts, "order_id": f"o-{i}", "user_id": f"u-{p}", "status": "paid",
                "amount": price, "currency": "EUR", "channel": "web",
                "items": [{"sku": "E-1", "category": "electronics", "qty": 1, "unit_price": price}], **extra})))
        else:
            out.append(("identity", orjson.dumps({
                "event_id": eid, "ts": ts, "source": "crm",
                "ids": [{"type": "member", "value": f"m-{p}"}, {"type": "user", "value": f"u-{p}"}]})))
    return out


def _click(eid: str, ts: int, price: float, *, anon: str, user: str | None = None,
           type_: str = "product_view") -> bytes:
    e: dict[str, Any] = {"event_id": eid, "ts": ts, "type": type_, "session_id": f"s-{anon}", "anonymous_id": anon,
                         "sku": "A-1", "category": "apparel", "price": price}
    if user is not None:
        e["user_id"] = user
    return orjson.dumps(e)


def events_only(traffic: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The source events (identity records are links, not events)."""
    return [(s, v) for s, v in traffic if s != "identity"]
