"""The ``tagstream`` command line.

Exit codes: 0 done; 1 the command failed (an unreachable broker or Redis, a rule file with
errors under ``rules check``); 2 a usage error: a bad argument, a bad ``TAGSTREAM_*`` setting, an
unknown tag, a rule set the worker cannot load (argparse's own usage errors exit 2 too).

The commands' arguments and help are in :mod:`streams.cli_args`; each command here reads the
settings and hands over to the module that does the work (most under ``streams/tools/``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from streams.cli_args import Commands, build_parser

if TYPE_CHECKING:
    from streams.settings import Settings

REPO = Path(__file__).resolve().parents[1]
STACK_SCRIPT = REPO / "deploy" / "local" / "stack.sh"


class UsageError(Exception):
    """The command line asked for something that does not exist or cannot be: exit code 2."""


def _settings() -> Settings:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from streams.settings import Settings, describe_errors

    try:
        return Settings()
    except ValidationError as exc:
        for line in describe_errors(exc):
            print(f"tagstream: bad setting {line}", file=sys.stderr)
    except SettingsError as exc:  # e.g. TAGSTREAM_KAFKA='not json'
        print(f"tagstream: bad setting: {exc} (nested settings are TAGSTREAM_<GROUP>__<NAME>)", file=sys.stderr)
    raise SystemExit(2)


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.app.faust_compat import FaustCompatError
    from streams.app.worker import run_worker
    from streams.engine.native_engine import TagEngineRefused
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
    except (FaustCompatError, RedisModeError, TagEngineRefused) as exc:
        print(f"tagstream: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_rules_check(args: argparse.Namespace) -> int:
    from streams.tools.rule_loading import load_or_report
    from tag_rules import DEFAULT_RULES

    path = args.path or DEFAULT_RULES
    rules = load_or_report(path, "{n} error(s) in {path}")
    if rules is None:
        return 1
    windows = sorted({f.window_ms for f in rules.features.values() if f.window_ms}, key=int)
    print(f"ok: {path}: version {rules.version}, {len(rules.features)} features, {len(rules.tags)} tags, "
          f"windows {', '.join(_fmt_ms(w) for w in windows) or 'none'}")
    return 0


def cmd_rules_deploy(args: argparse.Namespace) -> int:
    from streams.tools.rules_deploy import deploy

    return deploy(_settings(), args.path, args.wait, args.by)


def cmd_rules_status(args: argparse.Namespace) -> int:
    from streams.tools.rules_deploy import status

    return status(_settings())


def cmd_rules_test(args: argparse.Namespace) -> int:
    from streams.tools.rule_tests import run_command

    return run_command(args.path, args.fixtures)


def cmd_rules_diff(args: argparse.Namespace) -> int:
    """Shadow evaluation: the new rule set against every customer's state in the changelog."""
    import time

    import orjson

    from streams.tools.rule_loading import rules_in_force
    from streams.tools.rules_diff import diff_changelog, render_table
    from tag_rules import RuleSetError, load_rules

    settings = _settings()
    if args.samples < 0:
        sys.exit("tagstream rules diff: --samples must be 0 or more")
    try:
        old = rules_in_force(settings)
        new = load_rules(args.path)
    except RuleSetError as exc:  # the same file:line:col lines as `rules check`
        for e in exc.errors:
            print(e)
        print(f"{len(exc.errors)} error(s) in the rule set", file=sys.stderr)
        return 2
    report = asyncio.run(diff_changelog(settings, old, new, now_ms=time.time_ns() // 1_000_000,
                                         samples=args.samples, progress=not args.quiet))
    if args.json:
        print(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(render_table(report))
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    """Seed features a deployment added from the source topics' retained history."""
    from streams.tools.backfill import BackfillRefused, Options, run
    from tag_rules import RuleSetError

    settings = _settings()
    opts = Options(args.features, args.start, args.from_offset or (), args.dry_run, args.wait, not args.quiet)
    try:
        return run(settings, opts)
    except RuleSetError as exc:
        raise UsageError(f"the local rule set has {len(exc.errors)} error(s) (see `tagstream rules check`)") from exc
    except BackfillRefused as exc:
        print(f"tagstream backfill: refused, nothing was sent:\n{exc}", file=sys.stderr)
        return 2


def cmd_forget(args: argparse.Namespace) -> int:
    """Erasure: the whole cluster of an id (docs/identity.md)."""
    from streams.tools.forget import ForgetRefused, forget

    try:
        return forget(_settings(), args.id, args.wait)
    except ForgetRefused as exc:
        raise UsageError(str(exc)) from exc


def cmd_explain(args: argparse.Namespace) -> int:
    """Why a customer holds its tags: its state in the changelog, evaluated now."""
    from streams.tools.explain import run
    from streams.tools.rule_loading import rules_in_force
    from tag_rules import RuleSetError

    settings = _settings()
    try:
        rules = rules_in_force(settings)
    except RuleSetError as exc:
        raise UsageError(f"the rule set has {len(exc.errors)} error(s) (see `tagstream rules check`)") from exc
    return run(settings, rules, args.customer_id, as_json=args.json)


def cmd_produce(args: argparse.Namespace) -> int:
    from streams.io.topics import ensure_topics
    from streams.tools.generator import RetailGenerator
    from streams.tools.produce import produce

    ks = _settings().kafka
    topics = ks.source_topics()
    if args.identity:
        topics["identity"] = ks.identity_topic

    async def run() -> None:
        await ensure_topics(ks.bootstrap_servers, topics.values(), ks.partitions, ks.replication_factor,
                            client_options=ks.client_options())
        await produce(bootstrap_servers=ks.bootstrap_servers, topics=topics, count=args.count,
                      client_options=ks.client_options(),
                      rate=args.rate or None, progress=not args.quiet,
                      generator=RetailGenerator(seed=args.seed, customers=args.customers,
                                                bad_ratio=args.bad_ratio, identity=args.identity))

    asyncio.run(run())
    return 0


def cmd_tags(args: argparse.Namespace) -> int:
    """Customers' tags, or an audience, from Redis."""
    from streams.tools.tag_lookup import TagLookupRefused, run

    settings = _settings()
    try:
        return run(settings, args.customer_id, audience=args.audience, limit=args.limit, as_json=args.json)
    except TagLookupRefused as exc:
        raise UsageError(str(exc)) from exc


def cmd_serve(args: argparse.Namespace) -> int:
    from streams.io.api_server import ApiServer, describe

    settings = _settings()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with ApiServer.from_settings(settings, host=args.host, port=args.port) as server:
            api = settings.api.model_copy(update={"host": server.host})
            print(f"tagstream serve: HTTP API on {describe(api, server.port)}, redis "
                  f"{settings.redis.url.split('@')[-1]}", flush=True)  # never the credentials
            await stop.wait()

    asyncio.run(run())
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

    return run_demo(count=args.count, rate=args.rate, customers=args.customers, keep_worker=args.keep_worker,
                    identity=args.identity)


def _fmt_ms(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


COMMANDS: Commands = {
    "worker": cmd_worker,
    "rules check": cmd_rules_check,
    "rules test": cmd_rules_test,
    "rules deploy": cmd_rules_deploy,
    "rules status": cmd_rules_status,
    "rules diff": cmd_rules_diff,
    "backfill": cmd_backfill,
    "explain": cmd_explain,
    "forget": cmd_forget,
    "produce": cmd_produce,
    "tags": cmd_tags,
    "serve": cmd_serve,
    "stack": cmd_stack,
    "schemas": cmd_schemas,
    "demo": cmd_demo,
}
"""What runs each command of :func:`streams.cli_args.build_parser` (its ``func``)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(COMMANDS).parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"tagstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # unreachable broker, failed topic creation: say it in one line
        print(f"tagstream {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
