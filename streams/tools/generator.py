"""Deterministic synthetic retail event stream (clickstream, POS tickets, e-commerce orders).

Pure: no I/O, no wall clock except the default ``start_ms``. :mod:`streams.tools.produce` ships the
events to Kafka; tests and benchmarks use the generator directly.

The stream is built from small per-customer *scripts* (a web session with its funnel, a store
ticket, a marketplace order). A pool of scripts is kept in flight and each emitted event is the
next step of a randomly chosen script, so consecutive events come from different customers while
every script stays internally ordered (``add_to_cart`` before ``checkout_start``; ``created``
before ``paid`` before ``shipped``). Which customer starts the next script is Zipf distributed,
so a few customers dominate, as in real retail data.

The values follow the input contract of the three source topics (docs: spec INTERFACES.md):

* clickstream: ``event_id, ts, type, session_id, user_id|None, anonymous_id`` and optional
  ``sku, category, price, url, query``.
* pos: ``event_id, ts, store_id, member_id|None, type (sale|return), items, total, payment_method``.
* orders: ``event_id, ts, order_id, user_id, status, amount, currency, channel, items``.

``items`` is ``[{"sku", "category", "qty", "unit_price"}]`` for both pos and orders. ``ts`` is
epoch milliseconds (int) for most events and an RFC 3339 string with offset for the rest.
"""

from __future__ import annotations

import gc
import math
import random
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from itertools import accumulate, islice
from typing import Any

import orjson

__all__ = [
    "BAD_KINDS",
    "CATEGORIES",
    "CLICK_TYPES",
    "CURRENCY",
    "ORDER_CHANNELS",
    "ORDER_STATUSES",
    "PAYMENT_METHODS",
    "POS_TYPES",
    "SOURCES",
    "STORES",
    "GeneratedEvent",
    "RetailGenerator",
]

SOURCES: tuple[str, ...] = ("clickstream", "pos", "orders")
CLICK_TYPES: tuple[str, ...] = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout_start",
    "login",
)
POS_TYPES: tuple[str, ...] = ("sale", "return")
ORDER_STATUSES: tuple[str, ...] = ("created", "paid", "shipped", "cancelled", "refunded")
ORDER_CHANNELS: tuple[str, ...] = ("web", "app", "mini_program", "marketplace")
PAYMENT_METHODS: tuple[str, ...] = ("card", "mobile_wallet", "cash", "gift_card")
STORES: tuple[str, ...] = tuple(f"s{i:02d}" for i in range(1, 21))
CURRENCY = "USD"
CATEGORIES: tuple[str, ...] = (
    "electronics",
    "shoes",
    "apparel",
    "beauty",
    "grocery",
    "home",
    "toys",
    "sports",
    "books",
    "jewelry",
    "baby",
    "pets",
)
#: Kinds of deliberately broken events emitted when ``bad_ratio > 0``.
BAD_KINDS: tuple[str, ...] = (
    "invalid_json",
    "invalid_utf8",
    "missing_event_id",
    "wrong_type",
    "bad_ts",
    "unknown_type",
    "json_array",
)

# (price low, price high, relative popularity) per category; prices in CURRENCY.
_CATEGORY_SPEC: dict[str, tuple[float, float, float]] = {
    "electronics": (19.0, 1499.0, 8.0),
    "shoes": (29.0, 249.0, 7.0),
    "apparel": (9.0, 199.0, 12.0),
    "beauty": (5.0, 129.0, 8.0),
    "grocery": (1.0, 39.0, 14.0),
    "home": (9.0, 499.0, 7.0),
    "toys": (7.0, 149.0, 5.0),
    "sports": (12.0, 399.0, 5.0),
    "books": (6.0, 59.0, 5.0),
    "jewelry": (49.0, 2999.0, 2.0),
    "baby": (5.0, 199.0, 4.0),
    "pets": (4.0, 89.0, 4.0),
}
_SKUS_PER_CATEGORY = 6
_QUERIES: dict[str, tuple[str, ...]] = {
    "electronics": ("wireless headphones", "usb c charger", "4k tv", "laptop", "smart watch"),
    "shoes": ("running shoes", "sneakers", "leather boots", "sandals"),
    "apparel": ("t-shirt", "denim jacket", "summer dress", "hoodie"),
    "beauty": ("lipstick", "moisturizer", "perfume", "sunscreen"),
    "grocery": ("coffee beans", "olive oil", "oat milk", "snacks"),
    "home": ("desk lamp", "bath towels", "cookware set", "pillow"),
    "toys": ("lego", "puzzle", "board game", "plush"),
    "sports": ("yoga mat", "dumbbells", "tennis racket", "bike helmet"),
    "books": ("cookbook", "mystery novel", "kids books", "biography"),
    "jewelry": ("gold necklace", "silver ring", "earrings", "watch"),
    "baby": ("diapers", "stroller", "baby formula", "onesie"),
    "pets": ("dog food", "cat litter", "pet bed", "chew toy"),
}
_URL = "https://shop.example.com"
# Offsets used for the RFC 3339 flavour of ``ts`` (stores and apps in several time zones).
_TZS: tuple[timezone, ...] = (
    UTC,
    timezone(timedelta(hours=8)),
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=1)),
    timezone(timedelta(hours=5, minutes=30)),
)
_RFC3339_RATIO = 0.12  # share of events whose ts is a string; the rest are epoch ms ints
_POOL_SIZE = 32  # in-flight scripts; enough to interleave many customers
_CATALOG_SEED = 20261127  # the catalog is the same for every generator seed


