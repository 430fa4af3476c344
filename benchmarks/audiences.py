"""Tag audiences of benchmark runs in Redis: read, compared between two apps, cleaned up.

Every app of ``benchmarks.throughput`` (b, c, d, d2) keeps each tag's members in the set
``<prefix>:tag:<tag>``; two apps that saw the same events must hold the same sets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast


def audiences(redis_url: str, rules: Path, prefix: str) -> dict[str, set[bytes]]:
    """Each tag's members in Redis under ``prefix`` (``<prefix>:tag:<tag>`` sets)."""
    import redis

    from tag_rules import load_rules

    r = redis.Redis.from_url(redis_url)
    return {tag: cast(set[bytes], r.smembers(f"{prefix}:tag:{tag}")) for tag in load_rules(rules).tags}


def compare_audiences(b: dict[str, set[bytes]], c: dict[str, set[bytes]]) -> dict[str, Any]:
    """Audience by audience, are two apps' tag sets the same? (``only_b``: members only the first has.)"""
    out: dict[str, Any] = {"tags": 0, "identical": 0, "members_b": 0, "members_c": 0, "diff": {}}
    for tag in b:
        out["tags"] += 1
        out["members_b"] += len(b[tag])
        out["members_c"] += len(c[tag])
        if b[tag] == c[tag]:
            out["identical"] += 1
        else:
            out["diff"][tag] = {"only_b": len(b[tag] - c[tag]), "only_c": len(c[tag] - b[tag])}
    return out


def compare_tags(redis_url: str, rules: Path, prefix_b: str, prefix_c: str) -> dict[str, Any]:
    """Audience by audience, are the tag sets of the baseline and tagstream the same?"""
    return compare_audiences(audiences(redis_url, rules, prefix_b), audiences(redis_url, rules, prefix_c))


def cleanup_redis(redis_url: str, prefixes: list[str]) -> int:
    import redis

    r = redis.Redis.from_url(redis_url)
    n = 0
    for p in prefixes:
        batch = []
        for key in r.scan_iter(match=f"{p}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                n += r.delete(*batch)
                batch = []
        if batch:
            n += r.delete(*batch)
    return n
