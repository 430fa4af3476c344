"""Runs the tagstream worker: topics ensured, metrics served, Faust worker started."""

from __future__ import annotations

import asyncio
import logging

import faust
from prometheus_client import REGISTRY

from streams.app.faust_compat import check_faust
from streams.app.topology import create_app
from streams.io.health import serve
from streams.io.metrics import Metrics
from streams.io.redis_client import check_mode
from streams.io.topics import ensure_topics, topic_configs, worker_topics
from streams.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    """Blocks until the worker is stopped (SIGINT/SIGTERM)."""
    rules = settings.load_rules()  # a bad rule set fails here, before anything starts
    check_faust()  # a faust-streaming our Faust internals were not written for fails here too
    ks = settings.kafka
    asyncio.run(check_mode(settings.redis))  # a cluster URL on a plain server (or the reverse) fails here
    asyncio.run(ensure_topics(ks.bootstrap_servers, worker_topics(settings), ks.partitions, ks.replication_factor,
                              configs=topic_configs(settings), client_options=ks.client_options()))
    metrics = Metrics.create(REGISTRY)
    app, rt = create_app(settings, rules, metrics)
    if settings.metrics.enabled:
        serve(rt.health, host=settings.metrics.host, port=settings.metrics.port)
        log.info("metrics and probes on http://%s:%d/{metrics,livez,readyz}", settings.metrics.host,
                 settings.metrics.port)
    print(f"tagstream worker: rules {rules.version} ({len(rules.features)} features, {len(rules.tags)} tags), "
          f"kafka {ks.bootstrap_servers} ({ks.protocol()}{' ' + ks.sasl_mechanism if ks.sasl_mechanism else ''}), "
          f"redis {settings.redis.display_url()}", flush=True)  # never the credentials
    faust.Worker(app, loglevel=settings.loglevel, quiet=True).execute_from_commandline()
