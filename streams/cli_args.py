"""The ``tagstream`` command line's syntax: every command, argument, help text and exit-code epilog.

:func:`build_parser` describes the commands; the functions that run them live in
:mod:`streams.cli` (its ``COMMANDS``), which passes them in, so this module imports none of them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas" / "json"
"""``tagstream schemas``' default output folder (in the source checkout)."""

Command = Callable[[argparse.Namespace], int]
Commands = Mapping[str, Command]
"""The function that runs each command, by its words: ``"worker"``, ``"rules check"``, ..."""


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
                         help="print the versions of tagstream, faust-streaming, Python and the engine (native "
                              "or python), and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from streams.version import versions

        v = versions()
        print(f"tagstream {v['version']} (faust-streaming {v['faust']}, Python {v['python']}, "  # stdout, as argparse's
              f"{v['engine']} engine)")
        parser.exit()


def build_parser(commands: Commands) -> argparse.ArgumentParser:
    """The ``tagstream`` parser; each command's ``func`` (in the parsed namespace) is ``commands[its words]``."""
    p = argparse.ArgumentParser(prog="tagstream", description="Real-time customer tagging on Kafka and Redis.",
                                epilog="exit codes: 0 done, 1 the command failed, 2 usage error (bad argument, "
                                       "bad TAGSTREAM_* setting, unknown tag)")
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", required=True)

    w = sub.add_parser("worker", help="run a worker (settings from TAGSTREAM_* environment variables)")
    w.add_argument("--rules", help="rule file or folder (default: TAGSTREAM_RULES_PATH or the shipped retail rules)")
    w.set_defaults(func=commands["worker"])
    _add_rules_commands(sub, commands)
    _add_state_commands(sub, commands)
    _add_data_commands(sub, commands)
    _add_ops_commands(sub, commands)
    return p


Subparsers = Any
"""argparse's sub-parser action (private type)."""


def _add_ops_commands(sub: Subparsers, commands: Commands) -> None:
    """serve, stack, schemas, demo."""
    sv = sub.add_parser("serve", help="serve the HTTP API alone (tags and audiences from Redis; explain reads Kafka)")
    sv.add_argument("--host", help="bind address (default: TAGSTREAM_API__HOST, 127.0.0.1)")
    sv.add_argument("--port", type=int, help="port (default: TAGSTREAM_API__PORT, 9465; 0: any free port)")
    sv.set_defaults(func=commands["serve"])

    s = sub.add_parser("stack", help="start/stop the local Kafka + Redis (+ Prometheus) stack")
    s.add_argument("action", choices=["up", "down", "status", "resolve"])
    s.add_argument("services", nargs="*", help="kafka, redis, prometheus (up: default kafka redis)")
    s.set_defaults(func=commands["stack"])

    sc = sub.add_parser("schemas", help="export JSON Schema of every topic and the rule file")
    sc.add_argument("dir", nargs="?", default=str(SCHEMAS_DIR))
    sc.set_defaults(func=commands["schemas"])

    d = sub.add_parser("demo", help="start the local stack and a worker, produce events, show tags")
    d.add_argument("--count", type=_number(int, low=1), default=30_000)
    d.add_argument("--rate", type=_number(float, low=0), default=1_000.0)
    d.add_argument("--customers", type=_number(int, low=1), default=2_000)
    d.add_argument("--keep-worker", action="store_true", help="leave the worker running at the end")
    d.add_argument("--identity", action="store_true",
                   help="identity resolution on (typed ids, anonymous sessions that log in, CRM links); prints the "
                        "match rate before and after resolution (docs/identity.md)")
    d.set_defaults(func=commands["demo"])


def _add_rules_commands(sub: Subparsers, commands: Commands) -> None:
    """rules check / test / deploy / status / diff."""
    r = sub.add_parser("rules", help="rule set tools")
    rsub = r.add_subparsers(dest="rules_command", required=True)
    rc = rsub.add_parser("check", help="compile a rule file or folder and report every error")
    rc.add_argument("path", nargs="?", help="rule file or folder (default: the shipped retail rules)")
    rc.set_defaults(func=commands["rules check"])
    rt = rsub.add_parser("test", help="run rule-test fixtures through the engine on a simulated clock")
    rt.add_argument("path", help="rule file or folder")
    rt.add_argument("fixtures", nargs="?", help="fixtures file (default: X.tests.yaml next to X.yaml, or "
                    "every *.tests.yaml in the folder)")
    rt.set_defaults(func=commands["rules test"])
    rd = rsub.add_parser("deploy", help="check a rule set and deploy it to every worker of the app id (hot)",
                         epilog="exit codes: 0 deployed (and, with --wait, running everywhere), 1 --wait timed out, "
                                "2 refused (the rule set does not compile)")
    rd.add_argument("path", help="rule file or folder")
    rd.add_argument("--wait", type=_number(float, low=0), default=0.0, metavar="S",
                    help="wait up to S seconds until every live worker runs it")
    rd.add_argument("--by", help="who deploys (default: the user name)")
    rd.set_defaults(func=commands["rules deploy"])
    rs_ = rsub.add_parser("status", help="the deployed rule set and the version each worker runs")
    rs_.set_defaults(func=commands["rules status"])
    rf = rsub.add_parser("diff", help="shadow-evaluate a new rule set on every customer's state (publishes nothing)")
    rf.add_argument("path", help="the new rule file or folder (the current one: TAGSTREAM_RULES_PATH)")
    rf.add_argument("--samples", type=int, default=5, metavar="N", help="customer ids shown per tag and change")
    rf.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    rf.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    rf.set_defaults(func=commands["rules diff"])


def _add_state_commands(sub: Subparsers, commands: Commands) -> None:
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
    bf.set_defaults(func=commands["backfill"])

    ex = sub.add_parser("explain", help="why a customer holds its tags: features, conditions, gates, next due time",
                        description="Reads the customer's latest state from the changelog (the partition its id "
                                    "hashes to) and evaluates it now under the rule set in force (the deployed one, "
                                    "else TAGSTREAM_RULES_PATH), as GET /customers/{id}/explain does.",
                        epilog="exit codes: 0 done, 1 Kafka unreachable or the changelog topic missing, 2 no state "
                               "for the customer (unknown, or deleted: nothing left to remember)")
    ex.add_argument("customer_id")
    ex.add_argument("--json", action="store_true", help="the document as JSON (the HTTP API's CustomerExplain)")
    ex.set_defaults(func=commands["explain"])

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
    fg.set_defaults(func=commands["forget"])


def _add_data_commands(sub: Subparsers, commands: Commands) -> None:
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
    pr.set_defaults(func=commands["produce"])

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
    t.set_defaults(func=commands["tags"])
