"""All configuration in one frozen object, read from the environment (prefix ``TAGSTREAM_``,
nesting with ``__``, e.g. ``TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS``). Nothing else reads os.environ."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from tag_rules.compiler import CompiledRuleSet


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


LogLevel = Annotated[Literal["debug", "info", "warn", "warning", "error", "critical"], BeforeValidator(_lower)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Frozen):
    bootstrap_servers: str = "127.0.0.1:9092"
    clickstream_topic: str = "events.clickstream"
    pos_topic: str = "events.pos"
    orders_topic: str = "events.orders"
    deadletter_topic: str = "events.deadletter"
    tag_changes_topic: str = "tags.changes"
    identity_topic: str = Field("events.identity", description="Link records from CRM / loyalty / app systems "
                                                               "(read only with identity.enabled).")
    partitions: int = Field(4, ge=1, description="Partitions of the topics tagstream creates.")
    replication_factor: int = Field(1, ge=1)
    linger_ms: int = Field(
        5, ge=0, description="Producer batching delay of records sent one by one (dead letters, the exactly-once "
                             "path); envelopes, tag changes and changelog records go out as closed batches, at once.")
    batch_max_bytes: int = Field(
        512 * 1024, ge=16_384, le=1_000_000,
        description="Most bytes of one record batch the worker produces (envelopes, tag changes, changelog records "
                    "go out as closed batches). aiokafka's 16 KiB made a customer batch's changelog and tag changes "
                    "dozens of batches per partition, each waiting for the one before to leave "
                    "(benchmarks/RULES.md); at most the topics' max.message.bytes (1 MB by default).")
    fetch_max_bytes: int = Field(
        8 * 1024 * 1024, ge=65_536,
        description="Most bytes fetched per partition per request (Faust's default 1 MiB starved the agents).")
    fetch_max_wait_ms: int = Field(
        100, ge=1, le=30_000,
        description="Longest a fetch waits on the broker for records (the worker's Faust consumer and ingest's). "
                    "aiokafka keeps one fetch per broker in flight: one that holds only idle partitions (Faust's "
                    "assignor topic, an empty identity topic) makes the busy partitions wait behind it for this "
                    "long; Faust's 1,500 ms starved the customer agent for up to 1.5 s at a time "
                    "(docs/operations.md). Lower: more idle fetches (10 per second per consumer at 100).")
    batch_delivery: bool = Field(
        False, description="Experimental: hand fetched records to the agents per batch (streams/app/faust_compat.py).")
    ingest_consumer: bool = Field(
        True, description="Ingest reads the source topics with its own aiokafka consumer (group {app_id}-ingest, "
                          "manual commits), in batches: 2.4x the throughput of a Faust agent (docs/operations.md); "
                          "false: a Faust agent (the path before 2026-12).")
    hole_guard: bool = Field(
        True, description="Re-read records faust skipped after a seek instead of letting it acknowledge them unseen "
                          "(streams/app/faust_compat.py HoleGuard).")
    ingest_batch_max: int = Field(
        1_000, ge=1, description="Source records per ingest batch (own consumer); at most engine.dedup_max_ids, so a "
                                 "batch replayed after a crash is recognised event by event.")
    ingest_gather_ms: int = Field(
        30, ge=0, description="Under load (a batch of at least 32 records), the next ingest batch is "
                              "read no sooner than this after the last one started: fewer, fuller fetches, envelopes "
                              "and commits per event at a steady high rate; at low rates batches are small and nothing "
                              "waits (0: never wait; benchmarks/README.md).")
    source_buffer: int = Field(
        32_768, ge=1, description="Source records Faust may hold in memory ahead of the ingest agent.")
    stall_after_ms: int = Field(
        30_000, ge=1_000, description="An assigned partition with lag whose committed offset stands this long is "
                                      "stalled: readiness goes false and the worker seeks it to its committed offset.")
    session_timeout_ms: int = Field(
        10_000, ge=1_000, description="A crashed worker's partitions move after this long without heartbeats.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = Field(None, description="CA bundle (PEM) that signed the brokers' certificates.")
    ssl_certfile: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    ssl_keyfile: Path | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    def protocol(self) -> str:
        """The effective security protocol (a SASL mechanism without SSL means SASL_PLAINTEXT)."""
        if self.sasl_mechanism and not self.security_protocol.startswith("SASL"):
            return "SASL_SSL" if self.security_protocol == "SSL" else "SASL_PLAINTEXT"
        return self.security_protocol

    def ssl_context(self) -> ssl.SSLContext | None:
        if "SSL" not in self.protocol():
            return None
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
                                  certfile=str(self.ssl_certfile) if self.ssl_certfile else None,
                                  keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None)

    def client_options(self) -> dict[str, Any]:
        """Security options for aiokafka clients (admin, producers) beside Faust's own."""
        protocol = self.protocol()
        if protocol == "PLAINTEXT":
            return {}
        opts: dict[str, Any] = {"security_protocol": protocol}
        if "SSL" in protocol:
            opts["ssl_context"] = self.ssl_context()
        if self.sasl_mechanism:
            opts.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                        sasl_plain_password=self.sasl_password.get_secret_value() if self.sasl_password else None)
        return opts

    def source_topics(self) -> dict[str, str]:
        """source name -> topic name."""
        return {"clickstream": self.clickstream_topic, "pos": self.pos_topic, "orders": self.orders_topic}


CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes that select the Redis Cluster client, and the plain scheme redis-py is given."""
PLAIN_SCHEMES = ("redis", "rediss", "unix")


class RedisSettings(_Frozen):
    # a rejected URL may carry a password: errors show the redacted URL of the message only
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="redis://, rediss:// (TLS) or unix:// for one Redis server; redis+cluster://host:port or "
                    "rediss+cluster://host:port for a Redis Cluster (any one node: the client discovers the rest).")
    username: str | None = Field(None, description="Redis ACL user (Redis 6+); or put it in the URL.")
    ssl_ca_certs: Path | None = Field(None, description="CA (PEM) for rediss:// URLs.")
    password: SecretStr | None = None
    key_prefix: str | None = Field(
        None, description="Prefix of every Redis key; default: the app id, so two deployments (app ids) on one "
                          "Redis never overwrite each other's tags and audiences.")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        parts = urlsplit(url)
        shown = _without_credentials(url)
        if "://" not in url or parts.scheme not in (*PLAIN_SCHEMES, *CLUSTER_SCHEMES):
            raise ValueError(f"TAGSTREAM_REDIS__URL {shown!r}: the scheme must be one of "
                             f"{', '.join(s + '://' for s in (*PLAIN_SCHEMES, *CLUSTER_SCHEMES))}")
        if parts.scheme in CLUSTER_SCHEMES:
            if "," in parts.netloc or not parts.hostname:
                raise ValueError(f"TAGSTREAM_REDIS__URL {shown!r}: name one cluster node as host:port; "
                                 "the client discovers the others")
            if parts.path.strip("/") not in ("", "0"):
                raise ValueError(f"TAGSTREAM_REDIS__URL {shown!r}: a Redis Cluster has database 0 only")
        return url

    @property
    def cluster(self) -> bool:
        """True when the URL names a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``)."""
        return self.url.partition("://")[0] in CLUSTER_SCHEMES

    def client_url(self) -> str:
        """The URL redis-py is given: the cluster schemes become plain ``redis://`` / ``rediss://``."""
        scheme, _, rest = self.url.partition("://")
        return f"{CLUSTER_SCHEMES.get(scheme, scheme)}://{rest}"

    def display_url(self) -> str:
        """The URL without credentials, for logs and error messages."""
        return _without_credentials(self.url)

    def client_options(self) -> dict[str, Any]:
        """Credentials and TLS options for redis-py's ``from_url`` (sync or asyncio)."""
        opts: dict[str, Any] = {"username": self.username,
                                "password": self.password.get_secret_value() if self.password else None}
        if self.ssl_ca_certs:
            opts["ssl_ca_certs"] = str(self.ssl_ca_certs)
        return opts

    retry_backoff_max_ms: int = Field(5_000, ge=10)
    timeout_ms: int = Field(5_000, ge=10, description="A Redis call that takes longer fails and is retried.")


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url.rpartition("@")[2]


