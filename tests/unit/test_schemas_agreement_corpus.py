"""The committed JSON Schemas (schemas/json) accept exactly what ``decode_event`` (and, for
``events.identity``, ``decode_identity``) accepts.

Every record of a corpus (hand-written edge cases, byte-level damage taken from the ideas of
benchmarks/fuzz_kinds.py, a few hundred seeded random mutations of valid events, and hypothesis-made
timestamps) goes through both ``decode_event`` and a Draft 2020-12 ``jsonschema`` validator (with
format checking). The verdicts must be the same, except where KNOWN_EXCEPTIONS explains the
difference; each exception states a precise claim that is checked instead, and is documented in
docs/contracts.md ("What the JSON Schemas cannot say").

The two verdicts and the exceptions are in schemas_agreement_support.py; the schemas themselves,
the reported cases and the hypothesis-made timestamps in test_schemas_agreement_cases.py.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas import (
    CLICK_TYPES,
    IDENTITY_REASONS,
    MAX_ID_CHARS,
    MAX_ITEMS,
    MAX_LABEL_CHARS,
    MAX_QTY,
    MAX_QUERY_CHARS,
    MAX_TS_MS,
    MAX_URL_CHARS,
    MIN_TS_MS,
    ORDER_CHANNELS,
    ORDER_STATUSES,
    POS_TYPES,
)
from schemas.identity import IDENTITY_SOURCE, MAX_LINK_IDS
from schemas.ids import JUNK_HASHES, JUNK_WORDS

from .schemas_agreement_support import (
    ALL,
    EMAIL,
    HASH,
    ITEM,
    KNOWN_EXCEPTIONS,
    MEMBER,
    PARSER_MAX_DEPTH,
    TS_MS,
    VALID,
    Raw,
    _big_ints,  # noqa: F401  (the autouse fixture)
    decoder_verdict,
    dumps,
    explained_by,
    schema_accepts,
)

REPO = Path(__file__).resolve().parents[2]


# -- the corpus --------------------------------------------------------------------------------


def strings(limit: int) -> list[Any]:
    return ["", "a", " ", "\u0000", "x" * limit, "x" * (limit + 1), "é" * limit, "é" * (limit + 1),
            "\U0001f600" * limit, "\U0001f600" * (limit + 1), "line\nbreak"]


OTHER_TYPES: list[Any] = [None, True, False, 0, 1, -1, 1.0, 1.5, "1", [], {}, ["a"], {"a": 1}, 10**30, -0.0,
                          Raw("1e400"), Raw("NaN")]
MONEY: list[Any] = [0, -0.0, 0.01, -0.01, 5, 1e12, 10**12, 10**12 + 1, 1e12 + 0.5, 1e-300, "9.99", Raw("1e400"),
                    Raw("-1e400"), Raw("1E2"), Raw("1.0e+2"), Raw("1" + "0" * 400), Raw("NaN"), Raw("Infinity"),
                    True]
NUMBER: list[Any] = [*MONEY, -1e12, -(10**12), -(10**12) - 1, -5.5]
QTY: list[Any] = [1, 1.0, 2.0, Raw("1e0"), Raw("10E-1"), 1.5, 0, 0.0, -1, MAX_QTY, float(MAX_QTY), MAX_QTY + 1,
                  Raw("1e6"), 1e300, 10**30, Raw("9" * 4300), "1", True, 1.0000000000000002, 0.9999999999999999]
TS: list[Any] = [
    TS_MS, MIN_TS_MS, MIN_TS_MS - 1, MAX_TS_MS, MAX_TS_MS + 1, 1796001968, 1796001968.0, 0, -1, float(TS_MS),
    Raw("1.76985720025e12"), Raw("1769857200250.0"), 1769857200250.5, 1.7e12, Raw("1e400"), 2**63, 2**64,
    "2026-01-31T12:00:00Z", "2026-01-31t12:00:00z", "2026-11-30 01:20:00Z", "2026-11-30 01:20:00+05:30",
    "2026-01-31T12:00:00.123456789Z", "2026-01-31T12:00:00", "2026-01-31", "1900-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z", "2000-12-31T23:59:59.999Z", "2001-01-01T00:00:00Z", "2001-01-01T00:30:00+01:00",
    "2200-12-31T23:59:59.999Z", "2200-12-31T23:00:00-05:00", "2201-01-01T00:00:00Z", "2024-02-29T00:00:00Z",
    "2100-02-29T00:00:00Z", "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-06-30T23:59:60Z",
    "2026-01-31T24:00:00Z", "2026-01-31T12:00:00+24:00", "2026-01-31T12:00:00+0100", "2026-01-31T12:00:00.Z",
    "2026-01-31T12:00:00Z\n", " 2026-01-31T12:00:00Z", "2026-01-31_12:00:00Z", "20260131T120000Z",
    "+2026-01-31T12:00:00Z", "\uff12\uff10\uff12\uff16-01-31T12:00:00Z", "2026-01-31T12:00:00." + "1" * 43 + "Z",
    "2026-01-31T12:00:00." + "1" * 44 + "Z", "1769857200250", "yesterday", "", True, None, [], {},
]
HASHES: list[Any] = [HASH, HASH.upper(), HASH[:32] + HASH[32:].upper(), HASH[:-1], HASH + "0", HASH[:-1] + "g",
                      HASH + "\n", "\n" + HASH[1:], HASH[:-1] + "\u00e9", "a@b.example", "+86 138 0000 1111", "",
                      "0" * 64, JUNK_HASHES[0], JUNK_HASHES[2].upper(), None]
"""Contact hash values: good ones (either case), wrong lengths, non-hex, raw contacts, junk hashes."""
ID_VALUES: list[Any] = [*strings(MAX_ID_CHARS), *JUNK_WORDS, *(w.upper() for w in JUNK_WORDS), " null ", "\tnone\n",
                        "nul", "nulls", "00", "0a", "aaaa", "aaab", "\u00e9\u00e9", "\U0001f600\U0001f600", "a\nb",
                        "\n", "--", "x-1", JUNK_HASHES[1], HASH]
"""Plain id values for identity records: junk words in any case and padding, repeated characters."""
CURRENCY: list[Any] = ["EUR", "eur", "EuR", "EU", "EURO", "EUR\n", "E1R", "\u20acUR", "\u00c9UR", "", 840, None]


def enum_values(values: tuple[str, ...]) -> list[Any]:
    v = values[0]
    return [*values, v.upper(), v + " ", " " + v, v + "\u0000", "", "nope", None, 1, [v]]


def ids_values() -> list[Any]:
    """``ids`` of an identity record: sizes, duplicates, unknown types, missing or extra keys, junk."""
    user = {"type": "user", "value": "u-1"}
    many = [{"type": "anonymous", "value": f"a-{i}"} for i in range(MAX_LINK_IDS + 1)]
    return [[], [MEMBER], [MEMBER, user], [MEMBER, MEMBER], [MEMBER, {**MEMBER}, user], many[:MAX_LINK_IDS],
            many, [MEMBER, EMAIL, {**EMAIL, "value": HASH.upper()}], [MEMBER, {**EMAIL, "value": HASH}, EMAIL],
            [MEMBER, {"type": "fax", "value": "1"}], [MEMBER, {"type": "USER", "value": "u"}],
            [MEMBER, {"value": "u-1"}], [MEMBER, {"type": "user"}], [MEMBER, {**user, "extra": 1}],
            [MEMBER, {"type": None, "value": "u-1"}], [MEMBER, {"type": "user", "value": 7}], [MEMBER, "u-1"],
            [MEMBER, None], [MEMBER, ["user", "u-1"]], {"0": MEMBER, "1": user}, MEMBER]


def id_entry_values(kind: str) -> list[Any]:
    """Values of one ``{type, value}`` of an identity record."""
    return HASHES if kind.endswith("_sha256") else ID_VALUES


def items_values(n_ok: int) -> list[Any]:
    return [[], [ITEM] * n_ok, [ITEM] * MAX_ITEMS, [ITEM] * (MAX_ITEMS + 1), ITEM, [1], [None], "a", None,
            [{k: v for k, v in ITEM.items() if k != "sku"}], [{**ITEM, "extra": {"deep": [1, 2]}}]]


ITEM_FIELDS: dict[str, list[Any]] = {"sku": strings(MAX_ID_CHARS), "category": strings(MAX_LABEL_CHARS),
                                     "qty": QTY, "unit_price": MONEY}
FIELDS: dict[str, dict[str, list[Any]]] = {
    "clickstream": {
        "event_id": strings(MAX_ID_CHARS), "ts": TS, "user_id": [*strings(MAX_ID_CHARS), None],
        "anonymous_id": [*strings(MAX_ID_CHARS), None], "session_id": strings(MAX_ID_CHARS),
        "type": enum_values(CLICK_TYPES), "sku": [*strings(MAX_ID_CHARS), None],
        "category": [*strings(MAX_LABEL_CHARS), None], "price": [*MONEY, None],
        "url": [*strings(MAX_URL_CHARS), None], "query": [*strings(MAX_QUERY_CHARS), None],
        "channel": [*strings(MAX_LABEL_CHARS), None],
    },
    "pos": {
        "event_id": strings(MAX_ID_CHARS), "ts": TS, "store_id": strings(MAX_ID_CHARS),
        "member_id": [*strings(MAX_ID_CHARS), None], "type": enum_values(POS_TYPES), "items": items_values(3),
        "total": NUMBER, "payment_method": strings(MAX_LABEL_CHARS),
    },
    "orders": {
        "event_id": strings(MAX_ID_CHARS), "ts": TS, "order_id": strings(MAX_ID_CHARS),
        "user_id": strings(MAX_ID_CHARS), "status": enum_values(ORDER_STATUSES), "amount": MONEY,
        "currency": CURRENCY, "channel": enum_values(ORDER_CHANNELS), "items": items_values(3),
        "email_sha256": HASHES, "phone_sha256": HASHES,
    },
    "identity": {"event_id": strings(MAX_ID_CHARS), "ts": TS, "source": strings(MAX_LABEL_CHARS), "ids": ids_values()},
}
FIELDS["pos"] |= {"email_sha256": HASHES, "phone_sha256": HASHES}


def hand_written() -> Iterator[tuple[str, str, bytes]]:
    """(id, source, bytes): each field of each source set to each value of its pool, alone."""
    for source, fields in FIELDS.items():
        yield f"{source}-valid", source, dumps(VALID[source])
        for name, pool in fields.items():
            missing = {k: v for k, v in VALID[source].items() if k != name}
            yield f"{source}-{name}-missing", source, dumps(missing)
            for i, value in enumerate([*pool, *OTHER_TYPES]):
                yield f"{source}-{name}-{i}", source, dumps({**VALID[source], name: value})
        if "items" in fields:
            for name, pool in ITEM_FIELDS.items():
                for i, value in enumerate([*pool, *OTHER_TYPES]):
                    doc = {**VALID[source], "items": [ITEM, {**ITEM, name: value}]}
                    yield f"{source}-items.1.{name}-{i}", source, dumps(doc)
    for kind in ("member", "user", "anonymous", "email_sha256", "phone_sha256"):
        for i, value in enumerate([*id_entry_values(kind), *OTHER_TYPES]):
            doc = {**VALID["identity"], "ids": [{"type": "member" if kind != "member" else "user", "value": "x-1"},
                                                {"type": kind, "value": value}]}
            yield f"identity-ids.1.{kind}-{i}", IDENTITY_SOURCE, dumps(doc)
    click = VALID["clickstream"]
    for uid in ("u", None, "", Raw("NaN"), 1, "missing"):
        for aid in ("a", None, "", 1, "missing"):
            doc = {k: v for k, v in click.items() if k not in ("user_id", "anonymous_id")}
            doc |= {k: v for k, v in (("user_id", uid), ("anonymous_id", aid)) if v != "missing"}
            yield f"identity-{uid!r}-{aid!r}", "clickstream", dumps(doc)


def damaged_bytes() -> Iterator[tuple[str, str, bytes]]:
    """Byte-level damage (benchmarks/fuzz_kinds.py's kinds): not JSON, not an object, odd encodings."""
    for source in ALL:
        body = dumps(VALID[source])
        eid = VALID[source]["event_id"].encode()
        cases: dict[str, bytes] = {
            "bom": b"\xef\xbb\xbf" + body, "nul-after": body + b"\x00", "nul-before": b"\x00" + body,
            "ws": b" \t\r\n" + body + b"\n ", "nbsp": b"\xc2\xa0" + body, "twice": body + body,
            "trailing-x": body + b" x", "empty": b"", "spaces": b"   ", "array": b"[" + body + b"]",
            "string": json.dumps(body.decode()).encode(), "null": b"null", "number": b"-1.5e3", "true": b"true",
            "empty-object": b"{}", "truncated": body[: len(body) // 2], "garbage": bytes(range(256)),
            "invalid-utf8-id": body.replace(eid, b"\xff" + eid, 1),
            "invalid-utf8-key": body[:-1] + b',"no\xfete":1}',
            "utf8-surrogate": body[:-1] + b',"x":"\xed\xa0\x80"}',
            "overlong-utf8": body[:-1] + b',"x":"\xc0\xaf"}',
            "lone-surrogate-id": body.replace(eid, b"\\ud800" + eid, 1),
            "lone-surrogate-extra": body[:-1] + b',"x":"\\udc00"}',
            "lone-surrogate-key": body[:-1] + b',"\\ud800":1}',
            "surrogate-pair-id": body.replace(eid, b"\\ud83d\\ude00" + eid, 1),
            "escaped-nul-id": body.replace(eid, eid + b"\\u0000nul", 1),
            "raw-control-char": body.replace(eid, eid + b"\x01", 1),
            "dup-key-bad-last": body[:-1] + b',"event_id":7}',
            "dup-key-good-last": b'{"event_id":7,' + body[1:],
            "dup-key-empty-last": body[:-1] + b',"event_id":"x","event_id":""}',
            "single-quotes": body.replace(b'"event_id"', b"'event_id'", 1),
            "trailing-comma": body[:-1] + b",}",
            "comment": body[:-1] + b"/* c */}",
            "extra-nan": body[:-1] + b',"measure":NaN}',
            "extra-infinity": body[:-1] + b',"measure":Infinity}',
            "extra-neg-infinity": body[:-1] + b',"measure":-Infinity}',
            "extra-1e400": body[:-1] + b',"measure":1e400}',
            "extra-big-int-4300": body[:-1] + b',"measure":' + b"9" * 4300 + b"}",
            "extra-big-int-4301": body[:-1] + b',"measure":' + b"9" * 4301 + b"}",
            "extra-deep-150": body[:-1] + b',"x":' + b"[" * 150 + b"]" * 150 + b"}",
            "extra-deep-199": body[:-1] + b',"x":' + b"[" * 199 + b"1" + b"]" * 199 + b"}",
            "extra-deep-250": body[:-1] + b',"x":' + b"[" * 250 + b"]" * 250 + b"}",
            "extra-deep-5000": body[:-1] + b',"x":' + b"[" * 5000 + b"]" * 5000 + b"}",
            "deep-only": b'{"a":' * 100_000,
            "extra-many": dumps({**VALID[source], **{f"x{n}": {"__proto__": n} for n in range(2000)}}),
            "10mb-event-id": dumps({**VALID[source], "event_id": "x" * 10_000_000}),
            "10mb-ignored": dumps({**VALID[source], "note": "x" * 10_000_000}),
        }
        for name, data in cases.items():
            yield f"{source}-bytes-{name}", source, data


def _mutate(rng: random.Random, source: str) -> Any:
    doc: dict[str, Any] = json.loads(json.dumps(VALID[source]))
    fields = FIELDS[source]
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        if op < 0.55:
            name = rng.choice(list(fields))
            doc[name] = rng.choice(fields[name] if rng.random() < 0.85 else OTHER_TYPES)
        elif op < 0.7 and "items" in fields:
            items = [dict(ITEM) for _ in range(rng.randint(0, 4))]
            if items:
                k = rng.choice(list(ITEM_FIELDS))
                items[rng.randrange(len(items))][k] = rng.choice(ITEM_FIELDS[k])
            doc["items"] = items
        elif op < 0.8:
            doc.pop(rng.choice(list(doc)), None)
        elif op < 0.9:
            doc[rng.choice(["extra", "schema_version", "ts_", "Event_id", ""])] = rng.choice(
                [*OTHER_TYPES, {"nested": [1, {"a": None}]}])
        else:
            name = rng.choice(list(fields))
            doc[name] = rng.choice(OTHER_TYPES)
    return doc


def generated(n_per_source: int = 250, seed: int = 20261130) -> Iterator[tuple[str, str, bytes]]:
    """Seeded random mutations of valid events: 1-3 changes drawn from the pools above."""
    rng = random.Random(seed)
    for i in range(n_per_source):
        for source in ALL:
            yield f"gen-{source}-{i}", source, dumps(_mutate(rng, source))


CORPUS = [*hand_written(), *damaged_bytes(), *generated()]


# -- the tests ---------------------------------------------------------------------------------


def test_corpus_is_big_and_has_both_verdicts() -> None:
    verdicts = [decoder_verdict(src, raw) is None for _, src, raw in CORPUS]
    assert len(CORPUS) > 2000
    assert sum(verdicts) > 150, "too few accepted records to say anything about acceptance"
    assert len(verdicts) - sum(verdicts) > 1000
    reasons: dict[str, set[str | None]] = {src: set() for src in ALL}
    for _, src, raw in CORPUS:
        reasons[src].add(decoder_verdict(src, raw))
    assert all(None in r and len(r) > 2 for r in reasons.values()), reasons
    # Every identity reason, and bad contact hashes on both sources that carry them, are in the corpus.
    assert set(IDENTITY_REASONS) | {"bad_contact_hash"} <= reasons[IDENTITY_SOURCE]
    assert "bad_contact_hash" in reasons["pos"] and "bad_contact_hash" in reasons["orders"]


def test_decoder_and_json_schema_agree_on_the_corpus() -> None:
    disagreements: list[str] = []
    used: dict[str, int] = dict.fromkeys(KNOWN_EXCEPTIONS, 0)
    for case_id, source, raw in CORPUS:
        reason = decoder_verdict(source, raw)
        if (reason is None) == schema_accepts(source, raw):
            continue
        key = explained_by(source, raw, reason)
        if key is None:
            shown = raw[:160].decode("utf-8", "replace")
            disagreements.append(f"{case_id}: decoder {'accepts' if reason is None else 'rejects (' + reason + ')'}, "
                                 f"schema {'rejects' if reason is None else 'accepts'}: {shown}")
        else:
            used[key] += 1
    assert disagreements == [], "\n".join(disagreements[:30])
    # Every allowed exception is real (seen in the corpus), so the list cannot silently grow stale.
    assert all(used.values()), used


def test_known_exceptions_are_documented() -> None:
    doc = (REPO / "docs" / "contracts.md").read_text(encoding="utf-8")
    section = doc.split("### What the JSON Schemas cannot say", 1)[1].split("\n## ", 1)[0]
    assert "NaN" in section and "Infinity" in section
    assert f"{PARSER_MAX_DEPTH} levels" in section
    assert len(KNOWN_EXCEPTIONS) == 2  # adding one means documenting it there too
