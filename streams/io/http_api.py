"""The HTTP API: a customer's tags and an audience's members, read from Redis (aiohttp).

    GET /customers/{customer_id}/tags      200 CustomerTags | 404 no tags | 400
    GET /audiences/{tag}?cursor=&limit=    200 AudiencePage (SCARD count + one SSCAN page) | 400
    GET /customers/{customer_id}/explain   200 CustomerExplain (its state in the changelog, evaluated now) | 404
    GET /openapi.json                      the OpenAPI 3.1 document (docs/openapi.json), no token needed

Every response is JSON; errors are :class:`schemas.api.ApiError`. With a token configured, every
route but /openapi.json needs ``Authorization: Bearer <token>`` (else 401). Redis unreachable: 503;
Kafka unreachable (explain reads the changelog): 503.

aiohttp (already installed with Faust) rather than Faust's web views: the same app runs inside a
worker and alone (``tagstream serve``, no Kafka, no Faust app), and Faust's web would also serve
its own internal views. The server lifecycle is in streams/io/api_server.py.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas.api import ApiError, AudiencePage, CustomerTags
from schemas.events import MAX_ID_CHARS
from streams.io.explain_lookup import CorruptState, CustomerNotFound, Explainer, StateUnavailable
from streams.io.tag_reader import CorruptTagValue, TagReader, parse_cursor

log = logging.getLogger(__name__)

DEFAULT_PAGE = 100
MAX_PATH_PARAM_CHARS = MAX_ID_CHARS
"""Customer ids and tag names longer than this cannot exist (ids are bounded at the input)."""
PUBLIC_PATHS = frozenset({"/openapi.json"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
READER: web.AppKey[TagReader] = web.AppKey("reader", TagReader)
MAX_PAGE: web.AppKey[int] = web.AppKey("max_page", int)
OPENAPI: web.AppKey[bytes] = web.AppKey("openapi", bytes)
EXPLAINER: web.AppKey[Explainer | None] = web.AppKey("explainer")

ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/customers/{customer_id}/tags", "customer_tags"),
    ("GET", "/customers/{customer_id}/explain", "customer_explain"),
    ("GET", "/audiences/{tag}", "audience"),
    ("GET", "/openapi.json", "openapi"),
)
"""(method, path, operationId) of every route: the OpenAPI document is checked against it."""


class ApiProblem(Exception):
    """An error answered as JSON: ``status`` and an :class:`ApiError` body."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def json_response(body: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=body.__pydantic_serializer__.to_json(body), status=status,
                        content_type="application/json")


