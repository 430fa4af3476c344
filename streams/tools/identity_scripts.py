"""The scripts of the identity mode: the default funnels, stamped with the typed ids of a person.

:class:`IdentityScripts` reuses :class:`~streams.tools.scripts.ScriptFactory`'s web session, store
ticket and order flow (the same draws make the same baskets and funnels) and stamps each step with
the ids of the person behind it (:mod:`streams.tools.identity_mix`):

* a web session runs on one of the person's devices (or a shared kiosk) and carries ``user_id``
  from its ``login`` click on, from its first click when the device is remembered, or never;
  checking out always logs in first. Visitors without an account browse on a device of their own,
  new or one seen before;
* a ticket carries the loyalty card (none for a walk-in) and maybe the e-mail hash;
* an order carries the online account and maybe contact hashes;
* an omni person's first appearance may be preceded by a CRM record linking card and account.

A small share of sessions and orders carry a junk id (IdentityMix.junk).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from schemas.identity import IDENTITY_SOURCE
from schemas.ids import is_junk
from streams.tools.catalog import SHOP_URL
from streams.tools.customers import Customer, CustomerPopulation
from streams.tools.identity_mix import IdentityMix, People, Person, contact_hash
from streams.tools.records import Script, Step
from streams.tools.scripts import ScriptFactory, prepend

__all__ = ["JUNK_DEVICE", "JUNK_EMAIL_SHA256", "JUNK_USER", "IdentityScripts"]

JUNK_USER = "null"
"""``user_id`` of the anonymous clicks of a junk session (a client that serialises a missing id)."""
JUNK_DEVICE = "undefined"
"""``anonymous_id`` of a junk session (a client whose storage is blocked)."""
JUNK_EMAIL_SHA256 = contact_hash("")
"""``email_sha256`` of a junk order: the SHA-256 of an empty address."""
_PRIMARY_DEVICE = 0.6  # sessions on a person's first device; the rest on any of them
_MAX_PROSPECT_DEVICES = 10_000  # devices of returning prospects are drawn from the newest ones


@dataclass(frozen=True, slots=True)
class _Visit:
    """How one web session identifies itself."""

    device: str
    user_id: str | None
    """The account that may log in (None: a visitor without one)."""
    remembered: bool
    """Logged in from the first click."""
    login_at: int | None
    """Clicks before an explicit login (None: no login unless the funnel logs in or checks out)."""
    anonymous_user: str | None = None
    """``user_id`` of the clicks before the login: None, or JUNK_USER."""


class IdentityScripts(ScriptFactory):
    """Starts the scripts of the identity mode (see the module docstring); :meth:`new_script` is the
    entry point, :attr:`people` the ground truth."""

    def __init__(self, rng: random.Random, customers: CustomerPopulation, *, seed: int, anonymous_ratio: float,
                 mix: IdentityMix) -> None:
        super().__init__(rng, customers, seed=seed, anonymous_ratio=anonymous_ratio)
        self.mix = mix
        self.people = People(mix, seed=seed, prefix=customers.prefix)
        self._kiosks = tuple(f"kiosk-{i}" for i in range(1, mix.kiosks + 1))
        self._prospects: list[str] = []
        self._prospect_count = 0

    def new_script(self) -> Script:
        """The script of the next person or prospect, after their CRM record on a first appearance."""
        r = self._rng
        if r.random() < self._anonymous_ratio:
            return self._web(None, None)
        cust = self._customers.pick()
        person, first = self.people.meet(cust)
        script = self._script(cust, person, r.random())
        if first and person.crm_linked:
            return prepend(_crm_record(person), script)
        return script

    def _script(self, cust: Customer, person: Person, u: float) -> Script:
        # The segments' shares of tickets, sessions and marketplace orders, as ScriptFactory.new_script.
        if cust.segment == "store":
            return self._ticket(cust, person, walk_in=u < 0.15)
        if cust.segment == "online":
            return self._web(cust, person) if u < 0.85 else self.order_flow(cust, "marketplace", None)
        if u < 0.45:
            return self._ticket(cust, person, walk_in=u < 0.45 * 0.15)
        if u < 0.92:
            return self._web(cust, person)
        return self.order_flow(cust, "marketplace", None)

    # -- orders and tickets ------------------------------------------------------------------------

    def order_flow(self, cust: Customer, channel: str, items: list[dict[str, Any]] | None) -> Script:
        """The default order flow, under the person's online account (a checkout calls it too)."""
        person = self.people.meet(cust)[0]
        assert person.user_id is not None, "only account holders order"
        r, mix = self._rng, self.mix
        contacts: dict[str, str] = {}
        if person.email_sha256 is not None and r.random() < mix.order_email:
            contacts["email_sha256"] = person.email_sha256
        if person.phone_sha256 is not None and r.random() < mix.order_phone:
            contacts["phone_sha256"] = person.phone_sha256
        if r.random() < mix.junk:
            contacts["email_sha256"] = JUNK_EMAIL_SHA256
        return _stamped(super().order_flow(cust, channel, items), "user_id", person.user_id, contacts)

    def _ticket(self, cust: Customer, person: Person, *, walk_in: bool) -> Script:
        """A store ticket: the member's card, or a walk-in (no card) who may leave an e-mail."""
        r = self._rng
        share = self.mix.walk_in_email if walk_in else self.mix.till_email
        contacts: dict[str, str] = {}
        if person.email_sha256 is not None and r.random() < share:
            contacts["email_sha256"] = person.email_sha256
        member = None if walk_in else person.member_id
        return _stamped(self.pos_ticket(None if walk_in else cust), "member_id", member, contacts)

    # -- web sessions ------------------------------------------------------------------------------

    def _web(self, cust: Customer | None, person: Person | None) -> Script:
        return _identified(self.web_session(cust), self._visit(person))

    def _visit(self, person: Person | None) -> _Visit:
        r, mix = self._rng, self.mix
        junk = r.random() < mix.junk
        anonymous_user = JUNK_USER if junk and r.random() < 0.5 else None
        junk_device = junk and anonymous_user is None
        if person is None or person.user_id is None:
            return _Visit(JUNK_DEVICE if junk_device else self._prospect_device(), None, False, None, anonymous_user)
        if r.random() < mix.kiosk:
            return _Visit(r.choice(self._kiosks), person.user_id, False, r.randint(0, 1), anonymous_user)
        device = person.devices[0] if r.random() < _PRIMARY_DEVICE else r.choice(person.devices)
        u = r.random()
        remembered = u < mix.remembered
        login_at = r.randint(1, 4) if not remembered and u < mix.remembered + mix.login_mid_session else None
        return _Visit(JUNK_DEVICE if junk_device else device, person.user_id, remembered, login_at, anonymous_user)

    def _prospect_device(self) -> str:
        r = self._rng
        if self._prospects and r.random() < self.mix.returning_prospect:
            return r.choice(self._prospects)
        self._prospect_count += 1
        device = f"a-{self._seed}-{self._prospect_count}"
        if len(self._prospects) < _MAX_PROSPECT_DEVICES:
            self._prospects.append(device)
        else:
            self._prospects[self._prospect_count % _MAX_PROSPECT_DEVICES] = device
        return device


