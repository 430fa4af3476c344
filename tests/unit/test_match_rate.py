"""streams/tools/match_rate.py: the match rate before and after identity resolution, on a hand-made
stream with a known answer and on the generator's identity mode."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from schemas.ids import id_key
from streams.engine.identity.graph import GraphLimits
from streams.tools.generator import IdentityMix, RetailGenerator
from streams.tools.identity_mix import contact_hash
from streams.tools.match_rate import MatchReport, decode_stream, main, measure_events, render
from streams.tools.records import GeneratedEvent

START_MS = 1_767_225_600_000
EMAIL = contact_hash("ann@example.com")
_ITEMS = [{"sku": "GRO-001", "category": "grocery", "qty": 1, "unit_price": 2.5}]


_IDS = itertools.count()


def _ev(topic_source: str, **body: Any) -> GeneratedEvent:
    body = {"event_id": f"{topic_source}-{next(_IDS)}", "ts": START_MS, **body}
    return GeneratedEvent(topic_source, None, orjson.dumps(body), True)


def _click(anon: str, user: str | None = None, type_: str = "page_view") -> GeneratedEvent:
    return _ev("clickstream", type=type_, session_id="s", user_id=user, anonymous_id=anon)


def _ticket(member: str | None, **contacts: str) -> GeneratedEvent:
    return _ev("pos", store_id="s01", member_id=member, type="sale", items=_ITEMS, total=2.5,
               payment_method="card", **contacts)


def _order(user: str, **contacts: str) -> GeneratedEvent:
    return _ev("orders", order_id="o1", user_id=user, status="paid", amount=2.5, currency="USD", channel="web",
               items=_ITEMS, **contacts)


def _crm(*ids: tuple[str, str]) -> GeneratedEvent:
    return _ev("identity", source="crm", ids=[{"type": t, "value": v} for t, v in ids])


def _measure(events: list[GeneratedEvent], **kw: Any) -> MatchReport:
    report = measure_events(events, **kw)
    assert report.undecodable == 0
    return report


ANN = {id_key("anonymous", "d1"), id_key("user", "u1"), id_key("member", "m1"), id_key("email_sha256", EMAIL)}


def test_a_tiny_stream_with_a_known_answer() -> None:
    events = [
        _click("d1"),                      # anonymous: Ann's phone, before she logs in
        _click("d1", "u1", "login"),       # link d1 - u1
        _ticket("m1"),                     # Ann's card: no account on it
        _crm(("member", "m1"), ("user", "u1")),
        _ticket(None, email_sha256=EMAIL),  # a walk-in leaving Ann's e-mail
        _order("u1", email_sha256=EMAIL),  # link u1 - e-mail
        _click("d2"),                      # a prospect: nobody, before or after
        _click("d3", "null"),              # junk user id: refused, d3 stays anonymous
        _ticket("m2"),                     # a card nobody linked
    ]
    report = _measure(events, truth={"ann": ANN, "bob": {id_key("member", "m2"), id_key("anonymous", "d9")}})
    assert (report.before["all"].hits, report.before["all"].total) == (4, 8)
    assert (report.after["all"].hits, report.after["all"].total) == (6, 8)
    assert (report.before["clickstream"].hits, report.after["clickstream"].hits) == (1, 2)
    assert (report.before["pos"].hits, report.after["pos"].hits) == (2, 3)
    assert report.after["orders"].rate == report.before["orders"].rate == 1.0
    assert (report.pos_online_before.hits, report.pos_online_before.total) == (0, 2)
    assert (report.pos_online_after.hits, report.pos_online_after.total) == (1, 2)
    assert (report.pos_online_possible.hits, report.pos_online_possible.total) == (1, 1)
    assert report.identity_records == 1
    assert report.links == 4  # the login, the CRM record, the order, the junk click
    assert (report.clusters, dict(report.cluster_sizes)) == (1, {4: 1})
    assert dict(report.refused) == {"junk_id": 1}
    assert report.truth is not None
    assert (report.truth.people, report.truth.one_cluster, report.truth.mixed_clusters) == (1, 1, 0)


def test_a_kiosk_is_stopped_by_the_cap_and_counted() -> None:
    events = [_click("kiosk-1", f"u{i}", "login") for i in range(5)]
    truth = {f"p{i}": {id_key("user", f"u{i}")} for i in range(5)}
    report = _measure(events, truth=truth)
    assert dict(report.refused) == {"too_many_user": 2}  # 3 accounts per cluster at most
    assert (report.clusters, dict(report.cluster_sizes)) == (1, {4: 1})
    assert report.truth is not None and report.truth.mixed_clusters == 1
    tight = _measure(events, limits=GraphLimits(per_type={"user": 1}))
    assert dict(tight.refused) == {"too_many_user": 4}


def test_undecodable_events_are_left_out() -> None:
    records, rejected = decode_stream([_click("d1"), GeneratedEvent("pos", None, b"{", False, "invalid_json"),
                                       _ev("identity", source="crm", ids=[{"type": "user", "value": "null"},
                                                                         {"type": "user", "value": "u1"}])])
    assert rejected == 2 and len(records) == 1


@pytest.fixture(scope="module")
def generated() -> tuple[MatchReport, RetailGenerator]:
    gen = RetailGenerator(seed=3, customers=3000, start_ms=START_MS, identity=True)
    report = measure_events(gen.take(40_000), truth=gen.ground_truth())
    assert report.undecodable == 0
    return report, gen


def test_resolution_raises_the_match_rate_of_generated_traffic(generated: tuple[MatchReport, RetailGenerator]) -> None:
    report = generated[0]
    assert report.after["all"].rate > report.before["all"].rate + 0.1
    assert report.after["clickstream"].rate > report.before["clickstream"].rate + 0.1
    assert report.after["pos"].rate > report.before["pos"].rate  # walk-ins who left an e-mail
    assert report.before["orders"].rate == report.after["orders"].rate == 1.0
    assert report.pos_online_before.rate == 0.0
    # At least the CRM links: the configured share of omni people, more through e-mail hashes.
    assert report.pos_online_possible.rate > IdentityMix().crm_link
    assert {"junk_id", "too_many_user"} <= set(report.refused)
    assert report.truth is not None and report.truth.one_cluster > 0.7 * report.truth.people
    assert report.truth.mixed_clusters < 0.01 * report.clusters  # the kiosks glue few people


def test_render_and_main(generated: tuple[MatchReport, RetailGenerator], capsys: pytest.CaptureFixture[str]) -> None:
    text = render(generated[0], "title")
    assert text.splitlines()[0] == "title"
    for label in ("events attributed to a customer", "  clickstream", "POS tickets with a card linked online",
                  "refused: junk_id", "ground truth:"):
        assert label in text
    assert main(["--events", "3000", "--seed", "2", "--customers", "500"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("match rate: 3,000 generated events, seed 2, 500 customers")
    assert "before" in out and "after" in out
