"""Reading current tags back from Redis: a customer's tags, an audience's size and its pages.

One reader for the HTTP API (streams/io/http_api.py) and the command line (``tagstream tags``).
Keys are built by :func:`tags_key` / :func:`audience_key` only (the sink's layout, whatever it is).
An audience is paged with SSCAN and counted with SCARD: a set of millions is never loaded whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from schemas.tags import TagValue
from streams.io.redis_client import async_client
from streams.io.redis_sink import audience_key, tags_key
from streams.settings import Settings

MAX_CURSOR = 2**64 - 1
"""Redis cursors are unsigned 64-bit integers."""


class CorruptTagValue(ValueError):
    """A customer's tag hash holds a value that is not a tag value (not written by tagstream?)."""


@dataclass(frozen=True)
class Page:
    """One SSCAN step: the members it returned and the cursor to continue from (0: done)."""

    members: list[str]
    cursor: int


def parse_cursor(raw: str) -> int:
    """A client's cursor text as a Redis cursor; ValueError with a message when it is not one."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 20 or int(raw) > MAX_CURSOR:
        raise ValueError(f"cursor must be a decimal integer 0 … {MAX_CURSOR} as returned by the previous page "
                         f"(got {raw[:40]!r})")
    return int(raw)


class TagReader:
    """Async reads of the Redis view the tag sink writes (``prefix`` as the sink's)."""

    def __init__(self, client: Any, *, prefix: str, hash_tag: bool = False) -> None:
        self._client = client
        self._prefix = prefix
        self._hash_tag = hash_tag  # Redis Cluster key layout (streams/io/redis_sink.py tags_key)
        self._closed = False

    async def tags(self, customer_id: str) -> dict[str, TagValue]:
        """Tag name -> value for one customer; empty when the customer holds no tag (or is unknown).

        Raises :class:`CorruptTagValue` naming the key and field when a value is not a tag value."""
        raw = await self._client.hgetall(tags_key(self._prefix, customer_id, hash_tag=self._hash_tag))
        out: dict[str, TagValue] = {}
        for field, value in raw.items():
            tag = _text(field)
            try:
                out[tag] = TagValue.model_validate(orjson.loads(value))
            except ValueError as exc:  # orjson.JSONDecodeError and pydantic.ValidationError are ValueErrors
                key = tags_key(self._prefix, customer_id, hash_tag=self._hash_tag)
                raise CorruptTagValue(f"Redis key {key!r} field {tag!r}: not a tag "
                                      f"value ({str(exc).splitlines()[0]})") from exc
        return out

    async def audience_count(self, tag: str) -> int:
        """How many customers hold ``tag`` (SCARD, O(1))."""
        return int(await self._client.scard(audience_key(self._prefix, tag)))

    async def audience_page(self, tag: str, *, cursor: int = 0, count: int = 100) -> Page:
        """One SSCAN step over the audience of ``tag``, from ``cursor`` (0 starts a scan).

        ``count`` is Redis's hint: a step may return more or fewer members, even none with a cursor
        that is not done. A full scan returns every member that stayed in the set all along; one
        added or removed meanwhile may or may not appear, and a member may come twice when the set
        was resized during the scan (Redis's SCAN guarantees)."""
        next_cursor, members = await self._client.sscan(audience_key(self._prefix, tag), cursor=cursor, count=count)
        return Page([_text(m) for m in members], int(next_cursor))

    async def audience(self, tag: str, *, count: int = 1000) -> AsyncIterator[str]:
        """Every member of the audience, page by page, holding one page in memory at a time (so a
        member may come twice if the set is resized meanwhile, see :meth:`audience_page`)."""
        cursor = 0
        while True:
            page = await self.audience_page(tag, cursor=cursor, count=count)
            for m in page.members:
                yield m
            cursor = page.cursor
            if cursor == 0:
                return

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def close(self) -> None:
        """Closes the client's connections; safe to call again."""
        if self._closed:
            return
        self._closed = True
        await self._client.aclose()


def open_reader(settings: Settings) -> TagReader:
    """A reader on the Redis and key prefix of ``settings`` (the worker's, so the sink's).

    At most ``api.redis_connections`` connections: a burst of requests waits for a free one (up
    to the Redis timeout) instead of opening a connection per request in flight."""
    rs = settings.redis
    if rs.cluster:  # the cluster client keeps a pool per node
        return TagReader(async_client(rs, timeout_ms=rs.timeout_ms), prefix=settings.redis_key_prefix(), hash_tag=True)
    pool = aioredis.BlockingConnectionPool.from_url(
        rs.client_url(), max_connections=settings.api.redis_connections, timeout=rs.timeout_ms / 1000,
        socket_timeout=rs.timeout_ms / 1000, socket_connect_timeout=rs.timeout_ms / 1000, **rs.client_options())
    return TagReader(aioredis.Redis.from_pool(pool), prefix=settings.redis_key_prefix())  # closes the pool


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
