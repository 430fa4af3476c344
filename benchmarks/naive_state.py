"""The naive per-customer state of benchmark columns (b) and (d): what a developer writes without
tagstream, shared so that the plain Faust app (``baseline_app``) and the Quix Streams app
(``quix_app``) compute the same features the same way.

Windowed features keep a list of ``[ts_ms, value]`` per feature, pruned when read; lifetime
features keep a running aggregate; every tag is evaluated at every event with the compiled rules
(``tag_rules.load_rules``: the same ``where`` and ``when`` expressions as tagstream). No Faust and
no Quix import here: each app's environment has its own framework.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import datetime
from typing import Any


class _Fields:
    """Attribute access to a record's JSON object (missing fields are None)."""

    __slots__ = ("_d",)

    def __init__(self, d: Mapping[str, Any]) -> None:
        self._d = d

    def __getattr__(self, name: str) -> Any:
        return self._d.get(name)


def parse_ts(ts: Any) -> int:
    if isinstance(ts, int):
        return ts
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00")).timestamp() * 1000)


def unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v and v not in out:
            out.append(v)
    return out


def to_event(source: str, r: Mapping[str, Any], kafka_ts_ms: int) -> dict[str, Any]:
    """The flat event the rule expressions read (the same fields tagstream's canonical event has),
    from a source record's JSON object."""
    f = _Fields(r)
    items = f.items or []
    ev = {
        "event_id": f.event_id, "source": source, "type": f.type, "customer_id": None,
        "ts_ms": parse_ts(f.ts), "src_ts_ms": kafka_ts_ms, "amount": None, "currency": None,
        "skus": [], "categories": [], "channel": None, "store_id": None, "session_id": None,
        "order_id": None, "payment_method": None, "quantity": None, "query": None, "url": None,
    }
    if source == "clickstream":
        ev.update(customer_id=f.user_id, amount=float(f.price) if f.price is not None else None,
                  skus=unique([f.sku]), categories=unique([f.category]), channel=f.channel,
                  session_id=f.session_id, query=f.query, url=f.url)
    elif source == "pos":
        ev.update(customer_id=f.member_id, amount=abs(float(f.total)), skus=unique([i["sku"] for i in items]),
                  categories=unique([i["category"] for i in items]), channel="store", store_id=f.store_id,
                  payment_method=f.payment_method, quantity=sum(i["qty"] for i in items))
    else:
        ev.update(customer_id=f.user_id, type=f.status, amount=float(f.amount), currency=f.currency,
                  skus=unique([i["sku"] for i in items]), categories=unique([i["category"] for i in items]),
                  channel=f.channel, order_id=f.order_id, quantity=sum(i["qty"] for i in items))
    return ev


def feature_inputs(f: Any, ev: dict[str, Any]) -> list[Any]:
    """What one event contributes to feature ``f`` (same rules as tagstream: lists count as their
    first element, except for distinct_count which counts every element)."""
    if f.field is None:
        return [None]
    v = ev.get(f.field)
    if v is None:
        return []
    if isinstance(v, list):
        return v if f.agg == "distinct_count" else v[:1]
    return [v]


def fold(state: dict[str, Any], f: Any, ev: dict[str, Any], now_ms: int) -> None:
    ts = ev["ts_ms"]
    for v in feature_inputs(f, ev):
        if f.window_ms is not None:
            if ts > now_ms - f.window_ms:
                state["w"].setdefault(f.name, []).append([ts, v])
            continue
        life = state["l"]
        cur = life.get(f.name)
        if f.agg == "count":
            life[f.name] = (cur or 0) + 1
        elif f.agg == "sum":
            life[f.name] = (cur or 0) + v
        elif f.agg == "min":
            life[f.name] = v if cur is None else min(cur, v)
        elif f.agg == "max":
            life[f.name] = v if cur is None else max(cur, v)
        elif f.agg == "avg":
            life[f.name] = [v, 1] if cur is None else [cur[0] + v, cur[1] + 1]
        elif f.agg == "since_last":
            life[f.name] = ts if cur is None else max(cur, ts)
        elif f.agg == "distinct_count":
            cur = cur or []
            if v not in cur:
                cur.append(v)
            life[f.name] = cur
        elif f.agg == "first":
            life[f.name] = [ts, v] if cur is None or ts < cur[0] else cur
        elif f.agg == "last":
            life[f.name] = [ts, v] if cur is None or ts >= cur[0] else cur


def feature_value(state: dict[str, Any], f: Any, now_ms: int) -> Any:
    if f.window_ms is None:
        cur = state["l"].get(f.name)
        if f.agg == "since_last":
            return None if cur is None else round((now_ms - cur) / 1000, 3)
        if cur is None:
            return 0 if f.agg in ("count", "sum", "distinct_count") else None
        if f.agg == "sum":
            return round(cur, 6) if isinstance(cur, float) else cur
        if f.agg == "avg":
            return round(cur[0] / cur[1], 6)
        if f.agg == "distinct_count":
            return len(cur)
        if f.agg in ("first", "last"):
            return cur[1]
        return cur
    # Windowed: prune the raw list, then aggregate what is left.
    entries = [e for e in state["w"].get(f.name, []) if e[0] > now_ms - f.window_ms]
    if entries:
        state["w"][f.name] = entries
    else:
        state["w"].pop(f.name, None)
    values = [e[1] for e in entries]
    if f.agg == "count":
        return len(values)
    if f.agg == "sum":
        s = sum(values)
        return round(s, 6) if isinstance(s, float) else s
    if not values:
        return 0 if f.agg == "distinct_count" else None
    if f.agg == "min":
        return min(values)
    if f.agg == "max":
        return max(values)
    if f.agg == "avg":
        return round(sum(values) / len(values), 6)
    if f.agg == "distinct_count":
        return len(set(values))
    if f.agg == "first":
        return min(entries, key=lambda e: e[0])[1]
    if f.agg == "last":
        return max(entries, key=lambda e: e[0])[1]
    raise ValueError(f.agg)


def truthy(v: object) -> bool:
    try:
        return bool(v)
    except Exception:
        return False


def process(state: dict[str, Any] | None, ev: dict[str, Any], features: list[Any], tags: list[Any],
            now_ms: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Folds ``ev`` into the customer's ``state``, evaluates every tag; returns the new state and
    the tag changes."""
    if not state:
        state = {"w": {}, "l": {}, "t": {}}
    source = ev["source"]
    for f in features:
        if source in f.sources and (f.where is None or f.where(ev)):
            fold(state, f, ev, now_ms)
    values = {f.name: feature_value(state, f, now_ms) for f in features}
    changes = []
    cid = ev["customer_id"]
    for tag in tags:
        holds = truthy(tag.when(values))
        if holds != (tag.name in state["t"]):
            if holds:
                state["t"][tag.name] = now_ms
            else:
                del state["t"][tag.name]
            changes.append({"customer_id": cid, "tag": tag.name, "op": "add" if holds else "remove",
                            "at_ms": now_ms, "event_id": ev["event_id"], "src_ts_ms": ev["src_ts_ms"],
                            "features": {n: values[n] for n in tag.features}})
    return state, changes


def add_app_arguments(p: argparse.ArgumentParser) -> None:
    """The command line the naive apps share (``baseline_app``, ``quix_app``)."""
    p.add_argument("--app-id", required=True)
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--topics", required=True, help="clickstream,pos,orders topic names, in that order")
    p.add_argument("--tag-topic", required=True)
    p.add_argument("--rules", required=True)
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--redis-prefix", required=True)
    p.add_argument("--metrics-port", type=int, required=True)
