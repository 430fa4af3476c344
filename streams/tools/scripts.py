"""Per-customer scripts: a web session with its funnel, a store ticket, a marketplace order.

A script is an iterator of steps ``(source, key, body)`` that stays internally ordered
(``add_to_cart`` before ``checkout_start``; ``created`` before ``paid`` before ``shipped``).
:class:`~streams.tools.generator.RetailGenerator` keeps a pool of them in flight and numbers
and timestamps the steps. Bodies start with placeholder event_id/ts keys (filled in by the
generator) so every JSON object begins with them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Iterator
from typing import Any, TypeVar

from streams.tools.catalog import CURRENCY, PAYMENT_METHODS, QUERIES, SHOP_URL, STORES, Sku, random_category
from streams.tools.customers import Customer, CustomerPopulation, basket, basket_total, pick_sku
from streams.tools.records import Script, Step

__all__ = ["ScriptFactory", "prepend"]

_URL = SHOP_URL
_T = TypeVar("_T")
#: Builds a clickstream step of the current session: ``click(type, **extra_fields)``.
_Click = Callable[..., Step]


class ScriptFactory:
    """Starts new scripts, drawing every random choice from the generator's ``rng``."""

    def __init__(self, rng: random.Random, customers: CustomerPopulation, *, seed: int, anonymous_ratio: float) -> None:
        self._rng = rng
        self._customers = customers
        self._seed = seed
        self._anonymous_ratio = anonymous_ratio
        self._sessions = 0
        self._orders = 0
        self._anons = 0

    def new_script(self) -> Script:
        """The script of the next customer (or anonymous visitor / walk-in shopper)."""
        r = self._rng
        if r.random() < self._anonymous_ratio:
            return self.web_session(None)
        cust = self._customers.pick()
        u = r.random()
        if cust.segment == "store":
            return self.pos_ticket(None if u < 0.15 else cust)
        if cust.segment == "online":
            return self.web_session(cust) if u < 0.85 else self.order_flow(cust, "marketplace", None)
        if u < 0.45:
            return self.pos_ticket(None if u < 0.45 * 0.15 else cust)
        if u < 0.92:
            return self.web_session(cust)
        return self.order_flow(cust, "marketplace", None)

    # -- web session -----------------------------------------------------------------------------

    def web_session(self, cust: Customer | None) -> Script:
        """Browse, maybe fill a cart, maybe check out (then the order's own flow follows)."""
        self._sessions += 1
        click = self._clicker(cust, f"sess-{self._seed}-{self._sessions}")
        viewed = yield from self._browse(cust, click)
        cart = yield from self._fill_cart(cust, click, viewed)
        if cust is not None and cart is not None:  # anonymous carts never get here
            yield from self._checkout(cust, click, cart)

    def _clicker(self, cust: Customer | None, session_id: str) -> _Click:
        if cust is None:
            self._anons += 1
            device = f"anon-{self._seed}-{self._anons}"
            user_id, key = None, None
        else:
            device, user_id, key = cust.device, cust.cid, cust.key

        def click(type_: str, **extra: Any) -> Step:
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

        return click

    def _browse(self, cust: Customer | None, click: _Click) -> Generator[Step, None, list[Sku]]:
        """Login, landing page, searches and product views; returns the products viewed."""
        r = self._rng
        if cust is not None and r.random() < 0.35:
            yield click("login", url=f"{_URL}/login")
        cat = r.choice(cust.favourite) if cust is not None else random_category(r)
        yield click("page_view", url=f"{_URL}/" if r.random() < 0.5 else f"{_URL}/c/{cat}")

        big = cust is not None and cust.big_spender
        viewed: list[Sku] = []
        for _ in range(r.randint(1, 8 if big else 6)):
            u = r.random()
            if u < 0.22:
                q_cat = r.choice(cust.favourite) if cust is not None else random_category(r)
                query = r.choice(QUERIES[q_cat])
                yield click("search", query=query, url=f"{_URL}/search?q={query.replace(' ', '+')}")
            elif u < 0.88:
                s = pick_sku(r, cust)
                viewed.append(s)
                yield click("product_view", sku=s.sku, category=s.category, price=s.price, url=f"{_URL}/p/{s.sku}")
            else:
                p_cat = random_category(r)
                yield click("page_view", url=f"{_URL}/c/{p_cat}")
        return viewed

    def _fill_cart(
        self, cust: Customer | None, click: _Click, viewed: list[Sku]
    ) -> Generator[Step, None, dict[str, Sku] | None]:
        """Cart adds (and a rare removal); returns the cart of a customer heading to checkout.

        Returns None for a browse-only session or an abandoned cart (anonymous visitors never
        check out).
        """
        r = self._rng
        big = cust is not None and cust.big_spender
        p_cart = 0.15 if cust is None else 0.6 if big else 0.4
        if not viewed or r.random() >= p_cart:
            return None  # browse-only session
        cart: dict[str, Sku] = {}
        for _ in range(r.randint(1, 3)):
            s = r.choice(viewed) if r.random() < 0.8 else pick_sku(r, cust)
            cart[s.sku] = s
            yield click("add_to_cart", sku=s.sku, category=s.category, price=s.price, url=f"{_URL}/p/{s.sku}")
        if len(cart) > 1 and r.random() < 0.12:
            s = cart.pop(r.choice(list(cart)))
            yield click("remove_from_cart", sku=s.sku, category=s.category, price=s.price, url=f"{_URL}/cart")
        if cust is None or r.random() >= (0.8 if big else 0.6):
            return None  # cart abandonment
        return cart

    def _checkout(self, cust: Customer, click: _Click, cart: dict[str, Sku]) -> Script:
        r = self._rng
        big = cust.big_spender
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
        yield from self.order_flow(cust, cust.online_channel, items)

    # -- orders and store tickets ------------------------------------------------------------------

    def order_flow(self, cust: Customer, channel: str, items: list[dict[str, Any]] | None) -> Script:
        """An order's status events: created, then paid/shipped or cancelled, maybe refunded."""
        r = self._rng
        self._orders += 1
        order_id = f"o-{self._seed}-{self._orders}"
        if items is None:
            items = basket(r, cust, r.randint(1, 3))
        amount = basket_total(items)

        def order(status: str) -> Step:
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

    def pos_ticket(self, cust: Customer | None) -> Script:
        """A store sale (member or walk-in), occasionally followed by a one-item return."""
        r = self._rng
        big = cust is not None and cust.big_spender
        n = r.choices((1, 2, 3, 4, 5), (30, 28, 20, 13, 9))[0] + (2 if big else 0)
        items = basket(r, cust, n)
        if cust is None:
            store, payment, member, key = r.choice(STORES), r.choice(PAYMENT_METHODS), None, None
        else:
            store = cust.home_store if r.random() < 0.8 else r.choice(STORES)
            payment = cust.payment if r.random() < 0.75 else r.choice(PAYMENT_METHODS)
            member, key = cust.cid, cust.key

        def ticket(type_: str, ticket_items: list[dict[str, Any]], total: float) -> Step:
            return (
                "pos",
                key,
                {
                    "event_id": "",
                    "ts": 0,
                    "store_id": store,
                    "member_id": member,
                    "type": type_,
                    "items": ticket_items,
                    "total": total,
                    "payment_method": payment,
                },
            )

        yield ticket("sale", items, basket_total(items))
        if r.random() < 0.03:
            back = dict(r.choice(items), qty=1)
            yield ticket("return", [back], back["unit_price"])


def prepend(first: _T, rest: Iterator[_T]) -> Iterator[_T]:
    """``first``, then the rest of ``rest``."""
    yield first
    yield from rest
