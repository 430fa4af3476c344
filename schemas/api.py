"""Response bodies of the HTTP API (streams/io/http_api.py), the source of its OpenAPI components."""

from __future__ import annotations

from typing import Annotated

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
    """Machine category: bad_request, unauthorized, not_found, method_not_allowed, not_implemented,
    redis_unavailable, internal."""
    message: str
    """What went wrong, for a person."""
