"""The rules topic: deployed rule sets, versioned, for every worker of an app id.

``<app id>-rules`` is a compacted topic with one partition. ``tagstream rules deploy PATH``
publishes a record per deployment (key = the rule set's version, value = the rule files' texts);
the record with the highest offset is the rule set in force. Every worker reads the topic from
the start (no consumer group: each one needs every record), takes the latest deployment at start
and follows the topic while it runs. Rollback = deploy the previous version again.

A record that does not parse, or whose rules do not compile, is skipped with a loud log and a
metric; it never stops a worker (``deploy`` refuses such a rule set before it is published).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from schemas.deployment import RULES_RECORD_FORMAT, RulesDeployment
from tag_rules import CompiledRuleSet, RuleSetError, load_rules

log = logging.getLogger(__name__)

MAX_RULES_BYTES = 900_000
"""A deployed rule set must fit in one record (the broker's default limit is 1 MiB)."""


class BadRulesRecord(ValueError):
    """A rules-topic record that is not a deployment this worker can read."""


@dataclass(frozen=True)
class Deployment:
    """One deployed rule set: its version, its files (name -> YAML text), when and by whom."""

    version: str
    files: Mapping[str, str]
    deployed_at_ms: int
    deployed_by: str = ""
    offset: int = -1

    def encode(self) -> bytes:
        return orjson.dumps({"format": RULES_RECORD_FORMAT, "version": self.version, "files": dict(self.files),
                             "deployed_at_ms": self.deployed_at_ms, "deployed_by": self.deployed_by})

    def write_to(self, folder: Path) -> Path:
        """Writes the files into ``folder`` (created) and returns it, for ``load_rules``."""
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.y*ml"):
            old.unlink()
        for name, text in self.files.items():
            (folder / name).write_text(text, encoding="utf-8")
        return folder


def decode_deployment(value: bytes | None, offset: int = -1) -> Deployment:
    """Raises BadRulesRecord with the reason for anything but a well-formed deployment
    (``schemas.deployment.RulesDeployment``)."""
    if value is None:
        raise BadRulesRecord("empty record (tombstone)")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise BadRulesRecord(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise BadRulesRecord("not a JSON object")
    if doc.get("format") != RULES_RECORD_FORMAT:
        raise BadRulesRecord(f"unknown format {doc.get('format')!r} (this worker reads {RULES_RECORD_FORMAT})")
    try:
        d = RulesDeployment.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "record"
        raise BadRulesRecord(f"{where}: {first['msg']}") from exc
    return Deployment(d.version, dict(d.files), d.deployed_at_ms, d.deployed_by, offset)


def deployment_of(files: Mapping[str, str], version: str, deployed_by: str = "") -> Deployment:
    """A deployment of the given rule files; raises ValueError if it cannot fit in one record."""
    d = Deployment(version, dict(files), int(time.time() * 1000), deployed_by)
    size = len(d.encode())
    if size > MAX_RULES_BYTES:
        raise ValueError(f"the rule set is {size:,} bytes; a deployment holds at most {MAX_RULES_BYTES:,}")
    return d


async def publish(bootstrap_servers: str, topic: str, deployment: Deployment,
                  client_options: Mapping[str, Any]) -> int:
    """Writes the deployment (acks=all) and returns its offset."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True,
                                **client_options)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, deployment.encode(), key=deployment.version.encode(),
                                            partition=0)
        return int(meta.offset)
    finally:
        await producer.stop()


class RulesFollower:
    """Reads the rules topic from the start; ``poll()`` returns the deployments that arrived since
    the last call, in order (bad records are logged, counted by ``on_bad``, and skipped)."""

    def __init__(self, bootstrap_servers: str, topic: str, client_options: Mapping[str, Any],
                 on_bad: Any = None) -> None:
        self._options = dict(bootstrap_servers=bootstrap_servers, **client_options)
        self._tp = TopicPartition(topic, 0)
        self._consumer: AIOKafkaConsumer | None = None
        self._on_bad = on_bad

    async def start(self) -> None:
        if self._consumer is None:
            c = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest",
                                 isolation_level="read_committed", **self._options)
            try:
                await c.start()
                c.assign([self._tp])
                await c.seek_to_beginning(self._tp)
            except BaseException:
                await c.stop()
                raise
            self._consumer = c

    async def read_to_end(self, timeout_s: float = 30.0) -> list[Deployment]:
        """Every deployment up to the end offset seen now."""
        await self.start()
        assert self._consumer is not None
        end = (await self._consumer.end_offsets([self._tp]))[self._tp]
        out: list[Deployment] = []
        deadline = time.monotonic() + timeout_s
        while await self._consumer.position(self._tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {self._tp.topic} to its end ({end}) in {timeout_s:.0f} s")
            out += await self.poll(timeout_ms=500)
        return out

    async def poll(self, timeout_ms: int = 0) -> list[Deployment]:
        await self.start()
        assert self._consumer is not None
        out: list[Deployment] = []
        for records in (await self._consumer.getmany(self._tp, timeout_ms=timeout_ms)).values():
            for r in records:
                try:
                    out.append(decode_deployment(r.value, r.offset))
                except BadRulesRecord as exc:
                    log.error("rules topic %s offset %d: ignored: %s", self._tp.topic, r.offset, exc)
                    if self._on_bad is not None:
                        self._on_bad(str(exc))
        return out

    async def close(self) -> None:
        c, self._consumer = self._consumer, None
        if c is not None:
            await c.stop()


async def latest_deployment(bootstrap_servers: str, topic: str, client_options: Mapping[str, Any],
                            timeout_s: float = 30.0) -> Deployment | None:
    """The deployment in force (the last readable one), or None if nothing was deployed."""
    follower = RulesFollower(bootstrap_servers, topic, client_options)
    try:
        found = await asyncio.wait_for(follower.read_to_end(timeout_s), timeout_s + 5)
        return found[-1] if found else None
    finally:
        await follower.close()


class DeployedRules:
    """The rule set in force for a process that runs no worker (``tagstream serve``): the newest
    deployment that compiles, else ``local``. ``get()`` reads the topic up to its end the first
    time, then picks up what arrived since; when Kafka does not answer it keeps what it has (and
    reads from the start again next time).

    Deployments are compiled from a temporary folder, never from the workers' data folder: a
    worker on the same host writes its copy there while it switches rules."""

    def __init__(self, bootstrap_servers: str, topic: str, client_options: Mapping[str, Any],
                 local: CompiledRuleSet, *, timeout_s: float = 5.0) -> None:
        self._args = (bootstrap_servers, topic, dict(client_options))
        self._follower: RulesFollower | None = None
        self._timeout_s = timeout_s
        self.rules = local
        self.offset = -1

    async def get(self) -> CompiledRuleSet:
        try:
            if self._follower is None:
                self._follower = RulesFollower(*self._args)
                found = await asyncio.wait_for(self._follower.read_to_end(self._timeout_s), self._timeout_s + 5)
            else:
                found = await self._follower.poll()
        except Exception as exc:  # Kafka unreachable: the rules we have
            log.warning("could not read the deployed rules from %s (%r); using version %s", self._args[1], exc,
                        self.rules.version)
            await self.close()
            return self.rules
        for d in reversed([d for d in found if d.offset > self.offset]):
            try:
                with tempfile.TemporaryDirectory(prefix="tagstream-rules-") as folder:
                    rules = load_rules(d.write_to(Path(folder)))
            except RuleSetError as exc:
                log.error("deployed rule set %s (offset %d) does not compile here; trying the one before: %s",
                          d.version, d.offset, exc)
                continue
            self.rules, self.offset = rules, d.offset
            break
        return self.rules

    async def close(self) -> None:
        follower, self._follower = self._follower, None
        if follower is not None:
            await follower.close()


def workers_key(prefix: str) -> str:
    """Redis hash of the workers of an app: worker id -> the rules they run (JSON)."""
    return f"{prefix}:workers"


async def read_status(redis: Any, prefix: str) -> dict[str, dict[str, Any]]:
    """Worker id -> {version, offset, since_ms, seen_ms}, as the workers reported it."""
    raw = await redis.hgetall(workers_key(prefix))
    return {(k.decode() if isinstance(k, bytes) else k): orjson.loads(v) for k, v in raw.items()}
