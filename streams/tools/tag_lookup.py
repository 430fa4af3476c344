"""``tagstream tags``: customers' tags, or an audience, read from Redis as the HTTP API reads them.

``tagstream tags ID...`` prints each customer's tags (with identity resolution on, any typed id
reads the tags of its customer, by the alias map); ``tagstream tags --audience TAG`` prints the
audience's size and some of its members. A TAG must belong to the rule set in force.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
import sys
from collections.abc import Sequence
from typing import Any

import orjson
from redis.exceptions import RedisError

from schemas.ids import parse_id_key
from streams.io.aliases import alias_key
from streams.io.redis_client import sync_client
from streams.io.redis_sink import tags_key
from streams.io.tag_reader import open_reader
from streams.settings import Settings
from streams.tools.rule_loading import rules_in_force
from tag_rules import RuleSetError


class TagLookupRefused(ValueError):
    """The lookup cannot be made as asked (no id and no audience, an id that is not typed, a tag not
    in the rule set): nothing was read from Redis (exit code 2)."""


def run(settings: Settings, customer_ids: Sequence[str], *, audience: str | None, limit: int, as_json: bool) -> int:
    """Prints the customers' tags, or with ``audience`` the audience (its first ``limit`` members);
    0 done. Redis trouble raises a one-line RuntimeError (the CLI's exit code 1)."""
    try:
        return _lookup(settings, customer_ids, audience=audience, limit=limit, as_json=as_json)
    except RedisError as exc:
        raise RuntimeError(f"Redis: {exc}") from exc


def _lookup(settings: Settings, customer_ids: Sequence[str], *, audience: str | None, limit: int,
            as_json: bool) -> int:
    if not audience and not customer_ids:
        raise TagLookupRefused("give a CUSTOMER_ID or --audience TAG")
    if audience:
        _check_tag(settings, audience)
        return asyncio.run(_print_audience(settings, audience, limit, as_json=as_json))
    rs = settings.redis
    client = sync_client(rs)
    found = {}
    for given in customer_ids:
        cid = _canonical(settings, client, given)
        tags = client.hgetall(tags_key(settings.redis_key_prefix(), cid, hash_tag=rs.cluster))
        found[given] = {_text(tag): orjson.loads(raw) for tag, raw in sorted(tags.items())}
    _print_tags(found, as_json=as_json)
    return 0


def _canonical(settings: Settings, client: Any, given: str) -> str:
    """Identity resolution: the customer id whose tags ``given`` (any typed id) reads, by the alias
    map (docs/identity.md); said on stderr when it is another id. Without identity: ``given``."""
    if not settings.identity.enabled:
        return given
    try:
        parse_id_key(given)
    except ValueError:
        raise TagLookupRefused(f"{given!r} is not a typed id: with identity resolution on, ids are <type>:<value> "
                               "(member:, user:, email_sha256:, phone_sha256:, anonymous:), e.g. user:u-1") from None
    raw = client.get(alias_key(settings.redis_key_prefix(), given, hash_tag=settings.redis.cluster))
    if raw is None:
        return given
    canonical = _text(raw)
    if canonical != given:
        print(f"{given} is customer {canonical} (identity alias)", file=sys.stderr)
    return canonical


def _check_tag(settings: Settings, tag: str) -> None:
    """An audience is asked for a tag of the rule set in force; anything else is a usage error
    that names the known tags."""
    try:
        rules = rules_in_force(settings, quiet=True)
    except RuleSetError as exc:
        raise TagLookupRefused(f"cannot check tag {tag!r}: the rule set has {len(exc.errors)} error(s) "
                               f"(see `tagstream rules check`)") from exc
    if tag in rules.tags:
        return
    close = difflib.get_close_matches(tag, rules.tags, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise TagLookupRefused(f"unknown tag {tag!r}; {hint}the rule set (version {rules.version}) has "
                           f"{len(rules.tags)} tags: {', '.join(sorted(rules.tags))}")


def _print_tags(found: dict[str, dict[str, Any]], *, as_json: bool) -> None:
    """Customers' tags: ``{customer_id: {tag: {"since_ms", "rule_version"}}}`` (as in Redis)."""
    if as_json:
        print(_json(found))
        return
    for cid, tags in found.items():
        if not tags:
            print(f"{cid}: no tags")
            continue
        print(f"{cid}:")
        for tag, v in tags.items():
            print(f"  {tag:<24} since {_fmt_ts(v['since_ms'])}  (rules {v['rule_version']})")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _json(obj: object) -> str:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode()


def _fmt_ts(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


async def _print_audience(settings: Settings, tag: str, limit: int, *, as_json: bool) -> int:
    """The audience's size (SCARD) and its first ``limit`` members, paged with SSCAN as the HTTP API
    pages (never the whole set in memory; unordered)."""
    reader = open_reader(settings)
    try:
        count = await reader.audience_count(tag)
        members: list[str] = []
        if limit:
            async for member in reader.audience(tag, count=min(max(limit, 10), 1000)):
                members.append(member)
                if len(members) >= limit:
                    break
    finally:
        await reader.close()
    members.sort()  # the page SSCAN gave, in a stable order
    if as_json:
        print(_json({"tag": tag, "count": count, "customers": members}))
    else:
        print(f"{tag}: {count} customers")
        for m in members:
            print(f"  {m}")
    return 0
