"""Redis clients for one server or a Redis Cluster, chosen by the URL, and the check that the
server is what the URL says.

``TAGSTREAM_REDIS__URL`` with ``redis+cluster://`` / ``rediss+cluster://`` selects redis-py's
cluster client (it discovers every node from the one named and routes each key to the node that
owns its slot); ``redis://``, ``rediss://`` and ``unix://`` the plain client. The two do not mix:
a plain client on a cluster node gets ``MOVED`` errors for most keys, and the cluster client on a
plain server cannot find any slot. :func:`check_mode` says so in one sentence at start-up.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streams.settings import RedisSettings

log = logging.getLogger(__name__)

AsyncRedis = aioredis.Redis | aioredis.RedisCluster
SyncRedis = redis.Redis | redis.RedisCluster


class RedisModeError(Exception):
    """The URL's mode (cluster or not) disagrees with the server's. Not retriable: fix the URL."""


def _options(rs: RedisSettings, timeout_ms: int | None, per_read: bool = True) -> dict[str, Any]:
    opts = rs.client_options()
    if timeout_ms is not None:
        opts.update(socket_connect_timeout=timeout_ms / 1000)
        if per_read:
            opts.update(socket_timeout=timeout_ms / 1000)
    return opts


def async_client(rs: RedisSettings, *, timeout_ms: int | None = None, per_read: bool = True) -> AsyncRedis:
    """The asyncio client for ``rs.url`` (cluster or plain); connects lazily, on first use.

    ``timeout_ms`` bounds connecting and, with ``per_read``, every reply read. Without ``per_read``
    the caller bounds its calls itself (``asyncio.timeout``): redis-py arms a timer per reply, which
    with a pipeline of a few hundred commands (the tag sink's flush with 1,000 tags) cost more than
    reading the replies (benchmarks/RULES.md)."""
    if rs.cluster:
        return aioredis.RedisCluster.from_url(rs.client_url(), **_options(rs, timeout_ms, per_read))
    return aioredis.from_url(rs.client_url(), **_options(rs, timeout_ms, per_read))


def sync_client(rs: RedisSettings, *, timeout_ms: int | None = None) -> SyncRedis:
    """The blocking client for ``rs.url`` (the CLI's and the demo's reads)."""
    if rs.cluster:
        return redis.RedisCluster.from_url(rs.client_url(), **_options(rs, timeout_ms))
    return redis.Redis.from_url(rs.client_url(), **_options(rs, timeout_ms))


def mode_mismatch(rs: RedisSettings, server_cluster_enabled: bool) -> str | None:
    """The sentence to fail with when the URL and the server disagree, else None."""
    if rs.cluster and not server_cluster_enabled:
        return (f"TAGSTREAM_REDIS__URL {rs.display_url()} asks for a Redis Cluster, but that server has cluster "
                f"mode disabled: use redis:// (or rediss://) for a single Redis server")
    if not rs.cluster and server_cluster_enabled:
        return (f"TAGSTREAM_REDIS__URL {rs.display_url()} names a Redis Cluster node: use redis+cluster:// "
                f"(or rediss+cluster://) so keys go to the node that owns their slot")
    return None


async def check_mode(rs: RedisSettings, *, timeout_ms: int | None = None) -> None:
    """Raises :class:`RedisModeError` when the server named by ``rs.url`` is a cluster node and the
    URL is not a cluster URL, or the other way round.

    Asks the one node in the URL with a plain connection (``CLUSTER INFO``, refused by a server
    without cluster mode). An unreachable server or a user without the permission is logged and
    let through: the tag sink retries until Redis answers, as without this check.
    """
    plain = aioredis.from_url(rs.client_url(), **_options(rs, timeout_ms or rs.timeout_ms))
    try:
        try:
            await plain.execute_command("CLUSTER", "INFO")
            enabled = True
        except NoPermissionError as exc:
            log.warning("redis mode not checked (%s): the ACL user may not run CLUSTER INFO", exc)
            return
        except ResponseError as exc:
            if "cluster support disabled" not in str(exc).lower():
                log.warning("redis mode not checked: CLUSTER INFO answered %r", exc)
                return
            enabled = False
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("redis mode not checked: %s unreachable (%s); tag writes retry until it answers",
                        rs.display_url(), exc)
            return
    finally:
        await plain.aclose()
    problem = mode_mismatch(rs, enabled)
    if problem:
        raise RedisModeError(problem)
