"""Rule-test fixtures (``tagstream rules test``): a YAML file of cases -> timed canonical events
and expectations, every problem reported as ``file:line:col`` (docs/rules.md, *Testing rules*).

Events may be written in full (the source topic's JSON fields) or in a compact form that this
loader completes (ids, the customer, a POS ticket's items ...). Either way each one is encoded
to JSON and passed through the real decoder and canonical conversion (``schemas.decode`` and
``schemas.canonical``, as the worker's ingest does), so a fixture cannot drift from the contract.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from schemas.canonical import to_canonical
from schemas.decode import EventDecodeError, decode_event
from schemas.events import SOURCES
from tag_rules import RuleError, RuleSetError
from tag_rules.loader import FIXTURE_SUFFIXES, load_yaml
from tag_rules.positions import value_pos

DEFAULT_ORIGIN_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z: the instant ``at: 0s`` stands for unless a file gives ``origin``."""
MAX_AT_MS = 3650 * 86_400_000
MAX_REPEAT = 10_000

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PART = re.compile(r"(\d{1,12})(ms|s|m|h|d|w)", re.ASCII)
_FIELD = re.compile(r"field '([a-z_]+)[.']")
_AT = re.compile(r"(?:\d{1,12}(?:ms|s|m|h|d|w))+", re.ASCII)

FILE_KEYS = {"origin", "description", "cases"}
CASE_KEYS = {"name", "customer", "description", "events", "expect"}
EXPECT_KEYS = {"at", "tags", "absent", "features", "description"}
EVENT_META = {"at", "repeat", "every", "source"}


@dataclass(frozen=True)
class FixtureEvent:
    at_ms: int
    """Relative to the origin: when the event is processed (and happens, unless ``ts`` says otherwise:
    ``ts: 23h`` is relative to the origin too, an RFC 3339 instant or epoch ms absolute)."""
    event: dict[str, Any]
    """The canonical event."""
    line: int | None


@dataclass(frozen=True)
class Expectation:
    at_ms: int
    line: int | None
    tags: tuple[str, ...] = ()
    """Tags the customer must hold at ``at_ms``."""
    absent: tuple[str, ...] = ()
    """Tags the customer must not hold."""
    features: dict[str, Any] = field(default_factory=dict)
    """Feature values the customer must have (floats compared to 1e-9)."""


@dataclass(frozen=True)
class Case:
    name: str
    customer: str
    line: int | None
    events: list[FixtureEvent]
    expects: list[Expectation]


@dataclass(frozen=True)
class Fixtures:
    file: str
    origin_ms: int
    cases: list[Case]


def load_fixtures(path: str | Path) -> tuple[Fixtures, list[RuleError]]:
    """Reads and validates a fixtures file: the cases that could be read, and every problem."""
    try:
        doc, _ = load_yaml(Path(path))
    except RuleSetError as exc:
        return Fixtures(str(path), DEFAULT_ORIGIN_MS, []), exc.errors
    reader = _Reader(str(path))
    fixtures = reader.read(doc)
    return fixtures, reader.errors


def fixtures_for(rules_path: str | Path) -> list[Path]:
    """The fixtures of a rule set: ``X.tests.yaml`` next to rule file ``X.yaml``, or every
    ``*.tests.yaml`` in a rule folder."""
    p = Path(rules_path)
    if p.is_dir():
        return sorted(f for suffix in FIXTURE_SUFFIXES for f in p.glob("*" + suffix))
    stem = p.name.rsplit(".", 1)[0]
    return [f for suffix in FIXTURE_SUFFIXES if (f := p.with_name(stem + suffix)).is_file()]


def parse_at_ms(value: object) -> int:
    """``"1h30m"``, ``"90s"``, ``"0s"`` -> milliseconds; raises ValueError otherwise."""
    if not isinstance(value, str) or not _AT.fullmatch(value.strip()):
        raise ValueError(f"expected a duration from the origin such as 0s, 90s or 1h30m, not {value!r}")
    ms = sum(int(n) * _UNIT_MS[u] for n, u in _PART.findall(value))
    if ms > MAX_AT_MS:
        raise ValueError(f"{value} is beyond 3650d")
    return ms