@dataclass(frozen=True, slots=True)
class GeneratedEvent:
    """One Kafka record to produce.

    ``key`` is the customer id (UTF-8) or None for anonymous visitors and walk-in shoppers.
    ``valid`` is False for deliberately broken events; ``bad_kind`` then names the defect
    (one of :data:`BAD_KINDS`).
    """

    source: str
    key: bytes | None
    value: bytes
    valid: bool
    bad_kind: str | None = None


@dataclass(frozen=True, slots=True)
class _Sku:
    sku: str
    category: str
    price: float


def _build_catalog() -> dict[str, tuple[_Sku, ...]]:
    rng = random.Random(_CATALOG_SEED)
    catalog: dict[str, tuple[_Sku, ...]] = {}
    for cat, (lo, hi, _pop) in _CATEGORY_SPEC.items():
        skus = []
        for j in range(1, _SKUS_PER_CATEGORY + 1):
            # Log-uniform so cheap items dominate but every range has a few pricey ones;
            # x.99 endings look like real shelf prices.
            price = math.floor(math.exp(rng.uniform(math.log(lo), math.log(hi)))) + 0.99
            skus.append(_Sku(f"{cat[:3].upper()}-{j:03d}", cat, price))
        catalog[cat] = tuple(skus)
    return catalog


_CATALOG = _build_catalog()
_CAT_CUM = list(accumulate(spec[2] for spec in _CATEGORY_SPEC.values()))


@dataclass(slots=True)
class _Customer:
    cid: str
    key: bytes
    segment: str  # "store" | "online" | "omni"
    big_spender: bool
    favourite: tuple[str, ...]  # preferred categories
    home_store: str
    device: str  # anonymous_id of the customer's browser/app
    online_channel: str  # web | app | mini_program
    payment: str