class MetricsSettings(_Frozen):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)
    audience_interval_ms: int = Field(
        15_000, ge=0, description="How often tagstream_audience_size{tag} is read from Redis (one SCARD per tag, "
                                  "pipelined); 0: never.")


class ApiSettings(_Frozen):
    """The HTTP API (tags of a customer, audiences; streams/io/http_api.py): served by every worker
    unless disabled, and by ``tagstream serve`` on its own."""

    enabled: bool = Field(True, description="Serve the HTTP API from the worker (tagstream serve ignores this).")
    host: str = Field("127.0.0.1", description="Bind address; loopback unless configured.")
    port: int = Field(9465, ge=0, le=65535)
    token: SecretStr | None = Field(
        None, description="Bearer token every API request must carry (Authorization: Bearer ...); none: open.")
    redis_connections: int = Field(32, ge=1, description="Redis connections of the API (requests beyond wait "
                                                          "for one, up to redis.timeout_ms).")
    max_page: int = Field(1_000, ge=1, le=100_000, description="Largest audience page size (SSCAN COUNT) a client "
                                                                "may ask for.")

    @field_validator("token")
    @classmethod
    def _token_not_blank(cls, token: SecretStr | None) -> SecretStr | None:
        value = token.get_secret_value() if token is not None else None
        if value is not None and (not value or value != value.strip() or " " in value):
            raise ValueError("the API token must be non-empty and hold no spaces (unset the variable for no token)")
        return token


class EngineSettings(_Frozen):
    future_tolerance_ms: int = Field(300_000, ge=0, description="Events further in the future go to the DLQ.")
    allowed_lateness_ms: int = Field(
        400 * 86_400_000, ge=0,
        description="Events older than this feed lifetime features only (and count as late).")
    timer_interval_ms: int = Field(100, ge=10, description="How often the due-time timer wakes.")
    reevaluate_in_flight: int = Field(
        500, ge=1, description="After a rule change, customers re-evaluated per slice: at most this many ticks sent "
                               "and not yet processed, so live events wait behind one slice at most.")
    dedup_horizon_ms: int = Field(
        86_400_000, ge=0, description="An event id seen again within this long counts once (0: off).")
    dedup_max_ids: int = Field(1000, ge=1, description="Event ids remembered per customer (oldest forgotten).")
    backfill_window_ms: int = Field(
        7 * 86_400_000, ge=0,
        description="How long after a deployment its new features can be backfilled (the source topics' retention); "
                    "meanwhile each customer's state keeps which source offsets they counted.")
    tag_engine: Literal["auto", "python", "core"] = Field(
        "auto", description="Which engine folds a customer's events: the Rust core's where it can run the rules and "
                            "hold the customer's state, else Python's (auto); always Python's (python); or the core's, "
                            "refusing to start with rules it cannot run (core). Both give the same changes and states "
                            "(docs/operations.md, The tag engine in the core).")
    batch_max: int = Field(500, ge=1, description="Source records per ingest batch.")
    envelopes_max: int = Field(
        16, ge=1, description="Customer-topic records (envelopes of up to batch_max events each) per "
                              "customer batch; an envelope under 16 KB counts as its share of one "
                              "(streams/app/envelope.py envelope_weight), at most 4 x this many records.")
    batch_within_ms: int = Field(
        1, ge=1, description="How long a batch waits to fill up (under load batches fill at once; at low rates "
                             "each millisecond here is latency: benchmarks/README.md).")
    gc_young_threshold: int = Field(
        50_000, ge=0,
        description="Python's cyclic garbage collector: container allocations between two collections of the young "
                    "generation (Python's default 700; 0 leaves Python's thresholds alone). A customer batch keeps "
                    "its tag changes and items alive until they are published, so at 700 they reached the old "
                    "generation and triggered full collections over every customer state (benchmarks/RULES.md); "
                    "at 10,000 a batch still triggered one young collection or more (benchmarks/README.md, "
                    "Garbage-collector pauses).")
    gc_freeze: bool = Field(
        True,
        description="Freeze the objects alive after the state is recovered and after every full collection "
                    "(gc.freeze): full collections then walk only what was made since, instead of every customer "
                    "state (2.6 s for 300,000 states). A reference cycle frozen while alive is never collected "
                    "once garbage (streams/app/gc_policy.py).")
    malloc_fastbins: bool = Field(
        False,
        description="Keep glibc's fastbins (its default). Off, a 1 KiB allocation (orjson's buffer, one per tag "
                    "change) no longer merges every small block freed since the last one: 1.2 s of 200,000 events "
                    "with 1,000 tags (streams/app/malloc_policy.py).")
    clock_speed: float = Field(
        1.0, gt=0, description="Engine clock speed relative to real time; benchmarks only (1 = wall clock).")
    clock_origin_ms: int | None = Field(
        None, ge=0, description="Wall instant (epoch ms) where a clock_speed != 1 clock equals the wall clock; "
                                "default: when the worker starts.")


