"""The ``tagstream`` command line.

Exit codes: 0 done; 1 the command failed (an unreachable broker or Redis, a rule file with
errors under ``rules check``); 2 a usage error: a bad argument, a bad ``TAGSTREAM_*`` setting, an
unknown tag, a rule set the worker cannot load (argparse's own usage errors exit 2 too).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.settings import Settings
    from tag_rules import CompiledRuleSet

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


def _rules_in_force(settings: Settings, *, quiet: bool = False) -> CompiledRuleSet:
    """The deployed rule set (``rules deploy``) if the rules topic has one, else the local one
    (``TAGSTREAM_RULES_PATH``); the local one too when Kafka does not answer within a few seconds
    (said on stderr unless ``quiet``: a Redis-only command such as ``tags`` need not reach Kafka)."""
    from streams.app.rules_watch import deployed_rules

    local = settings.load_rules()
    try:
        return deployed_rules(settings, local, timeout_s=5.0)[0]
    except Exception as exc:  # Kafka unreachable: go on with the local rules
        if not quiet:
            print(f"tagstream: could not read the deployed rules ({type(exc).__name__}); using "
                  f"{settings.rules_path or 'the shipped rules'}", file=sys.stderr)
        return local


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

    from streams.tools.rules_diff import diff_changelog, render_table
    from tag_rules import RuleSetError, load_rules

    settings = _settings()
    if args.samples < 0:
        sys.exit("tagstream rules diff: --samples must be 0 or more")
    try:
        old = _rules_in_force(settings)
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
    from tag_rules import RuleSetError

    settings = _settings()
    try:
        rules = _rules_in_force(settings)
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


def _redis_errors_in_one_line(cmd: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from redis.exceptions import RedisError

        try:
            return cmd(args)
        except RedisError as exc:
            raise RuntimeError(f"Redis: {exc}") from exc

    return run


@_redis_errors_in_one_line
def cmd_tags(args: argparse.Namespace) -> int:
    import orjson

    from streams.io.redis_client import sync_client
    from streams.io.redis_sink import tags_key

    settings = _settings()
    if not args.audience and not args.customer_id:
        raise UsageError("give a CUSTOMER_ID or --audience TAG")
    if args.audience:
        _check_tag(settings, args.audience)
    rs = settings.redis
    if args.audience:
        return asyncio.run(_print_audience(settings, args.audience, args.limit, as_json=args.json))
    client = sync_client(rs)
    found = {}
    for given in args.customer_id:
        cid = _canonical(settings, client, given)
        tags = client.hgetall(tags_key(settings.redis_key_prefix(), cid, hash_tag=rs.cluster))
        found[given] = {_text(tag): orjson.loads(raw) for tag, raw in sorted(tags.items())}
    _print_tags(found, as_json=args.json)
    return 0


def _canonical(settings: Settings, client: Any, given: str) -> str:
    """Identity resolution: the customer id whose tags ``given`` (any typed id) reads, by the alias
    map (docs/identity.md); said on stderr when it is another id. Without identity: ``given``."""
    if not settings.identity.enabled:
        return given
    from schemas.ids import parse_id_key
    from streams.io.aliases import alias_key

    try:
        parse_id_key(given)
    except ValueError:
        raise UsageError(f"{given!r} is not a typed id: with identity resolution on, ids are <type>:<value> "
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
    import difflib

    from tag_rules import RuleSetError

    try:
        rules = _rules_in_force(settings, quiet=True)
    except RuleSetError as exc:
        raise UsageError(f"cannot check tag {tag!r}: the rule set has {len(exc.errors)} error(s) "
                         f"(see `tagstream rules check`)") from exc
    if tag in rules.tags:
        return
    close = difflib.get_close_matches(tag, rules.tags, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UsageError(f"unknown tag {tag!r}; {hint}the rule set (version {rules.version}) has "
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
    import orjson

    return orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode()


async def _print_audience(settings: Settings, tag: str, limit: int, *, as_json: bool) -> int:
    """The audience's size (SCARD) and its first ``limit`` members, paged with SSCAN as the HTTP API
    pages (never the whole set in memory; unordered)."""
    from streams.io.tag_reader import open_reader

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


def _fmt_ts(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _number(kind: Callable[[str], Any], *, low: float, high: float | None = None) -> Callable[[str], Any]:
    """An argparse type: ``kind`` in [low, high]; anything else is argparse's usage error (exit 2)."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f">= {low:g}" if high is None else f"between {low:g} and {high:g}"
            raise argparse.ArgumentTypeError(f"must be {bounds}: {text!r}")
        return value

    return parse