def format_at(ms: int) -> str:
    """Milliseconds from the origin as the fixture writes them: 3_720_000 -> "1h2m"."""
    if ms == 0:
        return "0s"
    out = ""
    for unit in ("d", "h", "m", "s", "ms"):
        n, ms = divmod(ms, _UNIT_MS[unit])
        out += f"{n}{unit}" if n else ""
    return out


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[RuleError] = []
        self.case = ""

    def error(self, message: str, raw: Any, key: str | None = None) -> None:
        line = getattr(raw, "line", None)
        col = None
        if key is not None:
            line, col = value_pos(raw, key, line)
        self.errors.append(RuleError(self.file, message, self.case or None, line, col))

    def read(self, doc: Any) -> Fixtures:
        if not isinstance(doc, Mapping) or not isinstance(doc.get("cases"), list):
            self.error("a fixtures file is a mapping with a list of 'cases' (docs/rules.md, Testing rules)", doc)
            return Fixtures(self.file, DEFAULT_ORIGIN_MS, [])
        self.unknown_keys(doc, FILE_KEYS)
        origin_ms = self.origin(doc)
        cases = []
        for i, raw in enumerate(doc["cases"]):
            self.case = f"case #{i + 1}"
            case = self.read_case(raw, i, origin_ms)
            if case is not None:
                cases.append(case)
        self.case = ""
        if not doc["cases"]:
            self.error("no cases", doc, "cases")
        return Fixtures(self.file, origin_ms, cases)

    def unknown_keys(self, raw: Mapping[str, Any], known: set[str]) -> None:
        for key in raw:
            if key not in known:
                self.error(f"{key}: unknown key (expected one of {', '.join(sorted(known))})", raw, str(key))

    def origin(self, doc: Mapping[str, Any]) -> int:
        value = doc.get("origin")
        if value is None:
            return DEFAULT_ORIGIN_MS
        try:
            if isinstance(value, dt.datetime):
                stamp = value
            elif isinstance(value, str):
                stamp = dt.datetime.fromisoformat(value)
            else:
                raise ValueError
        except ValueError:
            self.error(f"origin: expected an RFC 3339 instant such as 2026-01-01T00:00:00Z, not {value!r}",
                       doc, "origin")
            return DEFAULT_ORIGIN_MS
        stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
        return int(stamp.timestamp() * 1000)

    def read_case(self, raw: Any, index: int, origin_ms: int) -> Case | None:
        if not isinstance(raw, Mapping):
            self.error("a case is a mapping with name, customer, events and expect", raw)
            return None
        self.unknown_keys(raw, CASE_KEYS)
        name, customer = raw.get("name"), raw.get("customer")
        if isinstance(name, str) and name:
            self.case = f"case '{name}'"
        else:
            self.error("name: a case needs a name (text)", raw, "name" if "name" in raw else None)
        if not (isinstance(customer, str) and customer):
            self.error("customer: a case needs a customer id (text)", raw, "customer" if "customer" in raw else None)
            return None
        events: list[FixtureEvent] = []
        raw_events = raw.get("events", [])
        if not isinstance(raw_events, list):
            self.error("events: expected a list of events", raw, "events")
            raw_events = []
        for j, ev in enumerate(raw_events):
            events += self.read_event(ev, f"{index + 1}.{j + 1}", customer, origin_ms)
        raw_expects = raw.get("expect")
        if not isinstance(raw_expects, list) or not raw_expects:
            self.error("expect: a case needs a list of expectations", raw, "expect" if "expect" in raw else None)
            raw_expects = []
        expects = [e for e in (self.read_expect(x) for x in raw_expects) if e is not None]
        return Case(str(name), customer, getattr(raw, "line", None), events, expects)

    def at(self, raw: Mapping[str, Any], key: str = "at") -> int | None:
        if key not in raw:
            self.error(f"{key}: missing (a duration from the origin, e.g. 0s or 1h30m)", raw)
            return None
        try:
            return parse_at_ms(raw[key])
        except ValueError as exc:
            self.error(f"{key}: {exc}", raw, key)
            return None

    def read_event(self, raw: Any, event_id: str, customer: str, origin_ms: int) -> list[FixtureEvent]:
        if not isinstance(raw, Mapping):
            self.error("an event is a mapping with at, source and the event's fields", raw)
            return []
        at_ms = self.at(raw)
        source = raw.get("source")
        if source not in SOURCES:
            self.error(f"source: expected one of {', '.join(SOURCES)}, not {source!r}", raw,
                       "source" if "source" in raw else None)
            return []
        repeat, every_ms = raw.get("repeat", 1), 1000
        if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= MAX_REPEAT:
            self.error(f"repeat: expected a whole number from 1 to {MAX_REPEAT}", raw, "repeat")
            return []
        if "every" in raw:
            every = self.at(raw, "every")
            if every is None:
                return []
            every_ms = every
        if at_ms is None:
            return []
        reported = len(self.errors)
        ts_ms = self.relative_ts(raw)
        if len(self.errors) > reported:
            return []
        out = []
        for k in range(repeat):
            at_k = at_ms + k * every_ms
            body = {key: v for key, v in raw.items() if key not in EVENT_META}
            if ts_ms is not None:  # happened at `ts`, processed at `at`: a late (or early) event
                body["ts"] = origin_ms + ts_ms + k * every_ms
            eid = f"{event_id}.{k + 1}" if repeat > 1 else event_id
            canonical = self.decode(raw, str(source), complete(str(source), body, customer, eid, origin_ms + at_k),
                                    origin_ms + at_k, customer)
            if canonical is None:
                return []
            out.append(FixtureEvent(at_k, canonical, getattr(raw, "line", None)))
        return out

    def relative_ts(self, raw: Mapping[str, Any]) -> int | None:
        """``ts: 23h`` (a duration from the origin, like ``at``): its ms; None when ``ts`` is absent
        or absolute (RFC 3339, epoch ms: the decoder reads it) or wrong (then an error is reported)."""
        value = raw.get("ts")
        if not (isinstance(value, str) and value.strip() and value.strip()[-1].isalpha() and "T" not in value):
            return None
        try:
            return parse_at_ms(value)
        except ValueError as exc:
            self.error(f"ts: {exc} (or an RFC 3339 instant)", raw, "ts")
            return None

    def decode(self, raw: Mapping[str, Any], source: str, body: dict[str, Any], src_ts_ms: int,
               customer: str) -> dict[str, Any] | None:
        try:
            value = orjson.dumps(body)
        except (TypeError, orjson.JSONEncodeError) as exc:
            self.error(f"event: cannot be written as JSON: {exc}", raw)
            return None
        try:
            canonical = to_canonical(source, decode_event(source, value), src_ts_ms)
        except EventDecodeError as exc:
            named = _FIELD.match(exc.message)  # "field 'type': ..." points at that key when it was written
            key = named.group(1) if named and named.group(1) in raw else None
            self.error(f"{source} event rejected by the decoder ({exc.reason}): {exc.message}", raw, key)
            return None
        if canonical["customer_id"] != customer:
            self.error(f"event: its customer is {canonical['customer_id']!r}, not the case's {customer!r}", raw)
            return None
        return canonical

    def read_expect(self, raw: Any) -> Expectation | None:
        if not isinstance(raw, Mapping):
            self.error("an expectation is a mapping with at and tags, absent and/or features", raw)
            return None
        self.unknown_keys(raw, EXPECT_KEYS)
        at_ms = self.at(raw)
        lists = {}
        for key in ("tags", "absent"):
            value = raw.get(key, [])
            value = [value] if isinstance(value, str) else value
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                self.error(f"{key}: expected a list of tag names", raw, key)
                value = []
            lists[key] = tuple(value)
        features = raw.get("features", {})
        if not isinstance(features, Mapping):
            self.error("features: expected a mapping of feature name to value", raw, "features")
            features = {}
        if not (lists["tags"] or lists["absent"] or features):
            self.error("an expectation needs tags, absent or features", raw)
        if at_ms is None:
            return None
        return Expectation(at_ms, getattr(raw, "line", None), lists["tags"], lists["absent"], dict(features))


