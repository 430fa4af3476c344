"""The customer base of the synthetic retail stream and how its customers shop.

:class:`CustomerPopulation` picks the customer behind the next script (Zipf distributed over an
activity rank, so a few customers dominate, as in real retail data) and derives each customer's
profile deterministically from ``(seed, index)``. :func:`pick_sku` and :func:`basket` choose what
a (possibly anonymous) customer looks at and buys.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from streams.tools.catalog import CATALOG, PAYMENT_METHODS, STORES, Sku, random_category
from streams.tools.rng import SplitMix64

__all__ = ["Customer", "CustomerPopulation", "basket", "basket_total", "pick_sku"]


@dataclass(slots=True)
class Customer:
    """A customer's stable profile."""

    cid: str
    key: bytes
    segment: str  # "store" | "online" | "omni"
    big_spender: bool
    favourite: tuple[str, ...]  # preferred categories
    home_store: str
    device: str  # anonymous_id of the customer's browser/app
    online_channel: str  # web | app | mini_program
    payment: str


class CustomerPopulation:
    """``size`` customers (ids ``<prefix>000000`` ...) with Zipf-distributed activity.

    Draws the rank permutation from ``rng`` at construction and one ``rng.random()`` per
    :meth:`pick`; profiles come from their own per-customer generator.
    """

    def __init__(self, rng: random.Random, *, seed: int, size: int, zipf_s: float, prefix: str) -> None:
        self._rng = rng
        self.seed = seed
        self.size = size
        self.prefix = prefix
        self._width = max(6, len(str(size - 1)))
        # Zipf over activity rank; rank r (0-based) has weight 1/(r+1)^s. Cumulative table +
        # bisect gives O(log n) sampling without numpy.
        self._zipf_cum = list(accumulate(1.0 / (r + 1) ** zipf_s for r in range(size)))
        self._zipf_total = self._zipf_cum[-1]
        # Rank -> customer index through an affine bijection, so the heaviest customers are
        # scattered over the id space instead of being c000000, c000001, ...
        mult = rng.randrange(1, max(2, size)) if size > 1 else 1
        while math.gcd(mult, size) != 1:
            mult += 1
        self._rank_mult = mult
        self._rank_add = rng.randrange(size)
        self._profiles: dict[int, Customer] = {}

    def pick(self) -> Customer:
        """A customer drawn by activity."""
        rank = bisect_right(self._zipf_cum, self._rng.random() * self._zipf_total)
        if rank >= self.size:  # float edge case at the very top of the table
            rank = self.size - 1
        return self.profile((rank * self._rank_mult + self._rank_add) % self.size)

    def profile(self, idx: int) -> Customer:
        """The profile of customer ``idx`` (built on first use, then cached)."""
        prof = self._profiles.get(idx)
        if prof is None:
            prof = self._profiles[idx] = self._build_profile(idx)
        return prof

    def _build_profile(self, idx: int) -> Customer:
        # Per-customer RNG: the profile is a pure function of (seed, idx), independent of
        # when the customer first shows up. SplitMix64 because seeding a Mersenne Twister
        # per customer costs more than generating a dozen events.
        r = SplitMix64(self.seed * 1_000_003 + idx)
        cid = f"{self.prefix}{idx:0{self._width}d}"
        u = r.random()
        segment = "store" if u < 0.25 else "online" if u < 0.60 else "omni"
        favourite = tuple(dict.fromkeys(random_category(r) for _ in range(3)))
        return Customer(
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


def pick_sku(r: random.Random, cust: Customer | None) -> Sku:
    """A product ``cust`` (None: an anonymous shopper) looks at or buys."""
    # 60% of a known customer's picks come from their favourite categories.
    cat = r.choice(cust.favourite) if cust is not None and r.random() < 0.6 else random_category(r)
    skus = CATALOG[cat]
    if cust is not None and cust.big_spender:
        # Big spenders lean to the expensive end of each category.
        return max(r.choice(skus), r.choice(skus), key=lambda s: s.price)
    return r.choice(skus)


def basket(r: random.Random, cust: Customer | None, n_items: int) -> list[dict[str, Any]]:
    """Items of a purchase of ``n_items`` picks (repeated picks raise the quantity)."""
    items: dict[str, dict[str, Any]] = {}
    for _ in range(n_items):
        s = pick_sku(r, cust)
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


def basket_total(items: list[dict[str, Any]]) -> float:
    """Sum of qty * unit_price, rounded to cents."""
    return round(sum(i["qty"] * i["unit_price"] for i in items), 2)