class _Version(argparse.Action):
    """``--version``: computed when asked (package metadata), not at every start."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the versions of tagstream, faust-streaming and Python, and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from streams.version import versions

        v = versions()
        print(f"tagstream {v['version']} (faust-streaming {v['faust']}, Python {v['python']})")  # stdout, as argparse's
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tagstream", description="Real-time customer tagging on Kafka and Redis.",
                                epilog="exit codes: 0 done, 1 the command failed, 2 usage error (bad argument, "
                                       "bad TAGSTREAM_* setting, unknown tag)")
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", required=True)

    w = sub.add_parser("worker", help="run a worker (settings from TAGSTREAM_* environment variables)")
    w.add_argument("--rules", help="rule file or folder (default: TAGSTREAM_RULES_PATH or the shipped retail rules)")
    w.set_defaults(func=cmd_worker)
    _add_rules_commands(sub)
    _add_state_commands(sub)
    _add_data_commands(sub)
    _add_ops_commands(sub)
    return p


Subparsers = Any
"""argparse's sub-parser action (private type)."""


def _add_ops_commands(sub: Subparsers) -> None:
    """serve, stack, schemas, demo."""
    sv = sub.add_parser("serve", help="serve the HTTP API alone (tags and audiences from Redis; explain reads Kafka)")
    sv.add_argument("--host", help="bind address (default: TAGSTREAM_API__HOST, 127.0.0.1)")
    sv.add_argument("--port", type=int, help="port (default: TAGSTREAM_API__PORT, 9465; 0: any free port)")
    sv.set_defaults(func=cmd_serve)

    s = sub.add_parser("stack", help="start/stop the local Kafka + Redis (+ Prometheus) stack")
    s.add_argument("action", choices=["up", "down", "status", "resolve"])
    s.add_argument("services", nargs="*", help="kafka, redis, prometheus (up: default kafka redis)")
    s.set_defaults(func=cmd_stack)

    sc = sub.add_parser("schemas", help="export JSON Schema of every topic and the rule file")
    sc.add_argument("dir", nargs="?", default=str(REPO / "schemas" / "json"))
    sc.set_defaults(func=cmd_schemas)

    d = sub.add_parser("demo", help="start the local stack and a worker, produce events, show tags")
    d.add_argument("--count", type=_number(int, low=1), default=30_000)
    d.add_argument("--rate", type=_number(float, low=0), default=1_000.0)
    d.add_argument("--customers", type=_number(int, low=1), default=2_000)
    d.add_argument("--keep-worker", action="store_true", help="leave the worker running at the end")
    d.add_argument("--identity", action="store_true",
                   help="identity resolution on (typed ids, anonymous sessions that log in, CRM links); prints the "
                        "match rate before and after resolution (docs/identity.md)")
    d.set_defaults(func=cmd_demo)


def _add_rules_commands(sub: Subparsers) -> None:
    """rules check / test / deploy / status / diff."""
    r = sub.add_parser("rules", help="rule set tools")
    rsub = r.add_subparsers(dest="rules_command", required=True)
    rc = rsub.add_parser("check", help="compile a rule file or folder and report every error")
    rc.add_argument("path", nargs="?", help="rule file or folder (default: the shipped retail rules)")
    rc.set_defaults(func=cmd_rules_check)
    rt = rsub.add_parser("test", help="run rule-test fixtures through the engine on a simulated clock")
    rt.add_argument("path", help="rule file or folder")
    rt.add_argument("fixtures", nargs="?", help="fixtures file (default: X.tests.yaml next to X.yaml, or "
                    "every *.tests.yaml in the folder)")
    rt.set_defaults(func=cmd_rules_test)
    rd = rsub.add_parser("deploy", help="check a rule set and deploy it to every worker of the app id (hot)",
                         epilog="exit codes: 0 deployed (and, with --wait, running everywhere), 1 --wait timed out, "
                                "2 refused (the rule set does not compile)")
    rd.add_argument("path", help="rule file or folder")
    rd.add_argument("--wait", type=_number(float, low=0), default=0.0, metavar="S",
                    help="wait up to S seconds until every live worker runs it")
    rd.add_argument("--by", help="who deploys (default: the user name)")
    rd.set_defaults(func=cmd_rules_deploy)
    rs_ = rsub.add_parser("status", help="the deployed rule set and the version each worker runs")
    rs_.set_defaults(func=cmd_rules_status)
    rf = rsub.add_parser("diff", help="shadow-evaluate a new rule set on every customer's state (publishes nothing)")
    rf.add_argument("path", help="the new rule file or folder (the current one: TAGSTREAM_RULES_PATH)")
    rf.add_argument("--samples", type=int, default=5, metavar="N", help="customer ids shown per tag and change")
    rf.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    rf.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    rf.set_defaults(func=cmd_rules_diff)