def complete(source: str, body: dict[str, Any], customer: str, event_id: str, ts_ms: int) -> dict[str, Any]:
    """Fills in what a compact fixture event leaves out: ids, ``ts``, the customer, and for POS
    tickets and orders the line items (one per ``category``, sharing ``amount``)."""
    ev = dict(body)
    ev.setdefault("event_id", event_id)
    ev.setdefault("ts", ts_ms)
    if source == "clickstream":
        if "user_id" not in ev and "anonymous_id" not in ev:
            ev["user_id"] = customer
        ev.setdefault("session_id", f"s-{customer}")
        return ev
    categories = ev.pop("categories", None) or [ev.pop("category", None) or "general"]
    ev.pop("category", None)
    if source == "pos":
        ev.setdefault("member_id", customer)
        ev.setdefault("store_id", "store-1")
        ev.setdefault("payment_method", "card")
        if "amount" in ev:
            ev.setdefault("total", ev.pop("amount"))
        total = ev.get("total")
    else:
        ev.setdefault("user_id", customer)
        ev.setdefault("order_id", f"o-{event_id}")
        ev.setdefault("currency", "EUR")
        ev.setdefault("channel", "web")
        if "type" in ev and "status" not in ev:
            ev["status"] = ev.pop("type")
        total = ev.get("amount")
    if "items" not in ev and isinstance(categories, list):
        price = abs(total) / len(categories) if isinstance(total, int | float) and categories else 0
        ev["items"] = [{"sku": f"sku-{i + 1}", "category": c, "qty": 1, "unit_price": price}
                       for i, c in enumerate(categories)]
    return ev
