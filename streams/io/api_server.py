"""Serving the HTTP API (streams/io/http_api.py): in a worker, or alone (``tagstream serve``).

In a worker the API runs on an event loop of its own, in a thread (like the probes in
streams/io/health.py): a customer batch that holds the worker's loop for tens of milliseconds does
not hold look-ups for as long (the threads take turns on the GIL every few ms), and look-ups never
queue work on the loop that commits offsets. ``tagstream serve`` runs the same server on the main
loop of a process that has no Kafka client at all: run several behind a load balancer to scale
reads apart from the workers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from streams.io.explain_lookup import Explainer, RulesSource, wall_clock_ms
from streams.io.http_api import create_api
from streams.io.rules_topic import DeployedRules
from streams.io.tag_reader import TagReader, open_reader
from streams.io.topics import rules_topic_name
from streams.settings import ApiSettings, Settings

log = logging.getLogger(__name__)


class ApiServer:
    """The API on ``host:port`` (port 0: any free port, see :attr:`port`); ``start`` / ``stop``
    (safe to call twice) or ``async with``. Closes the reader (and ``deployed`` rules) when it stops."""

    def __init__(self, reader: TagReader, *, host: str, port: int, token: str | None = None,
                 max_page: int = 1000, explainer: Explainer | None = None,
                 deployed: DeployedRules | None = None) -> None:
        self.host = host
        self.port = port
        self._reader = reader
        self._deployed = deployed
        self._has_token = bool(token)
        self._app = create_api(reader, explainer=explainer, token=token, max_page=max_page)
        self._runner: web.AppRunner | None = None
        self._stopped = False

    @classmethod
    def from_settings(cls, settings: Settings, *, host: str | None = None, port: int | None = None,
                      rules: RulesSource | None = None, now_ms: Callable[[], int] = wall_clock_ms) -> ApiServer:
        """``rules``: the rule set explain evaluates with (a worker passes its own); None: the one
        deployed on the rules topic, else TAGSTREAM_RULES_PATH, followed while the server runs."""
        api, ks = settings.api, settings.kafka
        deployed = None
        if rules is None:
            deployed = DeployedRules(ks.bootstrap_servers, rules_topic_name(settings), ks.client_options(),
                                     settings.load_rules())
            rules = deployed.get
        return cls(open_reader(settings), host=host or api.host, port=api.port if port is None else port,
                   token=api.token.get_secret_value() if api.token else None, max_page=api.max_page,
                   explainer=Explainer(settings, rules, now_ms=now_ms), deployed=deployed)

    async def start(self) -> None:
        """Listens; RuntimeError with a message naming the address when it cannot."""
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            raise RuntimeError(f"HTTP API cannot listen on {self.host}:{self.port}: {exc.strerror or exc} (set "
                               f"TAGSTREAM_API__PORT or __HOST, or TAGSTREAM_API__ENABLED=false in a worker)") from exc
        if self.port == 0:  # the port the system picked
            self.port = int(self._runner.addresses[0][1])
        warn_if_exposed(self.host, has_token=self._has_token)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._runner is not None:
            await self._runner.cleanup()
        await self._reader.close()
        if self._deployed is not None:
            await self._deployed.close()

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


def warn_if_exposed(host: str, *, has_token: bool) -> None:
    """Logs a warning when the API listens beyond loopback without a token."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not has_token:
        log.warning("HTTP API listens on %s without a token: anyone who reaches it reads every tag "
                    "(set TAGSTREAM_API__TOKEN)", host)


class ApiThread:
    """The API of a worker: its own event loop in a daemon thread. ``start`` returns once it
    listens (or raises the server's RuntimeError); ``stop`` is safe to call twice.

    ``rules`` and ``now_ms`` are the worker's (its rule set in force and its clock): they run on this
    thread's loop, so they may only read what the worker replaces whole (a reference), never
    state the worker mutates."""

    def __init__(self, settings: Settings, *, rules: RulesSource | None = None,
                 now_ms: Callable[[], int] = wall_clock_ms) -> None:
        self._settings = settings
        self._rules = rules
        self._now_ms = now_ms
        self._loop = asyncio.new_event_loop()
        self._server: ApiServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="tagstream-api", daemon=True)

    @property
    def port(self) -> int:
        return self._server.port if self._server else self._settings.api.port

    def start(self) -> ApiThread:
        self._thread.start()

        async def start_server() -> ApiServer:
            server = ApiServer.from_settings(self._settings, rules=self._rules, now_ms=self._now_ms)
            await server.start()
            return server

        try:
            self._server = asyncio.run_coroutine_threadsafe(start_server(), self._loop).result()
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise
        return self

    def stop(self) -> None:
        if self._server is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._server = None


def describe(api: ApiSettings, port: int) -> str:
    auth = "bearer token required" if api.token else "no token"
    return (f"http://{api.host}:{port} ({auth}; routes /customers/{{id}}/tags, /customers/{{id}}/explain, "
            "/audiences/{tag}, /openapi.json)")
