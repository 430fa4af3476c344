"""Runs the tagstream worker: topics ensured, metrics and the HTTP API served, Faust worker started."""

from __future__ import annotations

import asyncio
import logging

import faust
from prometheus_client import REGISTRY

from streams.app import gc_policy, malloc_policy
from streams.app.faust_compat import check_faust
from streams.app.rules_watch import deployed_rules
from streams.app.topology import create_app, make_engine
from streams.engine import native, native_core
from streams.engine.native_engine import core_engine_for
from streams.io.api_server import ApiThread, describe
from streams.io.group_metadata import install_fresh_assignment_metadata
from streams.io.health import serve
from streams.io.logs import setup_logging
from streams.io.metrics import Metrics
from streams.io.redis_client import check_mode
from streams.io.topics import (
    RULES_TOPIC_CONFIG,
    check_copartitioned,
    copartitioned_pairs,
    ensure_topics,
    identity_topics,
    rules_topic_name,
    topic_configs,
    worker_topics,
)
from streams.settings import Settings
from tag_rules import CompiledRuleSet

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    """Blocks until the worker is stopped (SIGINT/SIGTERM)."""
    rules = settings.load_rules()  # a bad rule set fails here, before anything starts
    if settings.engine.tag_engine == "core":  # so do rules the core's tag engine cannot run, when it must
        core_engine_for(make_engine(settings, rules), "core")
    gc_policy.install(settings.engine.gc_young_threshold, freeze=settings.engine.gc_freeze)
    malloc_policy.install(settings.engine.malloc_fastbins)
    check_faust()  # a faust-streaming our Faust internals were not written for fails here too
    install_fresh_assignment_metadata()  # a group leader never assigns without its topics' metadata
    metrics = Metrics.create(REGISTRY)
    gc_policy.instrument(metrics)
    setup_logging(level=settings.loglevel, fmt=settings.log_format, buffer_full=metrics.producer_buffer_full)
    ks = settings.kafka
    asyncio.run(check_mode(settings.redis))  # a cluster URL on a plain server (or the reverse) fails here
    asyncio.run(ensure_topics(ks.bootstrap_servers, worker_topics(settings), ks.partitions, ks.replication_factor,
                              configs=topic_configs(settings), client_options=ks.client_options()))
    one_partition = {rules_topic_name(settings): RULES_TOPIC_CONFIG, **identity_topics(settings)}
    asyncio.run(ensure_topics(ks.bootstrap_servers, list(one_partition), 1, ks.replication_factor,
                              configs=one_partition,
                              client_options=ks.client_options()))
    asyncio.run(check_copartitioned(ks.bootstrap_servers, copartitioned_pairs(settings), ks.client_options()))
    rules, rules_offset, births = deployed_rules(settings, rules)  # a later worker runs what was deployed
    app, rt = create_app(settings, rules, metrics, rules_offset=rules_offset, births=births)
    if settings.metrics.enabled:
        serve(rt.health, host=settings.metrics.host, port=settings.metrics.port)
        log.info("metrics and probes on http://%s:%d/{metrics,livez,readyz}", settings.metrics.host,
                 settings.metrics.port)
    if settings.api.enabled:  # before Faust starts: a taken port stops the worker with one clear line

        async def rules_in_force() -> CompiledRuleSet:
            return rt.rules  # swapped whole by a deploy (topology.wire_rules_watch), never changed in place

        api = ApiThread(settings, rules=rules_in_force, now_ms=rt.clock.now_ms).start()
        log.info("HTTP API on %s", describe(settings.api, api.port))
    sasl = f" {ks.sasl_mechanism}" if ks.sasl_mechanism else ""
    log.info("tagstream worker: rules %s (%d features, %d tags), kafka %s (%s%s), redis %s", rules.version,
             len(rules.features), len(rules.tags), ks.bootstrap_servers, ks.protocol(), sasl,
             settings.redis.display_url())  # never the credentials
    log_engine()
    log_core()
    # Logging is ours (setup_logging above): faust's would replace it with coloured lines, and its
    # progress spinner writes cursor codes into log files; without it faust logs "Ready" instead.
    worker = faust.Worker(app, loglevel=settings.loglevel, quiet=True, override_logging=False)
    worker.spinner = None
    worker.execute_from_commandline()


def log_engine() -> None:
    """Which engine runs (streams/engine/native.py): a warning when a build was wanted and none is
    there for these sources (``auto``), so a slower worker never goes unnoticed."""
    if native.ENGINE == "native":
        log.info("engine: compiled with mypyc (%s)", native.REASON)
        slow = native.left_as_python()
        if slow:  # imported before the engine chose its build (streams/engine/native.py, OPTIONAL)
            log.warning("engine compiled, but %s runs as Python in this worker (imported before the engine)",
                        ", ".join(slow))
    elif native.REASON == "TAGSTREAM_NATIVE=off":
        log.info("engine: pure Python (TAGSTREAM_NATIVE=off)")
    else:
        log.warning("engine: pure Python: %s; the compiled engine drains ~1.25x the events/s", native.REASON)


def log_core() -> None:
    """Whether ingest runs through the Rust core (streams/engine/native_core.py): a warning when a
    build was wanted and none is there (``auto``)."""
    if native_core.CORE is not None:
        log.info("ingest: the Rust core decodes plain records (%s)", native_core.CORE_REASON)
    elif native_core.CORE_REASON.endswith("=off"):
        log.info("ingest: the Python path (%s)", native_core.CORE_REASON)
    else:
        log.warning("ingest: the Python path: %s", native_core.CORE_REASON)
