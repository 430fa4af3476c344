"""Response bodies of the HTTP API (streams/io/http_api.py), the source of its OpenAPI components."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .tags import TagValue


class CustomerTags(BaseModel):
    """``GET /customers/{customer_id}/tags``: the tags a customer holds now."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    customer_id: str
    tags: dict[str, TagValue]
    """Tag name -> since when (epoch ms) and under which rule set version."""


class AudiencePage(BaseModel):
    """``GET /audiences/{tag}``: one page of the customers holding a tag (Redis SSCAN)."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    tag: str
    count: Annotated[int, Field(ge=0)]
    """Customers holding the tag now (SCARD), whatever the page."""
    members: list[str]
    """Customer ids of this page: about ``limit`` of them (a hint to Redis, not a bound), possibly none."""
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; null when the scan is complete."""


class ApiError(BaseModel):
    """Body of every error response (4xx, 5xx)."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    error: str
    """Machine category: bad_request, unauthorized, not_found, method_not_allowed, redis_unavailable,
    kafka_unavailable, busy, internal."""
    message: str
    """What went wrong, for a person."""


class SubExpression(BaseModel):
    """One sub-expression of a tag's condition with its value now (``tag_rules/explain.py``)."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    text: str
    value: Any
    """What it evaluates to (a number, text, true/false, or null for "no value")."""
    depth: Annotated[int, Field(ge=0)]
    """0: the whole condition; its operands are one deeper, and so on."""


class ConditionExplain(BaseModel):
    """One condition of a tag (``when``, or ``enter`` / ``exit``), evaluated now."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    key: Literal["when", "enter", "exit"]
    source: str
    """The condition as written in the rule file."""
    holds: bool
    decides: bool
    """This is the condition that can change the tag now: ``enter`` (or ``when``) while the tag is
    absent, ``exit`` (or ``when``) while it is present."""
    parts: list[SubExpression]
    """The whole condition first, then its sub-expressions (pre-order)."""


class FlapGate(BaseModel):
    """A ``min_duration`` (present) or ``cooldown`` (absent) bound in force now."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    kind: Literal["min_duration", "cooldown"]
    until_ms: int
    """When the bound ends; the tag is re-evaluated then."""
    holding: bool
    """True: the condition asks for a change that the bound holds back until ``until_ms``."""


class TagExplain(BaseModel):
    """One tag of the rule set for one customer, now."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    tag: str
    description: str | None
    holds: bool
    """The customer has the tag now."""
    since_ms: int | None
    """Present: when it was added. Absent: when it was removed, known only for a tag with a cooldown
    until the cooldown has passed (the state keeps no other removal time); else null."""
    published: bool
    """The stored state holds the tag: what the worker has published. It differs from ``holds``
    when a change fell due and the worker has not applied it yet (see ``pending``)."""
    conditions: list[ConditionExplain]
    gate: FlapGate | None
    next_due_ms: int | None
    """The next instant the tag may change with no new event (a feature it reads changes, or its
    gate ends); null: only an event can change it."""


class FeatureValue(BaseModel):
    """A feature a tag reads, its value now, and when it next changes with time alone."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    name: str
    agg: str
    window_ms: int | None
    """null: lifetime."""
    value: Any
    """Its value now (null: no value, e.g. the average of an empty window)."""
    next_change_ms: int | None
    """When a bucket next leaves the window, or a time-since threshold a tag compares with is next
    crossed where it can change one of the customer's tags (a tag held for ``< T``, not held for
    ``>= T``); null: never with time alone."""


class DueReason(BaseModel):
    """Why the customer is due at ``NextDue.at_ms``."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    kind: Literal["window", "since_last", "sequence", "min_duration", "cooldown"]
    name: str
    """The feature (window, since_last, sequence: an absence or sequence feature) or the tag
    (min_duration, cooldown)."""
    text: str
    """The reason in words."""


class NextDue(BaseModel):
    """The next instant any tag of the customer may change with no new event: the worker's timer
    re-evaluates the customer then."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    at_ms: int
    reasons: list[DueReason]


class PendingChange(BaseModel):
    """A change that fell due before now and that the stored state does not show yet (the worker's
    timer has not reached it, or the worker is behind or stopped)."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    tag: str
    op: Literal["add", "remove"]
    at_ms: int
    cause: Literal["event", "expiry", "rule_change"]


class StateSource(BaseModel):
    """Where the customer's state was read: the table's changelog record."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    topic: str
    partition: Annotated[int, Field(ge=0)]
    offset: Annotated[int, Field(ge=0)]
    written_ms: int
    """The record's timestamp: when the worker saved the state."""
    rule_version: str
    """The rule set version the state was last evaluated under."""


class CustomerExplain(BaseModel):
    """``GET /customers/{customer_id}/explain`` and ``tagstream explain``: why a customer holds the
    tags it holds, from its stored state, evaluated now by the engine's own code."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    customer_id: str
    now_ms: int
    """The instant everything below is evaluated at."""
    rules_version: str
    """The rule set in force that evaluated it."""
    state: StateSource
    features: list[FeatureValue]
    tags: list[TagExplain]
    next_due: NextDue | None
    """null: no tag can change with time alone; only an event can."""
    pending: list[PendingChange]
    """Changes due before now that the stored state does not show yet, in order."""
