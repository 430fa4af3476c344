"""The HTTP API's answers that need no Redis data: auth, paging parameters, unknown routes, explain,
and a Redis that does not answer (a real server on a loopback port; Redis at a closed port)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr, ValidationError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from schemas.api import ApiError, CustomerExplain
from streams.io.api_server import ApiServer
from streams.io.explain_lookup import CorruptState, CustomerNotFound, Explainer, StateUnavailable
from streams.io.tag_reader import MAX_CURSOR, TagReader, parse_cursor
from streams.settings import ApiSettings, KafkaSettings, Settings
from tag_rules import DEFAULT_RULES, CompiledRuleSet, load_rules

TOKEN = "s3cret-token"


def closed_port_reader() -> TagReader:
    """A reader whose Redis refuses connections (port 1 on loopback: nothing listens there)."""
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    return TagReader(client, prefix="t")


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer(closed_port_reader(), host="127.0.0.1", port=0, token=TOKEN, max_page=500) as s:
        yield s


async def get(server: ApiServer, path: str, token: str | None = TOKEN) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{server.port}{path}",
                                                          headers=headers) as r:
        assert r.content_type == "application/json"
        return r.status, await r.json(), r


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", ""])
async def test_a_missing_or_wrong_token_is_401(server: ApiServer, token: str | None) -> None:
    status, body, r = await get(server, "/customers/c1/tags", token)
    assert status == 401 and body["error"] == "unauthorized" and "Bearer" in body["message"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    ApiError.model_validate(body)


async def test_the_openapi_document_needs_no_token(server: ApiServer) -> None:
    status, body, _ = await get(server, "/openapi.json", None)
    assert status == 200 and body["openapi"] == "3.1.0"


@pytest.mark.parametrize(("query", "names"), [
    ("cursor=abc", "cursor"), ("cursor=-1", "cursor"), (f"cursor={MAX_CURSOR + 1}", "cursor"), ("cursor=", "cursor"),
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=x", "limit"), ("limit=1.5", "limit"),
    ("page=2", "unknown query parameter"),
])
async def test_bad_paging_parameters_are_400_naming_the_parameter(server: ApiServer, query: str, names: str) -> None:
    status, body, _ = await get(server, f"/audiences/high_value?{query}")
    assert status == 400 and body["error"] == "bad_request" and names in body["message"]


async def test_an_over_long_customer_id_is_400(server: ApiServer) -> None:
    status, body, _ = await get(server, "/customers/" + "x" * 257 + "/tags")
    assert status == 400 and "customer_id" in body["message"]


async def test_unknown_routes_and_methods_answer_json(server: ApiServer) -> None:
    status, body, _ = await get(server, "/nope")
    assert status == 404 and body["error"] == "not_found" and "/audiences/{tag}" in body["message"]
    async with aiohttp.ClientSession() as http, http.post(f"http://127.0.0.1:{server.port}/audiences/x",
                                                          headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 405 and (await r.json())["error"] == "method_not_allowed"


async def shipped_rules() -> CompiledRuleSet:
    return load_rules(DEFAULT_RULES)


def explainer() -> Explainer:
    """An explainer whose Kafka refuses connections (port 1 on loopback)."""
    return Explainer(Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1")), shipped_rules, timeout_s=20)


async def test_explain_without_kafka_settings_is_503_saying_so(server: ApiServer) -> None:
    status, body, _ = await get(server, "/customers/c1/explain")
    assert status == 503 and body["error"] == "kafka_unavailable" and "changelog" in body["message"]


async def test_explain_with_kafka_not_answering_is_503_naming_the_broker() -> None:
    async with ApiServer(closed_port_reader(), host="127.0.0.1", port=0, explainer=explainer()) as s:
        status, body, _ = await get(s, "/customers/c1/explain", None)
        assert status == 503 and body["error"] == "kafka_unavailable" and "127.0.0.1:1" in body["message"]
        status, body, _ = await get(s, "/customers/c1/explain?at=1", None)
        assert status == 400 and "at" in body["message"]


@pytest.mark.parametrize(("raised", "status", "error"), [
    (CustomerNotFound("customer 'c1' has no state"), 404, "not_found"),
    (CorruptState("the state of 'c1' cannot be read"), 500, "internal"),
    (StateUnavailable("topic t not found"), 503, "kafka_unavailable"),
])
async def test_explain_failures_map_to_statuses_with_the_message(raised: Exception, status: int, error: str) -> None:
    class Failing(Explainer):
        async def explain(self, customer_id: str) -> CustomerExplain:
            raise raised

    failing = Failing(Settings(), shipped_rules)
    async with ApiServer(closed_port_reader(), host="127.0.0.1", port=0, explainer=failing) as s:
        got, body, _ = await get(s, "/customers/c1/explain", None)
        assert (got, body) == (status, {"error": error, "message": str(raised)})


@pytest.mark.parametrize("path", ["/customers/c1/tags", "/audiences/high_value"])
async def test_redis_not_answering_is_503(server: ApiServer, path: str) -> None:
    status, body, _ = await get(server, path)
    assert status == 503 and body["error"] == "redis_unavailable"


async def test_a_taken_port_is_one_clear_error() -> None:
    async with ApiServer(closed_port_reader(), host="127.0.0.1", port=0) as first:
        second = ApiServer(closed_port_reader(), host="127.0.0.1", port=first.port)
        with pytest.raises(RuntimeError, match=rf"cannot listen on 127.0.0.1:{first.port}.*TAGSTREAM_API__PORT"):
            await second.start()
        await second.stop()  # already stopped by the failed start: safe again


def test_cursor_parsing() -> None:
    assert parse_cursor("0") == 0 and parse_cursor(str(MAX_CURSOR)) == MAX_CURSOR
    for bad in ("", "-1", "1e3", " 1", "\u0661", str(MAX_CURSOR + 1)):
        with pytest.raises(ValueError, match="cursor must be"):
            parse_cursor(bad)


@pytest.mark.parametrize("token", ["", " padded", "two words"])
def test_a_blank_or_spaced_token_is_a_configuration_error(token: str) -> None:
    with pytest.raises(ValidationError, match="API token must be non-empty"):
        ApiSettings(token=SecretStr(token))


def test_the_api_listens_on_loopback_by_default() -> None:
    assert ApiSettings().host == "127.0.0.1" and ApiSettings().token is None