def _add_state_commands(sub: Subparsers) -> None:
    """backfill, explain, forget: commands on the customers' state."""
    bf = sub.add_parser("backfill", help="seed features a deployment added from the source topics' retained history",
                        description="Replays the source records (from --from, default the oldest retained) through "
                                    "the customer topic to the workers, which apply each event to the named features "
                                    "only, once: events they counted live and events an earlier run applied are "
                                    "skipped (docs/operations.md, Backfill).",
                        epilog="exit codes: 0 sent (with --wait: applied), 1 Kafka or Redis unreachable or --wait "
                               "timed out, 2 refused (unknown or not new feature, a worker on other rules, a start "
                               "before retention)")
    bf.add_argument("features", nargs="+", metavar="FEATURE", help="features of the deployed rule set to seed")
    bf.add_argument("--from", dest="start", default="earliest", metavar="WHEN",
                    help="earliest (default), a duration before now (3d, 36h) or an RFC 3339 time: the source "
                         "records' Kafka timestamps")
    bf.add_argument("--from-offset", action="append", metavar="SOURCE:PARTITION=OFFSET",
                    help="start this source partition at OFFSET (repeatable; others follow --from)")
    bf.add_argument("--dry-run", action="store_true", help="show the records that would be replayed; send nothing")
    bf.add_argument("--wait", type=_number(float, low=0), default=0.0, metavar="S",
                    help="wait up to S seconds until the workers have applied every replayed event")
    bf.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    bf.set_defaults(func=cmd_backfill)

    ex = sub.add_parser("explain", help="why a customer holds its tags: features, conditions, gates, next due time",
                        description="Reads the customer's latest state from the changelog (the partition its id "
                                    "hashes to) and evaluates it now under the rule set in force (the deployed one, "
                                    "else TAGSTREAM_RULES_PATH), as GET /customers/{id}/explain does.",
                        epilog="exit codes: 0 done, 1 Kafka unreachable or the changelog topic missing, 2 no state "
                               "for the customer (unknown, or deleted: nothing left to remember)")
    ex.add_argument("customer_id")
    ex.add_argument("--json", action="store_true", help="the document as JSON (the HTTP API's CustomerExplain)")
    ex.set_defaults(func=cmd_explain)

    fg = sub.add_parser("forget", help="erase a person: every id of its cluster, state, tags and aliases",
                        description="Identity resolution only. Sends an erasure request to the identity stage: "
                                    "every id linked to ID loses its state and tags (cause erasure) and aliases; "
                                    "events and links naming them are dropped for "
                                    "TAGSTREAM_IDENTITY__ERASURE_PERIOD_MS (docs/identity.md, Erasure).",
                        epilog="exit codes: 0 sent (with --wait: applied), 1 Kafka unreachable or --wait timed out, "
                               "2 identity resolution off or ID not a typed id")
    fg.add_argument("id", metavar="ID", help="any typed id of the person, e.g. user:u-1 or anonymous:d-9")
    fg.add_argument("--wait", type=_number(float, low=0), default=0.0, metavar="S",
                    help="wait up to S seconds until the worker has applied it")
    fg.set_defaults(func=cmd_forget)


def _add_data_commands(sub: Subparsers) -> None:
    """produce, tags."""
    pr = sub.add_parser("produce", help="produce synthetic retail events to the three source topics")
    pr.add_argument("--count", type=_number(int, low=1), default=10_000, help="events to produce (default 10000)")
    pr.add_argument("--rate", type=_number(float, low=0), default=1000.0,
                    help="events per second, 0 = as fast as possible")
    pr.add_argument("--customers", type=_number(int, low=1), default=1000,
                    help="distinct customers (Zipf-distributed)")
    pr.add_argument("--seed", type=int, default=1)
    pr.add_argument("--bad-ratio", type=_number(float, low=0, high=1), default=0.0,
                    help="share of malformed events (0..1)")
    pr.add_argument("--quiet", action="store_true", help="no progress lines")
    pr.add_argument("--identity", action="store_true",
                    help="identity traffic: separate card and account ids, anonymous sessions that log in, contact "
                         "hashes, CRM records on TAGSTREAM_KAFKA__IDENTITY_TOPIC (docs/identity.md)")
    pr.set_defaults(func=cmd_produce)

    t = sub.add_parser("tags", help="show a customer's tags (or an audience) from Redis",
                       epilog="exit codes: 0 done, 1 Redis unreachable, 2 usage error (no CUSTOMER_ID or --audience, "
                              "a TAG not in the rule set: the message lists the known tags)")
    t.add_argument("customer_id", nargs="*")
    t.add_argument("--audience", metavar="TAG",
                   help="count the customers holding TAG (a tag of the rule set) and list some (unordered)")
    t.add_argument("--limit", type=_number(int, low=0), default=20, help="customer ids listed with --audience")
    t.add_argument("--json", action="store_true",
                   help="JSON output: {customer_id: {tag: {since_ms, rule_version}}}, or with --audience "
                        "{tag, count, customers}")
    t.set_defaults(func=cmd_tags)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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

