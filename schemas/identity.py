"""The ``events.identity`` input: link records from CRM, loyalty and app systems, and the typed ids
every source event carries (the links the identity graph learns from, docs/identity.md).

An identity record says "these ids are one person"::

    {"event_id": "crm-81", "ts": "2026-11-30T10:00:00Z", "source": "crm",
     "ids": [{"type": "member", "value": "m-1"}, {"type": "email_sha256", "value": "5e88…"}]}

It is decoded like the other sources (``schemas.decode.decode_identity``) and rejected, with a
reason fit for the dead-letter topic, when an id is junk (``junk_id``), of an unknown type
(``unknown_id_type``), a contact id is not a hash (``bad_contact_hash``), the record has fewer
than 2 ids (``too_few_ids``), more than MAX_LINK_IDS (``too_many_ids``) or one id twice
(``duplicate_id``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from .events import MAX_ID_CHARS, MAX_LABEL_CHARS, ClickstreamEvent, OrderEvent, PosEvent, _Event
from .ids import NOT_JUNK_SCHEMA, EmailSha256, IdType, NotJunk, PhoneSha256, id_key

IDENTITY_SOURCE = "identity"
"""The source name of identity records (topic ``events.identity``); not an event source of
``schemas.SOURCES``: identity records feed the identity graph, never a feature."""
MAX_LINK_IDS = 20
"""Ids in one identity record: a CRM profile rarely has more; beyond, it is a merged junk profile."""

_PlainValue = Annotated[str, Field(strict=True, min_length=1, max_length=MAX_ID_CHARS,
                                   json_schema_extra=NOT_JUNK_SCHEMA), NotJunk]
_EmailValue = Annotated[EmailSha256, NotJunk, Field(json_schema_extra=NOT_JUNK_SCHEMA)]
_PhoneValue = Annotated[PhoneSha256, NotJunk, Field(json_schema_extra=NOT_JUNK_SCHEMA)]


class _TypedId(BaseModel):
    # Exactly {type, value}: a misspelt key ("vaule") is an error, not an ignored extra.
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: IdType
    value: str

    @property
    def key(self) -> str:
        """``schemas.ids.id_key`` of this id."""
        return id_key(self.type, self.value)


class MemberRef(_TypedId):
    type: Literal["member"]
    value: _PlainValue


class UserRef(_TypedId):
    type: Literal["user"]
    value: _PlainValue


class AnonymousRef(_TypedId):
    type: Literal["anonymous"]
    value: _PlainValue


class EmailRef(_TypedId):
    type: Literal["email_sha256"]
    value: _EmailValue


class PhoneRef(_TypedId):
    type: Literal["phone_sha256"]
    value: _PhoneValue


TypedId = Annotated[MemberRef | UserRef | AnonymousRef | EmailRef | PhoneRef, Field(discriminator="type")]
"""One ``{type, value}`` of an identity record."""


class IdentityRecord(_Event):
    """A link record of ``events.identity``: every id in ``ids`` belongs to one person."""

    ids: Annotated[list[TypedId], Field(min_length=2, max_length=MAX_LINK_IDS, json_schema_extra={"uniqueItems": True})]
    source: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_LABEL_CHARS)]
    """The system that asserts the link (``crm``, ``loyalty``, ``app`` …): kept for audit and metrics."""

    @model_validator(mode="after")
    def _distinct(self) -> IdentityRecord:
        seen: dict[tuple[str, str], int] = {}
        for i, ref in enumerate(self.ids):
            first = seen.setdefault((ref.type, ref.value), i)
            if first != i:
                raise PydanticCustomError("duplicate_id", "field 'ids': items {first} and {second} are the same id",
                                          {"first": first, "second": i})
        return self

    @property
    def keys(self) -> list[str]:
        """The id keys (``schemas.ids.id_key``) of the record, in its order."""
        return [ref.key for ref in self.ids]


def event_ids(event: ClickstreamEvent | PosEvent | OrderEvent) -> list[str]:
    """The id keys a source event carries, in priority order (member, user, contacts, anonymous).

    Two or more of them make the event a link (a login click with both ``user_id`` and
    ``anonymous_id``, an order with a contact hash); junk values are returned as they are: the
    identity graph refuses them with a reason.
    """
    return [id_key(t, v) for t, v in event_id_values(event)]


def event_id_values(event: ClickstreamEvent | PosEvent | OrderEvent) -> list[tuple[IdType, str]]:
    """``event_ids`` as (type, value as sent) pairs."""
    pairs: list[tuple[IdType, str | None]]
    if isinstance(event, ClickstreamEvent):
        pairs = [("user", event.user_id), ("anonymous", event.anonymous_id)]
    elif isinstance(event, PosEvent):
        pairs = [("member", event.member_id), ("email_sha256", event.email_sha256),
                 ("phone_sha256", event.phone_sha256)]
    else:
        pairs = [("user", event.user_id), ("email_sha256", event.email_sha256), ("phone_sha256", event.phone_sha256)]
    return [(t, v) for t, v in pairs if v is not None]
