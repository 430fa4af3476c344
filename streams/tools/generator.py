"""Deterministic synthetic retail event stream (clickstream, POS tickets, e-commerce orders).

Pure: no I/O, no wall clock except the default ``start_ms``. :mod:`streams.tools.produce` ships the
events to Kafka; tests and benchmarks use the generator directly.

The stream is built from small per-customer *scripts* (a web session with its funnel, a store
ticket, a marketplace order; :mod:`streams.tools.scripts`). A pool of scripts is kept in flight
and each emitted event is the next step of a randomly chosen script, so consecutive events come
from different customers while every script stays internally ordered (``add_to_cart`` before
``checkout_start``; ``created`` before ``paid`` before ``shipped``). Which customer starts the
next script is Zipf distributed (:mod:`streams.tools.customers`), so a few customers dominate, as
in real retail data. With ``bad_ratio > 0`` some events are deliberately broken
(:mod:`streams.tools.bad_events`).

With ``identity`` on (off by default; the default stream is unchanged) the same funnels carry
typed ids in separate id spaces (loyalty cards ``m-…``, online accounts ``u-…``, contact hashes,
devices) and a 4th source, ``identity``, carries CRM link records for ``events.identity``
(:mod:`streams.tools.identity_scripts`, ratios in :class:`IdentityMix`);
:meth:`RetailGenerator.ground_truth` says which ids are one person.

The values follow the input contract of the three source topics (docs: spec INTERFACES.md):

* clickstream: ``event_id, ts, type, session_id, user_id|None, anonymous_id`` and optional
  ``sku, category, price, url, query``.
* pos: ``event_id, ts, store_id, member_id|None, type (sale|return), items, total, payment_method``.
* orders: ``event_id, ts, order_id, user_id, status, amount, currency, channel, items``.

``items`` is ``[{"sku", "category", "qty", "unit_price"}]`` for both pos and orders. ``ts`` is
epoch milliseconds (int) for most events and an RFC 3339 string with offset for the rest.

The vocabulary (:data:`SOURCES`, :data:`CATEGORIES`, ...) lives in :mod:`streams.tools.catalog`
and is re-exported here.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from itertools import islice

import orjson

from streams.tools.bad_events import BAD_KINDS, bad_event
from streams.tools.catalog import (
    CATEGORIES,
    CLICK_TYPES,
    CURRENCY,
    ORDER_CHANNELS,
    ORDER_STATUSES,
    PAYMENT_METHODS,
    POS_TYPES,
    SOURCES,
    STORES,
)
from streams.tools.customers import CustomerPopulation
from streams.tools.identity_mix import IdentityMix
from streams.tools.identity_scripts import IdentityScripts
from streams.tools.records import GeneratedEvent
from streams.tools.scripts import ScriptFactory, prepend

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
    "IdentityMix",
    "RetailGenerator",
]

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
        identity: identity traffic (True: the default :class:`IdentityMix`); False keeps the default
            stream, byte for byte. Event ids of identity records are ``identity-<seed>-<counter>``.
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
        identity: IdentityMix | bool = False,
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

        # One RNG drives everything but the per-customer profiles, in a fixed order: the
        # population's rank permutation first, then the stream (lazily, from the first event).
        self._rng = random.Random(seed)
        self._population = CustomerPopulation(
            self._rng, seed=seed, size=customers, zipf_s=zipf_s, prefix=customer_prefix
        )
        self.identity: IdentityMix | None = IdentityMix() if identity is True else identity or None
        self._scripts: ScriptFactory
        if self.identity is None:
            self._scripts = ScriptFactory(self._rng, self._population, seed=seed, anonymous_ratio=anonymous_ratio)
        else:
            self._scripts = IdentityScripts(self._rng, self._population, seed=seed, anonymous_ratio=anonymous_ratio,
                                            mix=self.identity)
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

    def ground_truth(self) -> dict[str, frozenset[str]]:
        """Identity mode: person -> every id key (``schemas.ids.id_key``) the person holds, for the
        people the stream has met so far (the customer id of the population names the person).

        Shared kiosk devices, junk values and visitors without an account belong to nobody; ids a
        person holds may not have appeared in the stream yet.
        """
        if not isinstance(self._scripts, IdentityScripts):
            raise ValueError("ground_truth() needs the identity mode (RetailGenerator(identity=True))")
        return self._scripts.people.ground_truth()

    # -- main loop -----------------------------------------------------------------------------

    def _run(self) -> Iterator[GeneratedEvent]:
        r = self._rng
        rand = r.random
        dumps = orjson.dumps
        _shrink = memoryview
        new_script = self._scripts.new_script
        seed = self.seed
        start, step = self.start_ms, self.step_ms
        bad_ratio = self.bad_ratio
        pool_size = _POOL_SIZE if self.customers >= 4 * _POOL_SIZE else max(2, self.customers // 4)
        pool = [new_script() for _ in range(pool_size)]
        last_slot = -1
        last_key: bytes | None = None
        counter = 0
        while True:
            ts_ms = start + int(counter * step)
            ts: int | str
            if rand() < _RFC3339_RATIO:
                tz = _TZS[int(rand() * len(_TZS))]
                iso = datetime.fromtimestamp(ts_ms / 1000, tz).isoformat(timespec="milliseconds")
                if tz is UTC and rand() < 0.5:
                    iso = iso[:-6] + "Z"
                ts = iso
            else:
                ts = ts_ms
            if bad_ratio and rand() < bad_ratio:
                counter += 1
                yield bad_event(r, self._population, seed=seed, counter=counter, ts=ts)
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
                    pool[slot] = new_script()
                    continue
                if key is not None and key == last_key and deferrals < pool_size:
                    # Same customer twice in a row (heavy users run several scripts at once):
                    # put the step back and let the next slot go first. Bounded, because with
                    # a tiny customer base every slot may belong to the same customer.
                    pool[slot] = prepend((source, key, body), pool[slot])
                    slot = (slot + 1) % pool_size
                    deferrals += 1
                    continue
                break
            counter += 1
            body["event_id"] = f"{source}-{seed}-{counter}"
            body["ts"] = ts
            last_slot, last_key = slot, key
            # Same as records.encode(), inlined for speed.
            yield GeneratedEvent(source, key, _shrink(dumps(body)).tobytes(), True)