class IdentitySettings(_Frozen):
    """Identity resolution (docs/identity.md). Off: ``user_id`` and ``member_id`` are one id space and
    anonymous events are dropped, as before."""

    enabled: bool = Field(False, description="Resolve typed ids (member, user, contact hashes, anonymous) into one "
                                             "customer per person; customer ids become typed keys (user:u-1).")
    tag_anonymous: bool = Field(False, description="Publish the tags of customers known only by an anonymous id "
                                                   "(they keep state either way, and bring it along when they log in).")
    anonymous_ttl_ms: int = Field(30 * 86_400_000, ge=0, description="An anonymous-only customer with no event for "
                                  "this long is forgotten: state dropped, tags removed (0: kept).")
    erasure_period_ms: int = Field(30 * 86_400_000, ge=0, description="After `tagstream forget`, events and links "
                                   "naming a forgotten id are dropped this long (set it to the source topics' "
                                   "retention, so a replay cannot bring the person back).")
    max_members: int = Field(3, ge=1, description="Loyalty member ids per cluster (more: the link is refused).")
    max_users: int = Field(3, ge=1, description="Online accounts per cluster.")
    max_emails: int = Field(5, ge=1, description="E-mail hashes per cluster.")
    max_phones: int = Field(3, ge=1, description="Phone hashes per cluster.")
    max_anonymous: int = Field(20, ge=1, description="Anonymous (device / cookie) ids per cluster.")
    max_cluster: int = Field(30, ge=2, description="Ids per cluster.")
    link_repeat_window_ms: int = Field(300_000, ge=0, description="A link naming the same ids as one ingest put on "
                                       "the links topic this long ago or less, with no earlier event time, is not "
                                       "sent again (it would change nothing; counted `repeat`). 0: every link is sent.")
    link_repeat_max: int = Field(100_000, ge=1, description="Sets of ids each worker remembers for "
                                 "`link_repeat_window_ms` (the oldest sent go first).")