class RetailGenerator:
    """Infinite, seed-deterministic stream of :class:`GeneratedEvent`.

    The object is one stream: ``iter()`` and :meth:`take` share the position, so successive
    ``take(n)`` calls continue where the previous one stopped. Build a new generator with the
    same arguments to replay. With an explicit ``start_ms`` the output is byte-for-byte
    reproducible; by default timestamps start at the wall clock of construction.

    Args:
        seed: random seed; also part of every event_id (``<source>-<seed>-<counter>``).
        customers: size of the customer base (ids ``<prefix>000000`` ...).
        zipf_s: Zipf exponent of customer activity (higher = more skewed).
        bad_ratio: probability that an event is deliberately broken (``valid=False``).
        anonymous_ratio: share of web sessions by visitors that never identify themselves.
        start_ms: business time of the first event (epoch ms); default now.
        step_ms: business time added per emitted event (1.0 matches producing at 1000/s).
        customer_prefix: prefix of customer ids.
    """

    def __init__(
        self,
        *,
        seed: int = 1,
        customers: int = 1000,
        zipf_s: float = 1.1,
        bad_ratio: float = 0.0,
        anonymous_ratio: float = 0.1,
        start_ms: int | None = None,
        step_ms: float = 1.0,
        customer_prefix: str = "c",
    ) -> None:
        if customers < 1:
            raise ValueError("customers must be >= 1")
        if not 0.0 <= bad_ratio <= 1.0:
            raise ValueError("bad_ratio must be within [0, 1]")
        if not 0.0 <= anonymous_ratio <= 1.0:
            raise ValueError("anonymous_ratio must be within [0, 1]")
        if zipf_s < 0:
            raise ValueError("zipf_s must be >= 0")
        self.seed = seed
        self.customers = customers
        self.zipf_s = zipf_s
        self.bad_ratio = bad_ratio
        self.anonymous_ratio = anonymous_ratio
        self.start_ms = int(time.time() * 1000) if start_ms is None else int(start_ms)
        self.step_ms = step_ms
        self.customer_prefix = customer_prefix

        self._rng = random.Random(seed)
        self._width = max(6, len(str(customers - 1)))
        # Zipf over activity rank; rank r (0-based) has weight 1/(r+1)^s. Cumulative table +
        # bisect gives O(log n) sampling without numpy.
        self._zipf_cum = list(accumulate(1.0 / (r + 1) ** zipf_s for r in range(customers)))
        self._zipf_total = self._zipf_cum[-1]
        # Rank -> customer index through an affine bijection, so the heaviest customers are
        # scattered over the id space instead of being c000000, c000001, ...
        mult = self._rng.randrange(1, max(2, customers)) if customers > 1 else 1
        while math.gcd(mult, customers) != 1:
            mult += 1
        self._rank_mult = mult
        self._rank_add = self._rng.randrange(customers)
        self._profiles: dict[int, _Customer] = {}
        self._sessions = 0
        self._orders = 0
        self._anons = 0
        self._it: Iterator[GeneratedEvent] = self._run()

    # -- public API --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[GeneratedEvent]:
        """Return the (shared, infinite) event iterator."""
        return self._it

    def take(self, n: int) -> list[GeneratedEvent]:
        """Return the next ``n`` events of the stream."""
        # Materialising many events keeps one GC-tracked object per event alive and creates no
        # cycles; pausing the cyclic collector avoids its repeated heap scans (~2x faster).
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return list(islice(self._it, n))
        finally:
            if was_enabled:
                gc.enable()

    # -- customers ---------------------------------------------------------------------------

    def _pick_customer(self) -> _Customer:
        rank = bisect_right(self._zipf_cum, self._rng.random() * self._zipf_total)
        if rank >= self.customers:  # float edge case at the very top of the table
            rank = self.customers - 1
        return self._customer((rank * self._rank_mult + self._rank_add) % self.customers)

    def _customer(self, idx: int) -> _Customer:
        prof = self._profiles.get(idx)
        if prof is None:
            # Per-customer RNG: the profile is a pure function of (seed, idx), independent of
            # when the customer first shows up. SplitMix64 because seeding a Mersenne Twister
            # per customer costs more than generating a dozen events.
            r = _SplitMix64(self.seed * 1_000_003 + idx)
            cid = f"{self.customer_prefix}{idx:0{self._width}d}"
            u = r.random()
            segment = "store" if u < 0.25 else "online" if u < 0.60 else "omni"
            favourite = tuple(dict.fromkeys(self._category(r) for _ in range(3)))
            prof = _Customer(
                cid=cid,
                key=cid.encode(),
                segment=segment,
                big_spender=r.random() < 0.03,
                favourite=favourite,
                home_store=r.choice(STORES),
                device=f"d-{r.next() >> 16:012x}",
                online_channel=r.weighted(("web", "app", "mini_program"), (55, 35, 10)),
                payment=r.weighted(PAYMENT_METHODS, (55, 25, 15, 5)),
            )
            self._profiles[idx] = prof
        return prof

    @staticmethod
    def _category(r: random.Random | _SplitMix64) -> str:
        return CATEGORIES[bisect_right(_CAT_CUM, r.random() * _CAT_CUM[-1])]

    def _sku(self, cust: _Customer | None) -> _Sku:
        r = self._rng
        # 60% of a known customer's picks come from their favourite categories.
        cat = r.choice(cust.favourite) if cust is not None and r.random() < 0.6 else self._category(r)
        skus = _CATALOG[cat]
        if cust is not None and cust.big_spender:
            # Big spenders lean to the expensive end of each category.
            return max(r.choice(skus), r.choice(skus), key=lambda s: s.price)
        return r.choice(skus)

    def _basket(self, cust: _Customer | None, n_items: int) -> list[dict[str, Any]]:
        r = self._rng
        items: dict[str, dict[str, Any]] = {}
        for _ in range(n_items):
            s = self._sku(cust)
            if s.sku in items:
                items[s.sku]["qty"] += 1
                continue
            max_qty = 6 if s.category == "grocery" else 2
            if cust is not None and cust.big_spender:
                max_qty += 2
            items[s.sku] = {
                "sku": s.sku,
                "category": s.category,
                "qty": r.randint(1, max_qty),
                "unit_price": s.price,
            }
        return list(items.values())

    @staticmethod
    def _total(items: list[dict[str, Any]]) -> float:
        return round(sum(i["qty"] * i["unit_price"] for i in items), 2)

    # -- scripts: generators of (source, key, body) --------------------------------------------
    # Bodies start with placeholder event_id/ts keys (filled by _run) so every JSON object
    # begins with them.

    def _new_script(self) -> Iterator[tuple[str, bytes | None, dict[str, Any]]]:
        r = self._rng
        if r.random() < self.anonymous_ratio:
            return self._web_session(None)
        cust = self._pick_customer()
        u = r.random()
        if cust.segment == "store":
            return self._pos_ticket(None if u < 0.15 else cust)
        if cust.segment == "online":
            return self._web_session(cust) if u < 0.85 else self._order_flow(cust, "marketplace", None)
        if u < 0.45:
            return self._pos_ticket(None if u < 0.45 * 0.15 else cust)
        if u < 0.92:
            return self._web_session(cust)
        return self._order_flow(cust, "marketplace", None)

    def _web_session(self, cust: _Customer | None) -> Iterator[tuple[str, bytes | None, dict[str, Any]]]:
        r = self._rng
        self._sessions += 1
        session_id = f"sess-{self.seed}-{self._sessions}"
        if cust is None:
            self._anons += 1
            device = f"anon-{self.seed}-{self._anons}"
            user_id, key = None, None
        else:
            device, user_id, key = cust.device, cust.cid, cust.key

        def click(type_: str, **extra: Any) -> tuple[str, bytes | None, dict[str, Any]]:
            body = {
                "event_id": "",
                "ts": 0,
                "type": type_,
                "session_id": session_id,
                "user_id": user_id,
                "anonymous_id": device,
            }
            body.update(extra)
            return "clickstream", key, body

        if cust is not None and r.random() < 0.35:
            yield click("login", url=f"{_URL}/login")
        cat = r.choice(cust.favourite) if cust is not None else self._category(r)
        yield click("page_view", url=f"{_URL}/" if r.random() < 0.5 else f"{_URL}/c/{cat}")

        big = cust is not None and cust.big_spender
        viewed: list[_Sku] = []
        for _ in range(r.randint(1, 8 if big else 6)):
            u = r.random()
            if u < 0.22:
                q_cat = r.choice(cust.favourite) if cust is not None else self._category(r)
                query = r.choice(_QUERIES[q_cat])
                yield click("search", query=query, url=f"{_URL}/search?q={query.replace(' ', '+')}")
            elif u < 0.88:
                s = self._sku(cust)
                viewed.append(s)
                yield click(
                    "product_view", sku=s.sku, category=s.category, price=s.price, url=f"{_URL}/p/{s.sku}"
                )
            else:
                p_cat = self._category(r)
                yield click("page_view", url=f"{_URL}/c/{p_cat}")

        p_cart = 0.15 if cust is None else 0.6 if big else 0.4
        if not viewed or r.random() >= p_cart:
            return  # browse-only session
        cart: dict[str, _Sku] = {}
        for _ in range(r.randint(1, 3)):
            s = r.choice(viewed) if r.random() < 0.8 else self._sku(cust)
            cart[s.sku] = s
            yield click("add_to_cart", sku=s.sku, category=s.category, price=s.price, url=f"{_URL}/p/{s.sku}")
        if len(cart) > 1 and r.random() < 0.12:
            s = cart.pop(r.choice(list(cart)))
            yield click("remove_from_cart", sku=s.sku, category=s.category, price=s.price, url=f"{_URL}/cart")
        if cust is None or r.random() >= (0.8 if big else 0.6):
            return  # cart abandonment (anonymous visitors never check out)
        yield click("checkout_start", url=f"{_URL}/checkout")
        if r.random() >= 0.85:
            return  # dropped at the payment page
        items = [
            {
                "sku": s.sku,
                "category": s.category,
                "qty": r.randint(1, 4 if big else 2),
                "unit_price": s.price,
            }
            for s in cart.values()
        ]
        yield from self._order_flow(cust, cust.online_channel, items)

    def _order_flow(
        self, cust: _Customer, channel: str, items: list[dict[str, Any]] | None
    ) -> Iterator[tuple[str, bytes | None, dict[str, Any]]]:
        r = self._rng
        self._orders += 1
        order_id = f"o-{self.seed}-{self._orders}"
        if items is None:
            items = self._basket(cust, r.randint(1, 3))
        amount = self._total(items)

        def order(status: str) -> tuple[str, bytes | None, dict[str, Any]]:
            return (
                "orders",
                cust.key,
                {
                    "event_id": "",
                    "ts": 0,
                    "order_id": order_id,
                    "user_id": cust.cid,
                    "status": status,
                    "amount": amount,
                    "currency": CURRENCY,
                    "channel": channel,
                    "items": items,
                },
            )

        fate = r.random()
        yield order("created")
        if fate < 0.035:
            yield order("cancelled")  # never paid
            return
        yield order("paid")
        if fate < 0.05:
            yield order("cancelled")  # paid, cancelled before shipping (refund implied)
            return
        yield order("shipped")
        if fate < 0.08:
            yield order("refunded")

    def _pos_ticket(self, cust: _Customer | None) -> Iterator[tuple[str, bytes | None, dict[str, Any]]]:
        r = self._rng
        big = cust is not None and cust.big_spender
        n = r.choices((1, 2, 3, 4, 5), (30, 28, 20, 13, 9))[0] + (2 if big else 0)
        items = self._basket(cust, n)
        if cust is None:
            store, payment, member, key = r.choice(STORES), r.choice(PAYMENT_METHODS), None, None
        else:
            store = cust.home_store if r.random() < 0.8 else r.choice(STORES)
            payment = cust.payment if r.random() < 0.75 else r.choice(PAYMENT_METHODS)
            member, key = cust.cid, cust.key
        yield (
            "pos",
            key,
            {
                "event_id": "",
                "ts": 0,
                "store_id": store,
                "member_id": member,
                "type": "sale",
                "items": items,
                "total": self._total(items),
                "payment_method": payment,
            },
        )
        if r.random() < 0.03:
            back = dict(r.choice(items), qty=1)
            yield (
                "pos",
                key,
                {
                    "event_id": "",
                    "ts": 0,
                    "store_id": store,
                    "member_id": member,
                    "type": "return",
                    "items": [back],
                    "total": back["unit_price"],
                    "payment_method": payment,
                },
            )

    # -- bad events ----------------------------------------------------------------------------

    def _bad(self, counter: int, ts: int | str) -> GeneratedEvent:
        """A deliberately broken event of a random source and :data:`BAD_KINDS` kind."""
        r = self._rng
        source = r.choice(SOURCES)
        kind = r.choice(BAD_KINDS)
        event_id = f"{source}-{self.seed}-{counter}"
        cust = self._pick_customer()
        if source == "clickstream":
            s = self._sku(cust)
            body: dict[str, Any] = {
                "event_id": event_id,
                "ts": ts,
                "type": "product_view",
                "session_id": f"sess-{self.seed}-0",
                "user_id": cust.cid,
                "anonymous_id": cust.device,
                "sku": s.sku,
                "category": s.category,
                "price": s.price,
            }
        elif source == "pos":
            items = self._basket(cust, 2)
            body = {
                "event_id": event_id,
                "ts": ts,
                "store_id": cust.home_store,
                "member_id": cust.cid,
                "type": "sale",
                "items": items,
                "total": self._total(items),
                "payment_method": cust.payment,
            }
        else:
            items = self._basket(cust, 2)
            body = {
                "event_id": event_id,
                "ts": ts,
                "order_id": f"o-{self.seed}-0",
                "user_id": cust.cid,
                "status": "paid",
                "amount": self._total(items),
                "currency": CURRENCY,
                "channel": "web",
                "items": items,
            }
        if kind == "missing_event_id":
            del body["event_id"]
        elif kind == "bad_ts":
            body["ts"] = "yesterday"
        elif kind == "unknown_type":
            if source == "orders":
                body["status"] = "on_hold"
            else:
                body["type"] = "hover" if source == "clickstream" else "exchange"
        elif kind == "wrong_type":
            # A non-numeric qty string: even lax validators that coerce "2" -> 2 must reject it.
            if source == "clickstream" or (source == "orders" and r.random() < 0.5):
                body["user_id"] = int(cust.cid[len(self.customer_prefix) :] or 0)
            else:
                body["items"][0] = dict(body["items"][0], qty="two")
        if kind == "json_array":
            value = _encode([body])
        else:
            value = _encode(body)
            if kind == "invalid_json":
                # Any strict prefix of a JSON object is invalid JSON.
                value = value[: r.randint(1, len(value) - 1)]
            elif kind == "invalid_utf8":
                value = value.replace(b'"ts":', b'"\xff\xfets":', 1)
        return GeneratedEvent(source, cust.key, value, False, kind)

    # -- main loop -----------------------------------------------------------------------------

    def _run(self) -> Iterator[GeneratedEvent]:
        r = self._rng
        rand = r.random
        dumps = orjson.dumps
        _shrink = memoryview
        seed = self.seed
        start, step = self.start_ms, self.step_ms
        bad_ratio = self.bad_ratio
        pool_size = _POOL_SIZE if self.customers >= 4 * _POOL_SIZE else max(2, self.customers // 4)
        pool = [self._new_script() for _ in range(pool_size)]
        last_slot = -1
        last_key: bytes | None = None
        counter = 0
        while True:
            ts_ms = start + int(counter * step)
            if rand() < _RFC3339_RATIO:
                tz = _TZS[int(rand() * len(_TZS))]
                ts: int | str = datetime.fromtimestamp(ts_ms / 1000, tz).isoformat(timespec="milliseconds")
                if tz is UTC and rand() < 0.5:
                    ts = ts[:-6] + "Z"
            else:
                ts = ts_ms
            if bad_ratio and rand() < bad_ratio:
                counter += 1
                yield self._bad(counter, ts)
                continue
            # Next step of a random in-flight script; avoid repeating the slot or the customer
            # of the previous event so the stream interleaves customers.
            for _attempt in range(8):
                slot = int(rand() * pool_size)
                if slot != last_slot:
                    break
            deferrals = 0
            while True:
                try:
                    source, key, body = next(pool[slot])
                except StopIteration:
                    pool[slot] = self._new_script()
                    continue
                if key is not None and key == last_key and deferrals < pool_size:
                    # Same customer twice in a row (heavy users run several scripts at once):
                    # put the step back and let the next slot go first. Bounded, because with
                    # a tiny customer base every slot may belong to the same customer.
                    pool[slot] = _prepend((source, key, body), pool[slot])
                    slot = (slot + 1) % pool_size
                    deferrals += 1
                    continue
                break
            counter += 1
            body["event_id"] = f"{source}-{seed}-{counter}"
            body["ts"] = ts
            last_slot, last_key = slot, key
            # Same as _encode(), inlined for speed.
            yield GeneratedEvent(source, key, _shrink(dumps(body)).tobytes(), True)


def _encode(obj: Any) -> bytes:
    """orjson.dumps, copied to an exact-size bytes.

    orjson (3.13) returns bytes objects that keep their ~4 KiB growth buffer; a copy costs
    ~0.1 us and keeps ``take(1_000_000)`` at ~300 MB instead of ~4 GB.
    """
    return memoryview(orjson.dumps(obj)).tobytes()


class _SplitMix64:
    """Tiny deterministic PRNG (SplitMix64) for cheap per-customer streams."""

    __slots__ = ("state",)
    _MASK = (1 << 64) - 1

    def __init__(self, seed: int) -> None:
        self.state = seed & self._MASK

    def next(self) -> int:
        self.state = z = (self.state + 0x9E3779B97F4A7C15) & self._MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self._MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self._MASK
        return z ^ (z >> 31)

    def random(self) -> float:
        return (self.next() >> 11) * (1.0 / (1 << 53))

    def choice(self, seq: tuple[str, ...]) -> str:
        return seq[int(self.random() * len(seq))]

    def weighted(self, seq: tuple[str, ...], weights: tuple[float, ...]) -> str:
        x = self.random() * sum(weights)
        for item, w in zip(seq, weights, strict=True):
            x -= w
            if x < 0:
                return item
        return seq[-1]


def _prepend(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest
