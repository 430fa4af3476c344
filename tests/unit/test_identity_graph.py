"""The pure identity graph: canonical-id priority, merges and the state moves they imply, protection
(junk ids, per-type caps, cluster size), compact encoding, and property tests: any arrival order of
the same links gives the same clusters and canonical ids, and following the moves brings every id's
state to its canonical id."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import ID_TYPES, id_key
from streams.engine.identity.graph import REFUSAL_REASONS, GraphLimits, IdentityGraph, Move

T0 = 1_800_000_000_000
EMAIL = "email_sha256:" + hashlib.sha256(b"ana@example.com").hexdigest()
PHONE = "phone_sha256:" + hashlib.sha256(b"+8613800001111").hexdigest()


def test_an_unlinked_id_is_its_own_canonical_id_and_costs_nothing() -> None:
    graph = IdentityGraph()
    assert graph.resolve("user:u-1") == "user:u-1"
    assert graph.members("user:u-1") == {}
    assert len(graph) == 0 and graph.to_json() == []


def test_a_login_brings_the_anonymous_browsing_to_the_account() -> None:
    graph = IdentityGraph()
    result = graph.link(["user:u-1", "anonymous:a-1"], T0)
    assert (result.accepted, result.canonical, result.refused) == (True, "user:u-1", [])
    assert result.moves == [Move("anonymous:a-1", "user:u-1")]
    assert graph.resolve("anonymous:a-1") == "user:u-1"
    assert graph.members("anonymous:a-1") == {"user:u-1": T0, "anonymous:a-1": T0}


@pytest.mark.parametrize(
    ("ids", "canonical"),
    [
        (["anonymous:a1", PHONE, EMAIL, "user:u1", "member:m1"], "member:m1"),
        (["anonymous:a1", PHONE, EMAIL, "user:u1"], "user:u1"),
        (["anonymous:a1", PHONE, EMAIL], EMAIL),
        (["anonymous:a1", PHONE], PHONE),
        (["anonymous:b1", "anonymous:a1"], "anonymous:a1"),  # same type and time: the smaller key
    ],
)
def test_canonical_priority_by_type(ids: list[str], canonical: str) -> None:
    graph = IdentityGraph()
    assert graph.link(ids, T0).canonical == canonical
    assert {graph.resolve(k) for k in ids} == {canonical}


def test_between_ids_of_one_type_the_oldest_first_seen_wins() -> None:
    graph = IdentityGraph()
    graph.link(["member:m-new", "email_sha256:" + "a" * 63 + "b"], T0 + 10)
    result = graph.link(["member:m-old", "email_sha256:" + "a" * 63 + "b"], T0)
    assert result.canonical == "member:m-old"
    assert result.moves == [Move("member:m-new", "member:m-old")]


def test_an_older_link_arriving_late_moves_the_canonical_id() -> None:
    graph = IdentityGraph()
    graph.link(["user:u-2", "user:u-1"], T0 + 100)
    assert graph.resolve("user:u-1") == "user:u-1"  # same time: smaller key
    result = graph.link(["user:u-2", "anonymous:x-1"], T0)  # u-2 was seen earlier than we knew
    assert result.canonical == "user:u-2"
    assert result.moves == [Move("anonymous:x-1", "user:u-2"), Move("user:u-1", "user:u-2")]


def test_two_clusters_merge_and_every_former_canonical_moves() -> None:
    graph = IdentityGraph()
    graph.link(["member:m-1", PHONE], T0)
    graph.link(["user:u-1", "anonymous:a-1"], T0 + 5)
    result = graph.link([PHONE, "anonymous:a-1"], T0 + 9)
    assert result.canonical == "member:m-1"
    assert result.moves == [Move("user:u-1", "member:m-1")]
    assert set(graph.members("anonymous:a-1")) == {"member:m-1", PHONE, "user:u-1", "anonymous:a-1"}


def test_the_same_link_twice_moves_nothing() -> None:
    graph = IdentityGraph()
    first = graph.link(["user:u-1", "anonymous:a-1"], T0)
    again = graph.link(["anonymous:a-1", "user:u-1"], T0 + 1)
    assert first.moves and not again.moves
    assert again.canonical == "user:u-1"
    assert graph.members("user:u-1") == {"user:u-1": T0, "anonymous:a-1": T0}


def test_junk_ids_are_left_out_with_a_reason() -> None:
    graph = IdentityGraph()
    result = graph.link(["user:u-1", "anonymous:null", EMAIL], T0)
    assert result.canonical == "user:u-1"
    assert [(r.reason, r.ids) for r in result.refused] == [("junk_id", ("anonymous:null",))]
    assert graph.resolve("anonymous:null") == "anonymous:null"
    junk_only = graph.link(["user:u-9", "anonymous:0", "member:unknown"], T0)
    assert not junk_only.accepted and [r.reason for r in junk_only.refused] == ["junk_id", "junk_id"]
    assert graph.resolve("user:u-9") == "user:u-9"
    empty_hash = "email_sha256:" + hashlib.sha256(b"").hexdigest()
    assert [r.reason for r in graph.link(["user:u-2", empty_hash], T0).refused] == ["junk_id"]


def test_a_shared_device_cannot_glue_accounts_past_the_cap() -> None:
    graph = IdentityGraph()
    for i in range(3):
        assert graph.link([f"user:u-{i}", "anonymous:kiosk"], T0 + i).accepted
    before = graph.dumps()
    result = graph.link(["user:u-3", "anonymous:kiosk"], T0 + 3)
    assert not result.accepted and not result.moves
    assert [(r.reason, r.ids) for r in result.refused] == [("too_many_user", ("user:u-3", "anonymous:kiosk"))]
    assert "4 user ids (at most 3)" in result.refused[0].detail
    assert graph.dumps() == before  # a refused link changes nothing
    assert graph.resolve("user:u-3") == "user:u-3"


def test_anonymous_ids_are_capped_per_cluster() -> None:
    graph = IdentityGraph()
    for i in range(20):
        assert graph.link(["user:u-1", f"anonymous:a-{i:02d}"], T0).accepted
    result = graph.link(["user:u-1", "anonymous:a-20"], T0)
    assert [r.reason for r in result.refused] == ["too_many_anonymous"]


def test_the_cluster_size_is_capped() -> None:
    graph = IdentityGraph(GraphLimits(max_cluster=4))
    graph.link(["member:m-1", "user:u-1", "anonymous:a-1"], T0)
    graph.link(["member:m-2", "user:u-2"], T0)
    result = graph.link(["user:u-1", "user:u-2"], T0)
    assert [r.reason for r in result.refused] == ["cluster_too_large"]
    assert "5 ids (at most 4)" in result.refused[0].detail
    assert graph.resolve("user:u-2") == "member:m-2"


def test_refusal_reasons_are_a_fixed_set() -> None:
    assert REFUSAL_REASONS == ("junk_id", "too_many_member", "too_many_user", "too_many_email_sha256",
                               "too_many_phone_sha256", "too_many_anonymous", "cluster_too_large", "erased")


def test_a_malformed_id_key_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="not an id key"):
        IdentityGraph().link(["u-1", "anonymous:a"], T0)


def test_encoding_is_compact_canonical_and_round_trips() -> None:
    graph = IdentityGraph()
    graph.link(["anonymous:a-1", "user:u-1"], T0)
    graph.link(["member:m-1", PHONE], T0 + 1)
    assert graph.to_json() == [["member:m-1", T0 + 1, PHONE, T0 + 1], ["anonymous:a-1", T0, "user:u-1", T0]]
    back = IdentityGraph.loads(graph.dumps())
    assert back.dumps() == graph.dumps()
    assert back.resolve(PHONE) == "member:m-1" and back.resolve("anonymous:a-1") == "user:u-1"
    assert back.link(["user:u-1", "member:m-1"], T0 + 2).moves == [Move("user:u-1", "member:m-1")]


# -- properties --------------------------------------------------------------------------------

_KEYS = [id_key(t, f"{t[0]}{i}" if not t.endswith("sha256") else f"{i:064x}") for t in ID_TYPES for i in range(1, 4)]
_links = st.lists(st.tuples(st.lists(st.sampled_from(_KEYS), min_size=2, max_size=4, unique=True),
                            st.integers(min_value=0, max_value=5).map(lambda n: T0 + n * 1000)),
                  min_size=1, max_size=12)
_ROOMY = GraphLimits(per_type=dict.fromkeys(ID_TYPES, 100), max_cluster=100)


def _components(links: list[tuple[list[str], int]]) -> set[frozenset[str]]:
    """Reference: connected components by plain fix-point iteration."""
    groups: list[set[str]] = []
    for ids, _ in links:
        joined = set(ids)
        for g in [g for g in groups if g & joined]:
            joined |= g
            groups.remove(g)
        groups.append(joined)
    return {frozenset(g) for g in groups}


@settings(max_examples=300, deadline=None)
@given(links=_links, data=st.data())
def test_any_arrival_order_gives_the_same_clusters_and_canonical_ids(links: list[tuple[list[str], int]],
                                                                     data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(links))
    a, b = IdentityGraph(_ROOMY), IdentityGraph(_ROOMY)
    for ids, ts in links:
        a.link(ids, ts)
    for ids, ts in shuffled:
        b.link(list(reversed(ids)), ts)
    assert a.dumps() == b.dumps()
    assert {frozenset(c.members) for c in a.clusters()} == _components(links)
    for cluster in a.clusters():  # the documented priority, from first principles
        firsts = {k: min(ts for ids, ts in links if k in ids) for k in cluster.members}
        assert cluster.members == firsts
        assert cluster.canonical == min(firsts, key=lambda k: (ID_TYPES.index(k.split(":")[0]), firsts[k], k))


@settings(max_examples=300, deadline=None)
@given(links=_links, small=st.booleans())
def test_following_the_moves_brings_every_ids_state_to_its_canonical_id(links: list[tuple[list[str], int]],
                                                                        small: bool) -> None:
    """Each id starts holding its own state; applying every Move (absorbed -> survivor) in order must
    leave each id's state at ``resolve(id)``, and nothing at an id that is no longer canonical."""
    graph = IdentityGraph(GraphLimits(max_cluster=4) if small else _ROOMY)
    holder: dict[str, set[str]] = {k: {k} for k in _KEYS}
    for ids, ts in links:
        before = graph.dumps()
        result = graph.link(ids, ts)
        if not result.accepted:
            assert graph.dumps() == before and result.refused and not result.moves
        for move in result.moves:
            assert move.absorbed != move.survivor and holder[move.absorbed]
            holder[move.survivor] |= holder.pop(move.absorbed)
            holder[move.absorbed] = set()
    for key in _KEYS:
        assert key in holder[graph.resolve(key)]
    for cluster in graph.clusters():
        assert len(cluster.members) <= (4 if small else 100)
        assert all(graph.resolve(k) == cluster.canonical for k in cluster.members)


