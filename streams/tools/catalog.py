"""Vocabulary and product catalog of the synthetic retail stream.

The source names, event types, statuses, stores, payment methods and categories the generator
uses (the input contract of the three source topics, docs: spec INTERFACES.md), plus a fixed
product catalog: the same SKUs and prices for every generator seed.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING

from schemas.events import CLICK_TYPES, ORDER_CHANNELS, ORDER_STATUSES, POS_TYPES, SOURCES

if TYPE_CHECKING:
    from streams.tools.rng import SplitMix64

__all__ = [
    "CATALOG",
    "CATEGORIES",
    "CATEGORY_SPEC",
    "CLICK_TYPES",
    "CURRENCY",
    "ORDER_CHANNELS",
    "ORDER_STATUSES",
    "PAYMENT_METHODS",
    "POS_TYPES",
    "QUERIES",
    "SHOP_URL",
    "SOURCES",
    "STORES",
    "Sku",
    "random_category",
]

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

#: (price low, price high, relative popularity) per category; prices in CURRENCY.
CATEGORY_SPEC: dict[str, tuple[float, float, float]] = {
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
#: Search queries per category.
QUERIES: dict[str, tuple[str, ...]] = {
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
SHOP_URL = "https://shop.example.com"

_SKUS_PER_CATEGORY = 6
_CATALOG_SEED = 20261127  # the catalog is the same for every generator seed


@dataclass(frozen=True, slots=True)
class Sku:
    """One product of the catalog."""

    sku: str
    category: str
    price: float


def _build_catalog() -> dict[str, tuple[Sku, ...]]:
    rng = random.Random(_CATALOG_SEED)
    catalog: dict[str, tuple[Sku, ...]] = {}
    for cat, (lo, hi, _pop) in CATEGORY_SPEC.items():
        skus = []
        for j in range(1, _SKUS_PER_CATEGORY + 1):
            # Log-uniform so cheap items dominate but every range has a few pricey ones;
            # x.99 endings look like real shelf prices.
            price = math.floor(math.exp(rng.uniform(math.log(lo), math.log(hi)))) + 0.99
            skus.append(Sku(f"{cat[:3].upper()}-{j:03d}", cat, price))
        catalog[cat] = tuple(skus)
    return catalog


#: SKUs per category.
CATALOG: dict[str, tuple[Sku, ...]] = _build_catalog()
_CAT_CUM = list(accumulate(spec[2] for spec in CATEGORY_SPEC.values()))


def random_category(r: random.Random | SplitMix64) -> str:
    """A category drawn by popularity (the third field of :data:`CATEGORY_SPEC`)."""
    return CATEGORIES[bisect_right(_CAT_CUM, r.random() * _CAT_CUM[-1])]