def error_response(status: int, error: str, message: str) -> web.Response:
    response = json_response(ApiError(error=error, message=message), status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="tagstream"'
    return response


def path_param(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not value or len(value) > MAX_PATH_PARAM_CHARS:
        raise ApiProblem(400, "bad_request", f"{name} must be 1 … {MAX_PATH_PARAM_CHARS} characters "
                                             f"(got {len(value)})")
    return value


def page_params(request: web.Request) -> tuple[int, int]:
    """``cursor`` and ``limit`` of an audience request; ApiProblem 400 naming the bad one."""
    unknown = sorted(set(request.query) - {"cursor", "limit"})
    if unknown:
        raise ApiProblem(400, "bad_request", f"unknown query parameter(s) {', '.join(unknown)}: use cursor, limit")
    try:
        cursor = parse_cursor(request.query.get("cursor", "0"))
    except ValueError as exc:
        raise ApiProblem(400, "bad_request", str(exc)) from None
    max_page = request.app[MAX_PAGE]
    raw = request.query.get("limit", str(min(DEFAULT_PAGE, max_page)))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 7 and 1 <= int(raw) <= max_page):
        raise ApiProblem(400, "bad_request", f"limit must be an integer 1 … {max_page} (got {raw[:40]!r})")
    return cursor, int(raw)


async def customer_tags(request: web.Request) -> web.Response:
    customer_id = path_param(request, "customer_id")
    try:
        tags = await request.app[READER].tags(customer_id)
    except CorruptTagValue as exc:
        log.error("%s", exc)
        raise ApiProblem(500, "internal", str(exc)) from None
    if not tags:
        raise ApiProblem(404, "not_found", f"customer {customer_id!r} holds no tag (unknown, or no tag applies now)")
    return json_response(CustomerTags(customer_id=customer_id, tags=tags))


async def audience(request: web.Request) -> web.Response:
    tag = path_param(request, "tag")
    cursor, limit = page_params(request)
    reader = request.app[READER]
    count = await reader.audience_count(tag)
    page = await reader.audience_page(tag, cursor=cursor, count=limit)
    return json_response(AudiencePage(tag=tag, count=count, members=page.members,
                                      next_cursor=str(page.cursor) if page.cursor else None))


async def customer_explain(request: web.Request) -> web.Response:
    """The customer's state from the changelog, explained now (streams/io/explain_lookup.py)."""
    customer_id = path_param(request, "customer_id")
    if request.query:
        raise ApiProblem(400, "bad_request", f"unknown query parameter(s) {', '.join(sorted(request.query))}")
    explainer = request.app[EXPLAINER]
    if explainer is None:
        raise ApiProblem(503, "kafka_unavailable", "this server was started without Kafka settings; explain reads "
                                                   "the customers' changelog")
    try:
        return json_response(await explainer.explain(customer_id))
    except CustomerNotFound as exc:
        raise ApiProblem(404, "not_found", str(exc)) from None
    except StateUnavailable as exc:
        log.warning("API: explain: %s", exc)
        raise ApiProblem(503, "kafka_unavailable", str(exc)) from None
    except CorruptState as exc:
        log.error("API: explain: %s", exc)
        raise ApiProblem(500, "internal", str(exc)) from None


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


def auth_middleware(token: str | None) -> Middleware:
    expected = f"Bearer {token}".encode() if token else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is not None and request.path not in PUBLIC_PATHS:
            given = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected):  # constant time: no guessing by timing
                what = "a wrong bearer token" if given else "no Authorization header"
                return error_response(401, "unauthorized", f"this API needs 'Authorization: Bearer <token>' "
                                                           f"(TAGSTREAM_API__TOKEN); the request has {what}")
        return await handler(request)

    return middleware


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as an ApiError body; Redis down is 503, our own bugs 500 (logged)."""
    try:
        return await handler(request)
    except ApiProblem as p:
        return error_response(p.status, p.error, p.message)
    except web.HTTPException as exc:  # aiohttp's own: unknown route (404), wrong method (405)
        if exc.status < 400:
            raise
        hint = f"; routes: {', '.join(path for _, path, _ in ROUTES)}" if exc.status == 404 else ""
        category = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "bad_request")
        return error_response(exc.status, category, f"{exc.reason}: {request.method} {request.path}{hint}")
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        log.warning("API: Redis unavailable: %s", exc)
        return error_response(503, "redis_unavailable", f"Redis is not answering ({type(exc).__name__}); retry later")
    except Exception:
        log.exception("API: %s %s failed", request.method, request.path)
        return error_response(500, "internal", "internal error (logged by the server)")


def create_api(reader: TagReader, *, explainer: Explainer | None = None, token: str | None = None,
               max_page: int = 1000, openapi_document: dict[str, Any] | None = None) -> web.Application:
    """The aiohttp application on ``reader`` (and ``explainer`` for explain: None answers 503);
    ``token`` None leaves it open."""
    from streams.io.openapi import openapi_document as build_document

    app = web.Application(middlewares=[error_middleware, auth_middleware(token)])
    app[READER] = reader
    app[EXPLAINER] = explainer
    app[MAX_PAGE] = max_page
    app[OPENAPI] = orjson.dumps(openapi_document or build_document())
    handlers: dict[str, Handler] = {"customer_tags": customer_tags, "customer_explain": customer_explain,
                                    "audience": audience, "openapi": openapi}
    for method, path, operation_id in ROUTES:
        app.router.add_route(method, path, handlers[operation_id], name=operation_id)
    return app
