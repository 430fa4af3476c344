"""docs/openapi.json: committed, current, valid OpenAPI 3.1, and listing exactly the served routes."""

from __future__ import annotations

import json

import redis.asyncio as aioredis
from openapi_spec_validator import validate

from streams.io.http_api import ROUTES, create_api
from streams.io.openapi import DEFAULT_PATH, openapi_document, render
from streams.io.tag_reader import TagReader


def test_the_committed_document_is_current() -> None:
    assert DEFAULT_PATH.read_text(encoding="utf-8") == render(openapi_document()), (
        "docs/openapi.json is stale: run python -m streams.io.openapi")


def test_the_document_is_valid_openapi_3_1() -> None:
    document = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    assert document["openapi"].startswith("3.1.")
    validate(document)  # raises OpenAPIValidationError with the path of the fault


def test_the_document_lists_exactly_the_served_routes() -> None:
    document = openapi_document()
    documented = {(method.upper(), path, op["operationId"])
                  for path, item in document["paths"].items() for method, op in item.items()}
    assert documented == set(ROUTES)
    app = create_api(TagReader(aioredis.Redis(), prefix="t"))
    served = {(r.method, r.resource.canonical, r.name) for r in app.router.routes() if r.resource is not None}
    assert served == set(ROUTES)


def test_every_documented_response_references_a_component() -> None:
    document = openapi_document()
    components = document["components"]["schemas"]
    for item in document["paths"].values():
        for op in item.values():
            for status, response in op["responses"].items():
                schema = response["content"]["application/json"]["schema"]
                if "$ref" in schema:
                    assert schema["$ref"].removeprefix("#/components/schemas/") in components, (status, schema)
                if status != "200":
                    assert schema == {"$ref": "#/components/schemas/ApiError"}