@settings(max_examples=200, deadline=None)
@given(links=_links)
def test_caps_hold_whatever_the_order(links: list[tuple[list[str], int]]) -> None:
    limits = GraphLimits(per_type={"member": 1, "user": 2, "email_sha256": 1, "phone_sha256": 1, "anonymous": 2},
                         max_cluster=5)
    graph = IdentityGraph(limits)
    refused: list[Any] = []
    for ids, ts in links:
        refused += graph.link(ids, ts).refused
    for cluster in graph.clusters():
        assert len(cluster.members) <= 5
        for t in ID_TYPES:
            assert sum(k.startswith(t + ":") for k in cluster.members) <= limits.per_type[t]
    assert all(r.reason in REFUSAL_REASONS for r in refused)


def test_forget_removes_the_whole_cluster() -> None:
    g = IdentityGraph()
    g.link(["user:u-1", "anonymous:a-1"], T0)
    g.link(["member:m-1", "user:u-1"], T0 + 1)
    assert g.forget("anonymous:a-1") == {"user:u-1": T0, "anonymous:a-1": T0, "member:m-1": T0 + 1}
    assert len(g) == 0 and g.resolve("user:u-1") == "user:u-1"
    assert g.forget("user:z-1") == {"user:z-1": 0}


@settings(max_examples=300, deadline=None)
@given(links=_links, probe=st.tuples(st.lists(st.sampled_from(_KEYS), min_size=1, max_size=4, unique=True),
                                     st.integers(min_value=0, max_value=5).map(lambda n: T0 + n * 1000)))
def test_holds_is_true_exactly_when_a_link_changes_nothing(links: list[tuple[list[str], int]],
                                                           probe: tuple[list[str], int]) -> None:
    """The identity stage answers a repeated link with ``holds`` instead of ``link``: never for a
    link that would move, add or re-date an id, always for one of ids already together and dated."""
    graph = IdentityGraph(_ROOMY)
    for ids, ts in links:
        graph.link(ids, ts)
    before = graph.dumps()
    ids, ts = probe
    together = graph.members(ids[0])
    expected = all(k in together and together[k] <= ts for k in ids)
    held = graph.holds(ids, ts)
    assert held == expected
    result = graph.link(ids, ts)
    if held:
        assert graph.dumps() == before and not result.moves and not result.refused
