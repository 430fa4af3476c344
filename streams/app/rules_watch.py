"""Hot deploy: every worker follows the rules topic and switches rule sets while it runs.

* At start (``deployed_rules``) the worker takes the latest deployment that compiles, else the
  local rule file (``TAGSTREAM_RULES_PATH``): a worker that starts later runs what was deployed.
* While running (``RulesWatch.check``, on a timer) a new deployment is compiled; if it compiles,
  the customer stage switches engines between two batches (``CustomerStage.swap_engine``) and
  queues every customer it holds for re-evaluation: the due timer sends them in bounded slices
  (streams/engine/reevaluation.py) and their ticks bring them through the stage, which
  re-evaluates a state made under other rules (cause ``rule_change``).
  A deployment that does not compile is skipped with a loud log and
  ``tagstream_rules_rejected_total``; the worker keeps its rules.
* The watch also knows when each feature of the rule set in force was *born* (the deployment
  that added it; ``fold_deployments``), which the engine needs to keep the books of a backfill
  (streams/engine/backfill.py): a worker that starts later computes the same births from the topic.
* Each worker reports the version it runs to Redis (``{prefix}:workers``: worker id -> JSON),
  refreshed every few seconds; ``tagstream rules status`` reads it.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
from aiokafka.errors import KafkaError

from streams.engine.backfill import next_births, state_keys
from streams.io.rules_topic import Deployment, RulesFollower, workers_key
from streams.io.topics import rules_topic_name
from streams.settings import Settings
from tag_rules import RuleSetError, load_rules
from tag_rules.compiler import CompiledRuleSet

log = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0


def worker_id() -> str:
    return os.environ.get("TAGSTREAM_WORKER_ID") or f"{socket.gethostname()}:{os.getpid()}"


def compile_deployment(d: Deployment, data_dir: Path) -> CompiledRuleSet:
    """Writes the deployment's files under ``data_dir/rules/<version>`` and compiles them
    (raises RuleSetError)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", d.version)[:100] or "unnamed"
    return load_rules(d.write_to(data_dir / "rules" / f"{d.offset}-{safe}"))


def fold_deployments(local: CompiledRuleSet, deployments: Iterable[Deployment],
                     compile_: Callable[[Deployment], CompiledRuleSet]) -> tuple[CompiledRuleSet, int, dict[str, int]]:
    """The rule set in force after ``deployments`` (in topic order) on top of the local rule set:
    the newest one that compiles and its offset (``local`` and -1 when none does), and the birth
    of each of its features that a deployment added (state key -> deployed_at_ms)."""
    rules, offset, keys = local, -1, state_keys(local)
    births: dict[str, int] = {}
    for d in deployments:
        try:
            new = compile_(d)
        except RuleSetError as exc:
            log.error("deployed rule set %s (offset %d) does not compile here; skipped: %s", d.version, d.offset, exc)
            continue
        births = next_births(births, keys, state_keys(new), d.deployed_at_ms)
        rules, offset, keys = new, d.offset, state_keys(new)
    return rules, offset, births


def deployed_rules(settings: Settings, local: CompiledRuleSet, timeout_s: float = 30.0) -> tuple[
        CompiledRuleSet, int, dict[str, int]]:
    """The rule set a starting worker runs (and the CLI reads against): the newest deployment
    that compiles (and its offset), else ``local`` (offset -1); and its features' births."""
    import asyncio

    ks = settings.kafka
    follower = RulesFollower(ks.bootstrap_servers, rules_topic_name(settings), ks.client_options())

    async def read() -> list[Deployment]:
        try:
            return await asyncio.wait_for(follower.read_to_end(timeout_s), timeout_s + 5)
        finally:
            await follower.close()

    rules, offset, births = fold_deployments(local, asyncio.run(read()),
                                             lambda d: compile_deployment(d, settings.data_dir))
    if offset >= 0:
        log.info("running the deployed rule set %s (rules topic offset %d)", rules.version, offset)
    return rules, offset, births