class Settings(BaseSettings):
    # hide_input_in_errors: a rejected value may be (or sit beside) a password or a URL with one
    model_config = SettingsConfigDict(env_prefix="TAGSTREAM_", env_nested_delimiter="__", frozen=True,
                                      extra="forbid", hide_input_in_errors=True)

    app_id: str = "tagstream"
    rules_path: Path | None = Field(None, description="Rule file or folder; default: the shipped retail rules.")
    store: str = Field("memory://", description="Faust table store: memory:// or rocksdb://")
    data_dir: Path = Path(".tagstream-data")
    standby_replicas: int = Field(1, ge=0, description="Warm copies of each state partition on other workers.")
    loglevel: LogLevel = Field("warn", description="debug, info, warn (warning), error or critical.")
    log_format: Literal["text", "json"] = Field(
        "text", description="text: one line per record, colours only on a terminal; json: one JSON object per line "
                            "(ts, level, logger, message, exc_info).")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="EXPERIMENTAL exactly_once: a batch's tag changes and customer states are written "
                                     "in one Kafka transaction per partition (read tags.changes with read_committed); "
                                     "its record and cost: docs/operations.md")
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    metrics: MetricsSettings = MetricsSettings()
    api: ApiSettings = ApiSettings()
    engine: EngineSettings = EngineSettings()
    identity: IdentitySettings = IdentitySettings()

    @model_validator(mode="after")
    def _identity_at_least_once(self) -> Settings:
        if self.identity.enabled and self.processing_guarantee == "exactly_once":
            raise ValueError("TAGSTREAM_IDENTITY__ENABLED=true works with TAGSTREAM_PROCESSING_GUARANTEE=at_least_once "
                             "only (a merge's state move is made exactly-once by merge ids, docs/identity.md)")
        return self

    @model_validator(mode="after")
    def _ingest_replay_within_dedup_memory(self) -> Settings:
        """After a crash the own consumer re-reads at most its uncommitted batch; if one customer could have
        more events in it than it remembers ids, the oldest replayed ones would count twice."""
        k, e = self.kafka, self.engine
        if k.ingest_consumer and e.dedup_horizon_ms > 0 and k.ingest_batch_max > e.dedup_max_ids:
            raise ValueError(f"TAGSTREAM_KAFKA__INGEST_BATCH_MAX ({k.ingest_batch_max}) must be at most "
                             f"TAGSTREAM_ENGINE__DEDUP_MAX_IDS ({e.dedup_max_ids}): a batch replayed after a crash "
                             "could hold more events of one customer than its de-duplication memory")
        return self

    @model_validator(mode="after")
    def _prefix_without_hash_tag(self) -> Settings:
        prefix = self.redis_key_prefix()
        if self.redis.cluster and ("{" in prefix or "}" in prefix):
            raise ValueError(f"Redis key prefix {prefix!r} (TAGSTREAM_REDIS__KEY_PREFIX, default the app id): no "
                             "'{' or '}' in cluster mode: a hash tag in the prefix would put every key in one slot")
        return self

    def ingest_topics(self) -> dict[str, str]:
        """source name -> topic of everything ingest reads: the event sources, and ``identity``
        (``kafka.identity_topic``) with identity resolution on."""
        topics = self.kafka.source_topics()
        if self.identity.enabled:
            topics["identity"] = self.kafka.identity_topic
        return topics

    def redis_key_prefix(self) -> str:
        """The Redis key prefix in force: ``redis.key_prefix``, or the app id."""
        return self.redis.key_prefix or self.app_id

    def load_rules(self) -> CompiledRuleSet:
        from tag_rules import DEFAULT_RULES, load_rules

        return load_rules(self.rules_path or DEFAULT_RULES)


ENV_PREFIX = "TAGSTREAM_"


def env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable of a settings field path, e.g. ("kafka", "partitions") ->
    TAGSTREAM_KAFKA__PARTITIONS."""
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per bad setting, naming its environment variable (secrets are never echoed)."""
    lines = []
    for err in exc.errors():
        name = env_name(tuple(err["loc"]))
        if err["type"] == "extra_forbidden":
            lines.append(f"{name}: unknown setting (see docs/operations.md for the TAGSTREAM_* variables)")
            continue
        shown = "" if "password" in name.lower() else f" (got {err.get('input')!r})"
        lines.append(f"{name}: {err['msg']}{shown}")
    return lines
