"""The ``tagstream`` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.settings import Settings

REPO = Path(__file__).resolve().parents[1]
STACK_SCRIPT = REPO / "deploy" / "local" / "stack.sh"


def _settings() -> Settings:
    from pydantic import ValidationError

    from streams.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        sys.exit(f"tagstream: bad configuration (TAGSTREAM_* environment):\n{exc}")


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.app.faust_compat import FaustCompatError
    from streams.app.worker import run_worker
    from streams.io.redis_client import RedisModeError
    from tag_rules import RuleSetError

    settings = _settings()
    if args.rules:
        settings = settings.model_copy(update={"rules_path": Path(args.rules)})
    try:
        run_worker(settings)
    except RuleSetError as exc:
        print(f"tagstream: the rule set has {len(exc.errors)} error(s):", file=sys.stderr)
        for e in exc.errors:
            print(f"  {e}", file=sys.stderr)
        return 2
    except (FaustCompatError, RedisModeError) as exc:
        print(f"tagstream: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_rules_check(args: argparse.Namespace) -> int:
    from tag_rules import DEFAULT_RULES, RuleSetError, load_rules

    path = args.path or DEFAULT_RULES
    try:
        rules = load_rules(path)
    except RuleSetError as exc:
        for e in exc.errors:
            print(e)
        print(f"{len(exc.errors)} error(s) in {path}", file=sys.stderr)
        return 1
    windows = sorted({f.window_ms for f in rules.features.values() if f.window_ms}, key=int)
    print(f"ok: {path}: version {rules.version}, {len(rules.features)} features, {len(rules.tags)} tags, "
          f"windows {', '.join(_fmt_ms(w) for w in windows) or 'none'}")
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from streams.io.topics import ensure_topics
    from streams.tools.generator import RetailGenerator
    from streams.tools.produce import produce

    ks = _settings().kafka
    topics = ks.source_topics()

    async def run() -> None:
        await ensure_topics(ks.bootstrap_servers, topics.values(), ks.partitions, ks.replication_factor,
                            client_options=ks.client_options())
        await produce(bootstrap_servers=ks.bootstrap_servers, topics=topics, count=args.count,
                      client_options=ks.client_options(),
                      rate=args.rate or None, progress=not args.quiet,
                      generator=RetailGenerator(seed=args.seed, customers=args.customers,
                                                bad_ratio=args.bad_ratio))

    asyncio.run(run())
    return 0


def cmd_tags(args: argparse.Namespace) -> int:
    import orjson

    from streams.io.redis_client import sync_client
    from streams.io.redis_sink import audience_key, tags_key

    settings = _settings()
    rs = settings.redis
    client = sync_client(rs)
    if args.audience:
        members = sorted(_text(m) for m in client.smembers(audience_key(settings.redis_key_prefix(), args.audience)))
        print(f"{args.audience}: {len(members)} customers")
        for m in members[: args.limit]:
            print(f"  {m}")
        return 0
    if not args.customer_id:
        sys.exit("tagstream tags: give a CUSTOMER_ID or --audience TAG")
    for cid in args.customer_id:
        tags = client.hgetall(tags_key(settings.redis_key_prefix(), cid, hash_tag=rs.cluster))
        if not tags:
            print(f"{cid}: no tags")
            continue
        print(f"{cid}:")
        for tag, raw in sorted(tags.items()):
            v = orjson.loads(raw)
            print(f"  {_text(tag):<24} since {_fmt_ts(v['since_ms'])}  (rules {v['rule_version']})")
    return 0


def cmd_stack(args: argparse.Namespace) -> int:
    if not STACK_SCRIPT.exists():
        sys.exit(f"tagstream stack: {STACK_SCRIPT} not found (the local stack runs from a source checkout)")
    return subprocess.call(["bash", str(STACK_SCRIPT), args.action, *args.services])


def cmd_schemas(args: argparse.Namespace) -> int:
    from schemas.export import export

    for p in export(Path(args.dir)):
        print(p)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.tools.demo import run_demo

    return run_demo(count=args.count, rate=args.rate, customers=args.customers, keep_worker=args.keep_worker)


def _fmt_ms(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _fmt_ts(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tagstream", description="Real-time customer tagging on Kafka and Redis.")
    sub = p.add_subparsers(dest="command", required=True)

    w = sub.add_parser("worker", help="run a worker (settings from TAGSTREAM_* environment variables)")
    w.add_argument("--rules", help="rule file or folder (default: TAGSTREAM_RULES_PATH or the shipped retail rules)")
    w.set_defaults(func=cmd_worker)

    r = sub.add_parser("rules", help="rule set tools")
    rsub = r.add_subparsers(dest="rules_command", required=True)
    rc = rsub.add_parser("check", help="compile a rule file or folder and report every error")
    rc.add_argument("path", nargs="?", help="rule file or folder (default: the shipped retail rules)")
    rc.set_defaults(func=cmd_rules_check)

    pr = sub.add_parser("produce", help="produce synthetic retail events to the three source topics")
    pr.add_argument("--count", type=int, default=10_000, help="events to produce (default 10000)")
    pr.add_argument("--rate", type=float, default=1000.0, help="events per second, 0 = as fast as possible")
    pr.add_argument("--customers", type=int, default=1000, help="distinct customers (Zipf-distributed)")
    pr.add_argument("--seed", type=int, default=1)
    pr.add_argument("--bad-ratio", type=float, default=0.0, help="share of malformed events (0..1)")
    pr.add_argument("--quiet", action="store_true", help="no progress lines")
    pr.set_defaults(func=cmd_produce)

    t = sub.add_parser("tags", help="show a customer's tags (or an audience) from Redis")
    t.add_argument("customer_id", nargs="*")
    t.add_argument("--audience", metavar="TAG", help="list the customers holding TAG")
    t.add_argument("--limit", type=int, default=20)
    t.set_defaults(func=cmd_tags)

    s = sub.add_parser("stack", help="start/stop the local Kafka + Redis (+ Prometheus) stack")
    s.add_argument("action", choices=["up", "down", "status", "resolve"])
    s.add_argument("services", nargs="*", help="kafka, redis, prometheus (up: default kafka redis)")
    s.set_defaults(func=cmd_stack)

    sc = sub.add_parser("schemas", help="export JSON Schema of every topic and the rule file")
    sc.add_argument("dir", nargs="?", default=str(REPO / "schemas" / "json"))
    sc.set_defaults(func=cmd_schemas)

    d = sub.add_parser("demo", help="start the local stack and a worker, produce events, show tags")
    d.add_argument("--count", type=int, default=30_000)
    d.add_argument("--rate", type=float, default=1_000.0)
    d.add_argument("--customers", type=int, default=2_000)
    d.add_argument("--keep-worker", action="store_true", help="leave the worker running at the end")
    d.set_defaults(func=cmd_demo)
    return p


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        return int(args.func(args) or 0)
    except RuntimeError as exc:  # unreachable broker, failed topic creation: say it in one line
        print(f"tagstream {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