class RulesWatch:
    """Follows the rules topic; ``check()`` applies a new deployment through ``apply``."""

    def __init__(self, settings: Settings, *, current: CompiledRuleSet, offset: int,
                 apply: Callable[[CompiledRuleSet, Mapping[str, int]], Awaitable[int]], redis: Any, prefix: str,
                 on_rejected: Callable[[str], None], births: Mapping[str, int] | None = None) -> None:
        ks = settings.kafka
        self._follower = RulesFollower(ks.bootstrap_servers, rules_topic_name(settings), ks.client_options(),
                                       on_bad=on_rejected)
        self._data_dir = settings.data_dir
        self._apply = apply
        self._redis = redis
        self._key = workers_key(prefix)
        self._on_rejected = on_rejected
        self._id = worker_id()
        self.version = current.version
        self.offset = offset
        self.births = dict(births or {})
        """Births of the features of the newest deployment that compiled (streams/engine/backfill.py)."""
        self._keys = state_keys(current)
        self.since_ms = int(time.time() * 1000)
        self._last_status = 0.0
        self._kafka_away = False

    async def check(self) -> None:
        """Applies the newest new deployment, if any; reports the status every few seconds."""
        try:
            polled = await self._follower.poll()
        except KafkaError as exc:  # Kafka away (a broker restart): the next tick asks again
            if not self._kafka_away:
                log.warning("rules topic unreachable (%s: %s); the worker keeps rules %s and retries",
                            type(exc).__name__, exc, self.version)
            self._kafka_away = True
            polled = []
        else:
            if self._kafka_away:
                log.info("rules topic reachable again")
            self._kafka_away = False
        new = [d for d in polled if d.offset > self.offset]
        for d in new[:-1]:  # not run, but the births of their features count (as for a worker starting now)
            try:
                self._compile(d)
            except RuleSetError as exc:
                log.error("deployed rule set %s (rules topic offset %d) does not compile here; skipped: %s",
                          d.version, d.offset, exc)
        if new:
            await self._take(new[-1])
        if time.monotonic() - self._last_status >= STATUS_EVERY_S:
            await self.report()

    def _compile(self, d: Deployment) -> CompiledRuleSet:
        """Compiles a deployment and folds it into the births (raises RuleSetError)."""
        self.offset = d.offset  # a bad one is not retried
        rules = compile_deployment(d, self._data_dir)
        keys = state_keys(rules)
        self.births = next_births(self.births, self._keys, keys, d.deployed_at_ms)
        self._keys = keys
        return rules

    async def _take(self, d: Deployment) -> None:
        try:
            rules = self._compile(d)
        except RuleSetError as exc:
            log.error("deployed rule set %s (rules topic offset %d) rejected, keeping %s:\n%s",
                      d.version, d.offset, self.version, exc)
            self._on_rejected("does not compile")
            return
        if rules.version == self.version:
            log.info("deployment at offset %d is version %s, already running", d.offset, rules.version)
            return
        started = time.monotonic()
        n = await self._apply(rules, self.births)
        log.warning("rules switched %s -> %s (offset %d) in %.3f s; %d customers queued for re-evaluation",
                    self.version, rules.version, d.offset, time.monotonic() - started, n)
        self.version, self.since_ms = rules.version, int(time.time() * 1000)
        await self.report()

    async def report(self) -> None:
        self._last_status = time.monotonic()
        status = {"version": self.version, "offset": self.offset, "since_ms": self.since_ms,
                  "seen_ms": int(time.time() * 1000)}
        try:
            await self._redis.hset(self._key, self._id, orjson.dumps(status))
        except Exception as exc:  # status is best effort; tags are not affected
            log.warning("could not report the rules status to Redis: %r", exc)

    async def close(self) -> None:
        await self._follower.close()

