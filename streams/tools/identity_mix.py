"""Who is who in the identity mode of the synthetic retail stream.

:class:`IdentityMix` holds the documented ratios of the identity traffic
(:class:`~streams.tools.generator.RetailGenerator` with ``identity=True``). :class:`People` turns
a customer of the population into a :class:`Person` with typed ids in separate id spaces — a
loyalty card ``m-…`` for store shoppers, an online account ``u-…`` for web and app shoppers, both
for omnichannel ones, hashed contacts and a few devices — and keeps the ground truth: which ids
are one person (docs/identity.md, *Synthetic identity traffic and the match rate*).

Ids are derived from the customer's index alone (the same person has the same card and account
for every seed); everything else (devices, contacts, the CRM link) from ``(seed, index)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields

from schemas.ids import IdType, id_key
from streams.tools.customers import Customer
from streams.tools.rng import SplitMix64

__all__ = ["IdentityMix", "People", "Person", "contact_hash"]

_ID_SPACE = 10**9
# Affine bijections of [0, 10**9) (multipliers coprime to 10): card and account numbers look
# unrelated, and no two people share one.
_MEMBER_AFFINE = (48_271, 13_579)
_USER_AFFINE = (69_621, 24_680)
_DEVICE_COUNTS = (1, 2, 3, 4, 5)
_DEVICE_WEIGHTS = (50.0, 30.0, 12.0, 5.0, 3.0)
_PROFILE_SALT = 0x1D_E7_17_1E_5  # identity profiles draw from their own stream, not the base profile's


def contact_hash(text: str) -> str:
    """SHA-256 hex of a normalised contact (trimmed, lower case): what a till or a shop sends."""
    return hashlib.sha256(text.strip().lower().encode()).hexdigest()


@dataclass(frozen=True)
class IdentityMix:
    """The ratios of the identity traffic (each a probability in [0, 1]).

    Segments come from the customer population: *store* customers (25 %) hold a loyalty card only,
    *online* ones (35 %) an online account only, *omni* ones (40 %) both, as two unrelated ids.
    """

    crm_link: float = 0.61
    """Omni people whose CRM profile links card and account: one ``events.identity`` record from
    ``crm`` (card, account, and the e-mail hash when known) just before their first event."""
    remembered: float = 0.40
    """Web sessions of account holders, not opened by a login, whose device is logged in from the
    first click (every click carries ``user_id`` and ``anonymous_id``)."""
    login_mid_session: float = 0.20
    """Such sessions that start anonymous and log in after 1-4 clicks (a ``login`` click with both
    ids, then both on every click; a shorter session stays anonymous). The rest stay anonymous,
    unless they check out (a login first)."""
    email: float = 0.80
    """People with an e-mail address on file (its hash can appear on orders, tickets, CRM records)."""
    phone: float = 0.30
    """People with a phone number on file."""
    order_email: float = 0.50
    """Orders that carry the account's e-mail hash (of people who have one)."""
    order_phone: float = 0.10
    """Orders that carry the account's phone hash (of people who have one)."""
    till_email: float = 0.30
    """Loyalty tickets that carry the member's e-mail hash (an e-receipt)."""
    walk_in_email: float = 0.25
    """Walk-in tickets (no card shown) by a known person that carry their e-mail hash."""
    kiosk: float = 0.01
    """Web sessions of account holders on a shared in-store kiosk (anonymous id ``kiosk-<n>``),
    where they log in: one device linked to many people, which the graph's caps must stop."""
    kiosks: int = 5
    """Kiosk devices."""
    returning_prospect: float = 0.30
    """Sessions of visitors with no account that come back on a device seen before."""
    junk: float = 0.002
    """Web sessions and orders carrying a junk id (accepted by the source schemas, refused by the
    identity graph with ``junk_id``): a session with ``user_id: "null"`` before its login or with
    ``anonymous_id: "undefined"``; an order whose ``email_sha256`` is the SHA-256 of ``""``."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "kiosks" and not 0.0 <= value <= 1.0:
                raise ValueError(f"IdentityMix.{f.name} must be within [0, 1] (got {value})")
        if self.remembered + self.login_mid_session > 1.0:
            raise ValueError("IdentityMix.remembered + login_mid_session must be at most 1")
        if self.kiosks < 1:
            raise ValueError("IdentityMix.kiosks must be >= 1")


@dataclass(frozen=True, slots=True)
class Person:
    """The ids of one person (None: the person has no such id)."""

    name: str
    """The customer id of the population (``c000123``): the person's name in the ground truth."""
    member_id: str | None
    user_id: str | None
    email_sha256: str | None
    phone_sha256: str | None
    devices: tuple[str, ...]
    """Anonymous ids of the person's browsers and apps (empty without an online account)."""
    crm_linked: bool

    def keys(self) -> frozenset[str]:
        """Every id the person holds, as ``schemas.ids.id_key`` (some may never appear in a stream)."""
        pairs: tuple[tuple[IdType, str | None], ...] = (
            ("member", self.member_id), ("user", self.user_id),
            ("email_sha256", self.email_sha256), ("phone_sha256", self.phone_sha256))
        keys = {id_key(t, v) for t, v in pairs if v is not None}
        keys.update(id_key("anonymous", d) for d in self.devices)
        return frozenset(keys)


class People:
    """The :class:`Person` behind each customer, built on first use; the people met so far."""

    def __init__(self, mix: IdentityMix, *, seed: int, prefix: str) -> None:
        self._mix = mix
        self._seed = seed
        self._prefix = prefix
        self._met: dict[str, Person] = {}

    def meet(self, cust: Customer) -> tuple[Person, bool]:
        """The person behind ``cust``, and whether this is their first appearance."""
        person = self._met.get(cust.cid)
        if person is not None:
            return person, False
        person = self._met[cust.cid] = self._build(cust)
        return person, True

    def ground_truth(self) -> dict[str, frozenset[str]]:
        """Person name -> every id key the person holds, for the people met so far."""
        return {name: person.keys() for name, person in self._met.items()}

    def _build(self, cust: Customer) -> Person:
        idx = int(cust.cid[len(self._prefix):])
        mix = self._mix
        r = SplitMix64((self._seed * 1_000_003 + idx) ^ _PROFILE_SALT)
        card = cust.segment in ("store", "omni")
        account = cust.segment in ("online", "omni")
        n_devices = int(r.weighted(tuple(map(str, _DEVICE_COUNTS)), _DEVICE_WEIGHTS)) if account else 0
        return Person(
            name=cust.cid,
            member_id=f"m-{_affine(idx, _MEMBER_AFFINE):09d}" if card else None,
            user_id=f"u-{_affine(idx, _USER_AFFINE):09d}" if account else None,
            email_sha256=contact_hash(f"customer{idx}@example.com") if r.random() < mix.email else None,
            phone_sha256=contact_hash(f"+1555{idx:07d}") if r.random() < mix.phone else None,
            devices=tuple(f"d-{r.next() >> 16:012x}" for _ in range(n_devices)),
            crm_linked=card and account and r.random() < mix.crm_link,
        )


def _affine(idx: int, affine: tuple[int, int]) -> int:
    mult, add = affine
    return (idx * mult + add) % _ID_SPACE
