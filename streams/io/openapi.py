"""The OpenAPI 3.1 document of the HTTP API, built from the routes and the response models.

Committed as docs/openapi.json (``python -m streams.io.openapi [PATH]`` rewrites it; a unit test
fails when it is stale, when it lists other routes than streams/io/http_api.py serves, or when
openapi-spec-validator rejects it) and served at ``GET /openapi.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from schemas.api import ApiError, AudiencePage, CustomerExplain, CustomerTags

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
_REF = "#/components/schemas/{model}"


def _json(model: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json("ApiError")}


_CUSTOMER_ID = {"name": "customer_id", "in": "path", "required": True,
                "description": "The customer id (user_id / member_id of the input events).",
                "schema": {"type": "string", "minLength": 1, "maxLength": 256}}
_COMMON_ERRORS = {"401": _error("A token is configured and the request lacks it or has another one."),
                  "503": _error("Redis is not answering.")}


def _paths() -> dict[str, Any]:
    return {
        "/customers/{customer_id}/tags": {"get": {
            "operationId": "customer_tags",
            "summary": "The tags a customer holds now",
            "parameters": [_CUSTOMER_ID],
            "responses": {
                "200": {"description": "The customer's tags.", "content": _json("CustomerTags")},
                "400": _error("customer_id longer than 256 characters."),
                "404": _error("The customer holds no tag: unknown, or no rule applies to it now."),
                "500": _error("A stored tag value is corrupt (the message names the Redis key and field)."),
                **_COMMON_ERRORS}}},
        "/customers/{customer_id}/explain": {"get": {
            "operationId": "customer_explain",
            "summary": "Why a customer holds its tags: its live state, evaluated now",
            "description": "The customer's latest state is read from the customers table's changelog (the one "
                           "partition its id hashes to) and evaluated now by the engine, under the rule set in "
                           "force: feature values, each tag's conditions with the value of every sub-expression, "
                           "since when it holds, a min_duration or cooldown holding it, the next due time with "
                           "its reason, and changes that fell due but are not stored yet. Reads Kafka, not "
                           "Redis; one lookup reads one changelog partition, so it is a diagnostic, not a "
                           "hot path (two run at a time per server).",
            "parameters": [_CUSTOMER_ID],
            "responses": {
                "200": {"description": "The explanation.", "content": _json("CustomerExplain")},
                "400": _error("customer_id longer than 256 characters, or a query parameter (none is taken)."),
                "404": _error("No state for the customer: an unknown id, or deleted (nothing left to remember)."),
                "500": _error("The stored state cannot be read (the message names the changelog record)."),
                "401": _COMMON_ERRORS["401"],
                "503": _error("Kafka is not answering, or the changelog topic does not exist.")}}},
        "/audiences/{tag}": {"get": {
            "operationId": "audience",
            "summary": "The customers holding a tag: its size and one page (cursor paging)",
            "description": "Start with no cursor; pass each response's next_cursor as cursor until it is null. "
                           "Pages come from Redis SSCAN: limit is a hint (a page may hold more or fewer members, "
                           "even none before the end); a full scan returns every customer that held the tag "
                           "throughout; one that gained or lost it meanwhile may or may not appear, and a member "
                           "may appear twice if the set was resized during the scan. An unknown tag is an empty "
                           "audience (count 0).",
            "parameters": [
                {"name": "tag", "in": "path", "required": True, "description": "A tag name of the rule set.",
                 "schema": {"type": "string", "minLength": 1, "maxLength": 256}},
                {"name": "cursor", "in": "query", "required": False,
                 "description": "next_cursor of the previous page; 0 or absent starts a scan.",
                 "schema": {"type": "string", "pattern": "^[0-9]{1,20}$", "default": "0"}},
                {"name": "limit", "in": "query", "required": False,
                 "description": "Page size hint, 1 … TAGSTREAM_API__MAX_PAGE (default 1000).",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 100_000, "default": 100}},
            ],
            "responses": {
                "200": {"description": "The audience's size and one page.", "content": _json("AudiencePage")},
                "400": _error("A bad cursor or limit, an unknown query parameter, or a tag over 256 characters."),
                **_COMMON_ERRORS}}},
        "/openapi.json": {"get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "The OpenAPI 3.1 document.",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a plain dict, JSON-ready)."""
    models = (CustomerTags, AudiencePage, CustomerExplain, ApiError)
    _, defs = models_json_schema([(m, "serialization") for m in models], ref_template=_REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "tagstream HTTP API", "version": "1",
                 "description": "Current customer tags and audiences, read from Redis, and why a customer holds "
                                "its tags, read from the workers' state. Served by every worker "
                                "(TAGSTREAM_API__HOST/PORT, default 127.0.0.1:9465) and by `tagstream serve`. "
                                "With TAGSTREAM_API__TOKEN set, requests need 'Authorization: Bearer <token>'.",
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "servers": [{"url": "http://127.0.0.1:9465", "description": "default bind address"}],
        "security": [{"bearer": []}, {}],
        "paths": _paths(),
        "components": {"schemas": defs["$defs"],
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "Required when TAGSTREAM_API__TOKEN is set."}}},
    }


def render(document: dict[str, Any]) -> str:
    """The exact text committed (sorted keys, indent 2, trailing newline)."""
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT_PATH
    path.write_text(render(openapi_document()), encoding="utf-8")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
