"""The identity graph, pure: clusters of typed ids joined by links, one canonical id per cluster.

A *link* says "these ids are one person": a login click with ``user_id`` and ``anonymous_id``, an
order or POS ticket with a contact hash and a member/user id, an ``events.identity`` record. The
graph keeps the clusters (connected components of the accepted links) and, for each id, the
first time a link named it. No Kafka, no Redis, no clock: the caller passes the link's event time.

Canonical id (docs/identity.md, *Canonical id*): the member with the smallest key
``(type rank, first_seen_ms, id key)`` where the rank is member < user < email_sha256 <
phone_sha256 < anonymous (``schemas.ID_TYPES`` order). It depends only on the set of accepted
links, never on their arrival order (tests/unit/test_identity_graph.py proves it with hypothesis).

Protection: a junk id (``schemas.is_junk``) is left out of the link with reason ``junk_id``; a link
whose resulting cluster would hold more ids of a type than ``GraphLimits.per_type`` allows
(``too_many_<type>``) or more ids than ``GraphLimits.max_cluster`` (``cluster_too_large``) is
refused whole, and nothing changes. Refusals are returned, never silent: the caller counts them and
dead-letters the record. Which of several competing links is refused depends on arrival order
(first come, first kept): a cluster is never split once merged state depends on it.

Only ids that belong to a cluster of two or more are stored: an id nobody linked is its own
canonical id and costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import orjson

from schemas.ids import ID_TYPES, IdType, is_junk, parse_id_key

TYPE_RANK: Final[Mapping[str, int]] = MappingProxyType({t: i for i, t in enumerate(ID_TYPES)})
"""Canonical-id priority of each id type: member 0, user 1, email_sha256 2, phone_sha256 3, anonymous 4."""

DEFAULT_PER_TYPE: Final[Mapping[IdType, int]] = MappingProxyType(
    {"member": 3, "user": 3, "email_sha256": 5, "phone_sha256": 3, "anonymous": 20})

REFUSAL_REASONS: Final[tuple[str, ...]] = ("junk_id", *(f"too_many_{t}" for t in ID_TYPES), "cluster_too_large",
                                           "erased")
"""Every ``Refusal.reason`` (a fixed set: fit for a metric label and the ``ts.reason`` DLQ header)."""


@dataclass(frozen=True)
class GraphLimits:
    """Caps that keep one shared device or a test account from gluing thousands of people together."""

    per_type: Mapping[IdType, int] = field(default_factory=lambda: DEFAULT_PER_TYPE)
    """Most ids of each type in one cluster (a person has a few cards and accounts, a few dozen cookies)."""
    max_cluster: int = 30
    """Most ids in one cluster, all types together."""


@dataclass(frozen=True)
class Refusal:
    """Part of a link (``junk_id``: one id) or all of it (a cap) that the graph did not apply."""

    reason: str
    """One of REFUSAL_REASONS."""
    ids: tuple[str, ...]
    detail: str


@dataclass(frozen=True)
class Move:
    """The state kept under canonical id ``absorbed`` now belongs to ``survivor`` (a merge, or the
    canonical id of one cluster changing because an older link arrived)."""

    absorbed: str
    survivor: str


@dataclass
class LinkResult:
    """What one link did."""

    canonical: str | None = None
    """The canonical id of the cluster holding the link's ids (None when the link was refused or
    had fewer than two usable ids)."""
    moves: list[Move] = field(default_factory=list)
    """Every former canonical id whose state must move, with where to (none: nothing to move)."""
    refused: list[Refusal] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.canonical is not None


def canonical_order(key: str, first_seen_ms: int) -> tuple[int, int, str]:
    """Sort key of a cluster member: the smallest is the canonical id."""
    return TYPE_RANK[parse_id_key(key)[0]], first_seen_ms, key


class Cluster:
    """The ids of one person, each with the event time of the first link that named it."""

    __slots__ = ("canonical", "members")

    def __init__(self, members: dict[str, int]) -> None:
        self.members = members
        """id key -> first_seen_ms."""
        self.canonical = min(members, key=lambda k: canonical_order(k, members[k]))


class IdentityGraph:
    """Clusters of linked ids with caps; see the module docstring."""

    def __init__(self, limits: GraphLimits | None = None) -> None:
        self.limits = limits or GraphLimits()
        self._cluster_of: dict[str, Cluster] = {}

    # -- reading -----------------------------------------------------------------------------

    def resolve(self, key: str) -> str:
        """The canonical id of ``key`` (itself when no link names it)."""
        cluster = self._cluster_of.get(key)
        return key if cluster is None else cluster.canonical

    def holds(self, ids: Sequence[str], ts_ms: int) -> bool:
        """True when a link of ``ids`` at ``ts_ms`` would change nothing: all of them in one cluster
        already, each first seen no later (a repeated login: the common case, answered without
        building the merged cluster)."""
        if not ids:
            return False
        cluster = self._cluster_of.get(ids[0])
        if cluster is None:
            return False
        members = cluster.members
        return all(self._cluster_of.get(key) is cluster and members[key] <= ts_ms for key in ids)

    def members(self, key: str) -> dict[str, int]:
        """The cluster of ``key``: id -> first_seen_ms (``{}`` when no link names it)."""
        cluster = self._cluster_of.get(key)
        return {} if cluster is None else dict(cluster.members)

    def clusters(self) -> Iterator[Cluster]:
        """Every cluster once, by canonical id."""
        seen: dict[str, Cluster] = {c.canonical: c for c in self._cluster_of.values()}
        return iter([seen[k] for k in sorted(seen)])

    def __len__(self) -> int:
        """Ids stored (members of clusters of two or more)."""
        return len(self._cluster_of)

    # -- linking -----------------------------------------------------------------------------

    def link(self, ids: Iterable[str], ts_ms: int) -> LinkResult:
        """Joins the clusters of ``ids`` (id keys, ``schemas.id_key``), seen together at ``ts_ms``.

        Returns the resulting canonical id, the state moves it implies and any refusal; a refused
        link changes nothing.
        """
        result = LinkResult()
        usable: dict[str, None] = {}
        for key in ids:
            if is_junk(parse_id_key(key)[1]):  # a malformed key is a caller bug: ValueError
                result.refused.append(Refusal("junk_id", (key,), "a placeholder that identifies nobody"))
            else:
                usable[key] = None
        if len(usable) < 2:
            return result
        before = {self.resolve(k) for k in usable}
        merged: dict[str, int] = {}
        for cluster in {id(c): c for k in usable if (c := self._cluster_of.get(k)) is not None}.values():
            merged.update(cluster.members)
        for key in usable:
            merged[key] = min(merged.get(key, ts_ms), ts_ms)
        refusal = self._cap_problem(merged, tuple(usable))
        if refusal is not None:
            result.refused.append(refusal)
            return result
        cluster = Cluster(merged)
        for key in merged:
            self._cluster_of[key] = cluster
        result.canonical = cluster.canonical
        result.moves = [Move(old, cluster.canonical) for old in sorted(before) if old != cluster.canonical]
        return result

    def forget(self, key: str) -> dict[str, int]:
        """Removes the whole cluster of ``key`` (erasure); returns its members (``{key: 0}`` when no
        link named it)."""
        cluster = self._cluster_of.get(key)
        if cluster is None:
            return {key: 0}
        for member in cluster.members:
            del self._cluster_of[member]
        return dict(cluster.members)

    def _cap_problem(self, merged: Mapping[str, int], ids: tuple[str, ...]) -> Refusal | None:
        counts: dict[str, int] = {}
        for key in merged:
            id_type = parse_id_key(key)[0]
            counts[id_type] = counts.get(id_type, 0) + 1
        for id_type in ID_TYPES:
            cap = self.limits.per_type.get(id_type)
            if cap is not None and counts.get(id_type, 0) > cap:
                return Refusal(f"too_many_{id_type}", ids,
                               f"the cluster would hold {counts[id_type]} {id_type} ids (at most {cap})")
        if len(merged) > self.limits.max_cluster:
            return Refusal("cluster_too_large", ids,
                           f"the cluster would hold {len(merged)} ids (at most {self.limits.max_cluster})")
        return None

    # -- encoding ----------------------------------------------------------------------------

    def to_json(self) -> list[list[Any]]:
        """Compact and canonical: clusters by canonical id, each a flat ``[id, first_seen_ms, id,
        first_seen_ms, ...]`` sorted by id (equal graphs give equal JSON)."""
        return [[x for k in sorted(c.members) for x in (k, c.members[k])] for c in self.clusters()]

    def dumps(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def from_json(cls, data: Iterable[list[Any]], limits: GraphLimits | None = None) -> IdentityGraph:
        graph = cls(limits)
        for flat in data:
            cluster = Cluster({str(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)})
            for key in cluster.members:
                parse_id_key(key)
                graph._cluster_of[key] = cluster
        return graph

    @classmethod
    def loads(cls, raw: bytes, limits: GraphLimits | None = None) -> IdentityGraph:
        return cls.from_json(orjson.loads(raw), limits)