def _identified(steps: Script, visit: _Visit) -> Iterator[Step]:
    """The clicks of ``steps`` on ``visit.device``, with ``user_id`` from the login on (a login click
    is added where the visit logs in, and before a checkout); other steps (a checkout's order) as
    they are."""
    logged_in = visit.remembered
    clicks = 0
    for source, key, body in steps:
        if source != "clickstream":
            yield source, key, body
            continue
        if body["type"] == "login":  # the funnel's own login, at the start of a session
            logged_in = True
        elif not logged_in and visit.user_id is not None and (
                clicks == visit.login_at or body["type"] == "checkout_start"):
            logged_in = True
            clicks += 1
            yield _login(body["session_id"], visit)
        clicks += 1
        body["user_id"] = visit.user_id if logged_in else visit.anonymous_user
        body["anonymous_id"] = visit.device
        yield source, _key(body["user_id"], visit.device), body


def _login(session_id: str, visit: _Visit) -> Step:
    body = {"event_id": "", "ts": 0, "type": "login", "session_id": session_id, "user_id": visit.user_id,
            "anonymous_id": visit.device, "url": f"{SHOP_URL}/login"}
    return "clickstream", _key(visit.user_id, visit.device), body


def _stamped(steps: Script, field: str, value: str | None, contacts: dict[str, str]) -> Iterator[Step]:
    """``steps`` with ``field`` set to ``value`` and ``contacts`` added, keyed by the first usable id."""
    key = _key(value, *contacts.values())
    for source, _default_key, body in steps:
        body[field] = value
        body.update(contacts)
        yield source, key, body


def _crm_record(person: Person) -> Step:
    """An ``events.identity`` record from ``crm``: card, account and the e-mail hash when known."""
    assert person.member_id is not None and person.user_id is not None
    ids = [{"type": "member", "value": person.member_id}, {"type": "user", "value": person.user_id}]
    if person.email_sha256 is not None:
        ids.append({"type": "email_sha256", "value": person.email_sha256})
    return IDENTITY_SOURCE, person.member_id.encode(), {"event_id": "", "ts": 0, "source": "crm", "ids": ids}


def _key(*values: str | None) -> bytes | None:
    """The Kafka key of an event: its first id that is not junk (None: none)."""
    for value in values:
        if value is not None and not is_junk(value):
            return value.encode()
    return None
