"""Settings from ``LEDGERD_*`` environment variables; the defaults run fully embedded."""

from __future__ import annotations

import pathlib
from typing import Literal
from urllib.parse import urlsplit

import pydantic
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledgerd.main.tls_settings import MtlsGrant
from ledgerd.platform.auth.wrapping_keys import wrapping_keys
from ledgerd.platform.secrets.references import is_reference, parse_reference
from ledgerd.platform.tls.certificate_files import CertificateFileError, read_certificate_bundle
from ledgerd.webhooks.domain.addresses import parse_networks

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///ledgerd.db"
WEBHOOKS_CA_FILE_SETTING = "LEDGERD_WEBHOOKS_CA_FILE"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGERD_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="sqlite+aiosqlite:///PATH (embedded) or postgresql+asyncpg://USER@HOST/DB",
    )
    database_pool_size: int = Field(default=10, ge=1, le=1000)
    database_pool_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="how long a call waits for a free PostgreSQL connection before UNAVAILABLE",
    )
    database_connect_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="how long connecting to PostgreSQL may take before UNAVAILABLE",
    )
    database_statement_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=86_400,
        description="how long ledgerd waits for PostgreSQL to answer any one statement before "
        "taking it as unreachable (a network that drops packets never closes a connection)",
    )
    database_echo: bool = False
    expiry_interval_seconds: float = Field(
        default=1.0, gt=0, le=3600, description="how often the worker voids expired holds"
    )
    grpc_address: str = Field(
        default="127.0.0.1:50051",
        description="HOST:PORT the gRPC server listens on (127.0.0.1:0: a free port on loopback; "
        "a host other than loopback is reachable from outside, with a warning)",
    )
    http_address: str = Field(
        default="127.0.0.1:8080",
        description="HOST:PORT of the REST gateway, health probes and docs (127.0.0.1:0: a free "
        "port on loopback; a host other than loopback is reachable from outside, with a warning)",
    )
    # Slow and idle HTTP clients (docs/api.md, "Connections"): every connection holds a file.
    http_max_connections: int = Field(
        default=2048,
        ge=1,
        le=1_000_000,
        description="HTTP connections open at once; one more is answered 503 and closed "
        "(lowered to the open-file limit less 1,024, or to 3/4 of a limit under 4,096, if that "
        "is less)",
    )
    http_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="a request head must arrive within this of the connection opening (or of "
        "its first byte on a kept-alive connection); else 408 and closed",
    )
    http_body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="a request body must arrive within this of its head; else 408 and closed",
    )
    http_idle_timeout_seconds: int = Field(
        default=5, ge=1, le=3600, description="a kept-alive connection idle this long is closed"
    )
    http_max_header_bytes: int = Field(
        default=16_384,
        ge=1024,
        le=1_048_576,
        description="a request head (request line and headers) larger than this is refused (400)",
    )
    gateway_forward_to: str | None = Field(
        default=None,
        description="HOST:PORT of a remote ledgerd gRPC server for the gateway to forward to; "
        "unset: call this process's servicer directly",
    )
    # The default, from the 2-core machine of docs/benchmarks.md ("Overload"): throughput
    # flattens past a few hundred calls in the server (single transfers: 501/s with 256 calls
    # at once, 634/s with 1,024, while the median wait went from 0.5 s to 1.5 s), so more calls
    # only wait longer and hold more memory. 1,000 is a second or two of work there (634-878
    # single transfers/s): a full house drains within common client deadlines.
    max_concurrent_calls: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="calls (gRPC and REST together) the server runs at once; beyond it a call "
        "is refused at once with OVERLOADED (RESOURCE_EXHAUSTED + RetryInfo, or 429 + "
        "Retry-After); health checks and reflection are not counted",
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, le=600, description="how long calls in flight may finish on SIGTERM"
    )
    grpc_reuse_port: bool = Field(
        default=False,
        description="let several `serve` processes of one deployment listen on the same gRPC "
        "address (SO_REUSEPORT; the kernel spreads new connections over them); unset, an "
        "address in use is refused",
    )
    health_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="how often `serve` checks that the database takes writes (gRPC health)",
    )
    commit_grace_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="how long past its deadline a call whose transfers are being committed "
        "waits for the commit's outcome before answering OUTCOME_UNKNOWN",
    )
    batching: bool = Field(
        default=True,
        description="coalesce concurrent PostTransfers calls into shared transactions",
    )
    batch_max_calls: int = Field(default=256, ge=1, le=10_000, description="calls per batch")
    batch_max_wait_ms: float = Field(
        default=0.0,
        ge=0,
        le=1000,
        description="how long a batch waits for more calls after its first (0: none)",
    )
    batch_queue_capacity: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="calls that may wait for a batch; beyond it calls get OVERLOADED",
    )
    batch_workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="posting groups in flight at once over all ledgers (a ledger has two at "
        "most: one commits while the next is decided); unset: 4 on PostgreSQL, 1 on SQLite",
    )
    batch_group_transfers: int = Field(
        default=250,
        ge=1,
        le=10_000,
        description="transfers per posting group; a bigger non-atomic PostTransfers call is "
        "posted in parts of this size, in order, so that it never holds up other callers",
    )
    events_publisher: Literal["hub", "nats", "kafka", "rabbitmq", "sqs", "redis"] = Field(
        default="hub",
        description="where the outbox relay publishes events (hub: in-process only)",
    )
    events_format: Literal["protobuf", "json"] = Field(
        default="protobuf",
        description="the published payloads: protobuf (as the outbox stores them) or json "
        "(protobuf's JSON mapping, datacontenttype application/json)",
    )
    nats_url: str = Field(default="nats://127.0.0.1:4222", description="NATS JetStream server")
    # Where on each broker the events go: deployments sharing a broker keep apart by these.
    # The patterns are the brokers' own rules for the names, checked at start-up.
    nats_stream: str = Field(
        default="LEDGERD_EVENTS",
        pattern=r"^[A-Za-z0-9_-]{1,255}$",
        description="JetStream stream (created if missing)",
    )
    nats_subject_prefix: str = Field(
        default="ledgerd.events",
        pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
        max_length=200,
        description="subjects are PREFIX.<ledger>",
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka brokers, HOST:PORT[,HOST:PORT...]"
    )
    kafka_topic: str = Field(
        default="ledgerd.events",
        pattern=r"^[A-Za-z0-9._-]{1,249}$",
        description="Kafka topic (created if missing)",
    )
    rabbitmq_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/", description="RabbitMQ (AMQP 0-9-1) URL"
    )
    rabbitmq_exchange: str = Field(
        default="ledgerd.events",
        pattern=r"^[A-Za-z0-9_.:-]{1,255}$",
        description="durable topic exchange (declared if missing)",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis server URL")
    redis_stream: str = Field(
        default="ledgerd:events",
        pattern=r"^\S{1,512}$",
        description="Redis stream key",
    )
    sqs_queue: str = Field(
        default="ledgerd-events.fifo", description="SQS FIFO queue: its URL, or its name"
    )
    sqs_region: str = Field(default="us-east-1", description="AWS region of the SQS queue")
    sqs_endpoint_url: str | None = Field(
        default=None, description="SQS endpoint (an emulator, a VPC endpoint); unset: AWS's"
    )
    relay_in_serve: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="run the outbox relay inside `ledgerd serve` (auto: with the embedded "
        "SQLite database; with PostgreSQL run `ledgerd worker`)",
    )
    relay_batch_size: int = Field(default=500, ge=1, le=10_000, description="events per publish")
    relay_max_rejections: int = Field(
        default=10, ge=1, le=1000, description="refusals of one event before it is dead-lettered"
    )
    relay_poll_interval_seconds: float = Field(
        default=1.0, gt=0, le=3600, description="longest sleep between sweeps when not woken"
    )
    stream_buffer_events: int = Field(
        default=256,
        ge=16,
        le=100_000,
        description="events a live stream subscriber may fall behind before it reads from the log",
    )
    stream_poll_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="how often the watched ledgers' last events are checked (one query for "
        "all of them) even if no commit was announced; a ledger found behind is read",
    )
    stream_heartbeat_seconds: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="idle time after which SSE and WebSocket streams send a heartbeat",
    )
    # --- Webhooks (docs/webhooks.md): deliveries of the ledgers' events to HTTP endpoints ---
    webhooks_in_serve: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="deliver webhooks inside `ledgerd serve` (auto: with the embedded SQLite "
        "database; with PostgreSQL run `ledgerd worker`)",
    )
    webhooks_first_retry_seconds: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="the longest wait before retrying a failed delivery the first time; it "
        "doubles with each failure (each wait is random below it: full jitter)",
    )
    webhooks_max_retry_seconds: float = Field(
        default=600.0, gt=0, le=86_400, description="the longest wait between two attempts"
    )
    webhooks_max_attempts: int = Field(
        default=15,
        ge=1,
        le=1000,
        description="attempts at one event before it is dead-lettered and the endpoint goes on",
    )
    webhooks_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="how long one delivery (connect, send, answer) may take before it failed",
    )
    webhooks_concurrency: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="deliveries in flight at once over all endpoints (on PostgreSQL each holds a "
        "database connection: keep it below LEDGERD_DATABASE_POOL_SIZE)",
    )
    webhooks_poll_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="longest sleep between looks for deliveries when not woken",
    )
    webhooks_attempts_retention_days: int = Field(
        default=30,
        ge=0,
        le=36_500,
        description="delivery attempts are deleted this many days after they were made "
        "(an hourly sweep where deliveries run; those at events still dead-lettered are kept "
        "until replayed, and each endpoint's last); 0 keeps them for ever",
    )
    webhooks_allowed_networks: str = Field(
        default="",
        description="networks deliveries may connect to besides public addresses, "
        "comma-separated CIDRs (10.1.0.0/16,fd00::/8; 127.0.0.0/8 for a receiver on this "
        "host); empty: public unicast addresses only",
    )
    webhooks_ca_file: pathlib.Path | None = Field(
        default=None,
        description="a PEM bundle of CA certificates that https deliveries trust besides "
        "certifi's public roots (receivers on an internal network with a private CA's "
        "certificates); read at start-up; unset or empty: the public roots only",
    )

    @field_validator("webhooks_allowed_networks")
    @classmethod
    def _networks(cls, networks: str) -> str:
        parse_networks(networks)  # its ValueError names the entry refused
        return networks

    @field_validator("webhooks_ca_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, path: object) -> object:
        # `LEDGERD_WEBHOOKS_CA_FILE=` (a deployment's template left blank) means none, not ".".
        return None if path == "" else path

    @field_validator("webhooks_ca_file")
    @classmethod
    def _ca_bundle(cls, path: pathlib.Path | None) -> pathlib.Path | None:
        # Checked with the other settings: a wrong file is one settings error at start-up, as
        # a bad network is, in every process of the deployment (`serve` on PostgreSQL delivers
        # nothing, but shares its environment with the worker that does).
        if path is not None:
            try:
                read_certificate_bundle(WEBHOOKS_CA_FILE_SETTING, path)
            except CertificateFileError as error:
                raise ValueError(error.reason) from None
        return path

    @pydantic.model_validator(mode="after")
    def _retry_delays_in_order(self) -> Settings:
        if self.webhooks_max_retry_seconds < self.webhooks_first_retry_seconds:
            msg = (
                "LEDGERD_WEBHOOKS_MAX_RETRY_SECONDS must be at least "
                "LEDGERD_WEBHOOKS_FIRST_RETRY_SECONDS"
            )
            raise ValueError(msg)
        return self

    # --- end of Webhooks ---

    gc_freeze: bool = Field(
        default=True,
        description="after start-up, freeze the heap so full collections no longer walk it",
    )
    gc_gen0_threshold: int = Field(
        default=10_000,
        ge=0,
        le=10_000_000,
        description="allocations between young-generation collections (0: Python's 700)",
    )
    auth: Literal["off", "required"] = Field(
        default="required",
        description="required: every RPC needs an access token with its scope, for a ledger it "
        "is granted (docs/security.md); off: every caller may use every ledger (`ledgerd serve` "
        "logs a warning), for a server only its own tests reach",
    )
    revocation_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="how long a server remembers that a refresh-token family is not revoked: "
        "a revocation made through another process reaches this one within it",
    )
    verified_token_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        le=300,
        description="how long a server remembers an access token it verified (never past its "
        "`exp`, nor once its key is retired; revocation and ledger grants are still checked on "
        "every call); 0: verify the signature on every call",
    )
    token_issuer: str | None = Field(
        default=None,
        description="the origin (scheme://host[:port], no path) the OAuth2 endpoints are "
        "served under, and the access tokens' `iss`; unset: http://LEDGERD_HTTP_ADDRESS (https:// "
        "with TLS)",
    )
    token_audience: str = Field(
        default="ledgerd",
        min_length=1,
        max_length=200,
        description="the access tokens' `aud`: the name this service accepts tokens for",
    )
    access_token_lifetime_seconds: int = Field(
        default=900, ge=60, le=3600, description="how long an access token is valid"
    )
    refresh_absolute_lifetime_seconds: int = Field(
        default=30 * 86_400,
        ge=60,
        le=366 * 86_400,
        description="a refresh-token family ends this long after it started, however active",
    )
    refresh_idle_timeout_seconds: int = Field(
        default=7 * 86_400,
        ge=60,
        le=366 * 86_400,
        description="a refresh-token family ends this long after its last refresh",
    )
    csrf_key: SecretStr | None = Field(
        default=None,
        description="the key of the login form's CSRF tokens (32 characters or more, secret); "
        "unset: a random key per process, so a login form works only against the process that "
        "showed it",
    )
    key_reload_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="how often `serve` checks for a rotated signing key set (`ledgerd keys "
        "rotate`)",
    )
    # --- Sealed signing keys (docs/security.md, "Signing keys and rotation") ---
    signing_keys_secret: SecretStr | None = Field(
        default=None,
        description="the wrapping key (32 random bytes, base64: `openssl rand -base64 32`; "
        "secret, best a `secret://` reference) that seals the secrets ledgerd keeps in its "
        "database with AES-256-GCM: the token signing keys and the webhooks' signing secrets; "
        "unset: they are stored unsealed",
    )
    signing_keys_secret_previous: SecretStr | None = Field(
        default=None,
        description="earlier wrapping keys, comma-separated (secret): they only open a set "
        "sealed under them; the next write (`ledgerd keys encrypt`, `ledgerd webhooks reseal`) "
        "seals it under the current",
    )

    @field_validator("signing_keys_secret", "signing_keys_secret_previous")
    @classmethod
    def _wrapping_keys(cls, keys: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if keys is not None and is_reference(keys.get_secret_value()):
            # Its value is checked once resolved, at start-up (ledgerd.main.secrets).
            parse_reference(keys.get_secret_value())
            return keys
        return check_wrapping_keys(keys, several=info.field_name == "signing_keys_secret_previous")

    # --- end of Sealed signing keys ---

    # --- Secrets (docs/security.md, "Secrets"): where `secret://` references are resolved ---
    secret_ttl_seconds: float = Field(
        default=300.0,
        ge=1,
        le=86_400,
        description="how often the values of `secret://` references are read again: a rotated "
        "value is used within this",
    )
    vault_addr: str | None = Field(
        default=None,
        description="OpenBao/Vault address (http[s]://host:port) for `secret://vault/...` "
        "references",
    )
    vault_token: SecretStr | None = Field(
        default=None,
        description="the token ledgerd reads OpenBao/Vault with (secret; from the environment "
        "only, never a reference)",
    )
    database_credentials: str | None = Field(
        default=None,
        description="`secret://vault-db/MOUNT/creds/ROLE`: PostgreSQL credentials leased from "
        "an OpenBao/Vault database engine and renewed; they replace the user and password of "
        "LEDGERD_DATABASE_URL",
    )
    aws_region: str | None = Field(
        default=None,
        description="AWS region of `secret://aws/...` secrets; unset: AWS's own configuration "
        "(AWS_REGION, AWS_DEFAULT_REGION, the profile)",
    )
    aws_endpoint_url: str | None = Field(
        default=None,
        description="Secrets Manager endpoint (an emulator, a VPC endpoint); unset: AWS's",
    )

    @field_validator("rabbitmq_url", "redis_url", "nats_url")
    @classmethod
    def _reference_or_plain(cls, value: str) -> str:
        if is_reference(value):
            parse_reference(value)
        return value

    @field_validator("database_credentials")
    @classmethod
    def _leased(cls, reference: str | None) -> str | None:
        if reference is not None and parse_reference(reference).store != "vault-db":
            msg = "expected secret://vault-db/MOUNT/creds/ROLE"
            raise ValueError(msg)
        return reference

    @field_validator("vault_addr")
    @classmethod
    def _vault_origin(cls, address: str | None) -> str | None:
        if address is not None and not is_origin(address.rstrip("/")):
            msg = "not an address: http[s]://host[:port]"
            raise ValueError(msg)
        return address

    @field_validator("vault_token")
    @classmethod
    def _not_a_reference(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and is_reference(token.get_secret_value()):
            msg = "the store's own token cannot be a secret:// reference (set the token itself)"
            raise ValueError(msg)
        return token

    # --- end of Secrets ---

    # --- TLS and mTLS (docs/security.md, "TLS and mTLS") ---
    tls_cert_file: pathlib.Path | None = Field(
        default=None,
        description="the server's certificate (its chain, leaf first), PEM; with "
        "LEDGERD_TLS_KEY_FILE, gRPC and REST listen with TLS; unset: plaintext",
    )
    tls_key_file: pathlib.Path | None = Field(
        default=None, description="the key of LEDGERD_TLS_CERT_FILE, PEM, unencrypted"
    )
    tls_reload_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="how often `serve` checks the certificate files for a change (SIGHUP: at "
        "once); changed files that pass the checks are used by the connections after",
    )
    grpc_client_ca: pathlib.Path | None = Field(
        default=None,
        description="a PEM bundle of CAs; set, gRPC requires a client certificate issued by one "
        "(mTLS); needs TLS",
    )
    mtls_identities: dict[str, MtlsGrant] = Field(
        default_factory=dict,
        description="a JSON object: a client certificate's identity (its SAN URI, else its "
        'subject CN) to its grant, {"spiffe://x/payouts": {"scopes": ["ledger.read"], '
        '"ledgers": ["main"]}} ("ledgers": "*" for every ledger); needs LEDGERD_GRPC_CLIENT_CA',
    )
    grpc_client_cert_file: pathlib.Path | None = Field(
        default=None,
        description="the certificate ledgerd presents as a gRPC client (the gateway's "
        "forwarding, the client commands), PEM; with LEDGERD_GRPC_CLIENT_KEY_FILE",
    )
    grpc_client_key_file: pathlib.Path | None = Field(
        default=None, description="the key of LEDGERD_GRPC_CLIENT_CERT_FILE, PEM, unencrypted"
    )
    grpc_server_ca: pathlib.Path | None = Field(
        default=None,
        description="a PEM bundle of the CAs ledgerd trusts for the gRPC server it calls; set, "
        "it calls with TLS",
    )

    @pydantic.model_validator(mode="after")
    def _tls_complete(self) -> Settings:
        pairs = (
            ("tls_cert_file", "tls_key_file"),
            ("grpc_client_cert_file", "grpc_client_key_file"),
        )
        for first, second in pairs:
            if (getattr(self, first) is None) != (getattr(self, second) is None):
                msg = (
                    f"LEDGERD_{first.upper()} and LEDGERD_{second.upper()} go together: "
                    "set both or neither"
                )
                raise ValueError(msg)
        if self.grpc_client_ca is not None and self.tls_cert_file is None:
            msg = "LEDGERD_GRPC_CLIENT_CA needs TLS: set LEDGERD_TLS_CERT_FILE and _KEY_FILE"
            raise ValueError(msg)
        if self.mtls_identities and self.grpc_client_ca is None:
            msg = "LEDGERD_MTLS_IDENTITIES needs client certificates: set LEDGERD_GRPC_CLIENT_CA"
            raise ValueError(msg)
        if self.grpc_client_cert_file is not None and self.grpc_server_ca is None:
            msg = "LEDGERD_GRPC_CLIENT_CERT_FILE needs TLS: set LEDGERD_GRPC_SERVER_CA"
            raise ValueError(msg)
        return self

    @property
    def tls(self) -> bool:
        """Whether the servers listen with TLS."""
        return self.tls_cert_file is not None

    # --- end of TLS and mTLS ---

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="any case: debug is DEBUG"
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        if is_reference(url):
            parse_reference(url)  # resolved at start-up (ledgerd.main.secrets)
            return url
        return normalise_database_url(url)

    @field_validator("grpc_address", "http_address")
    @classmethod
    def _host_and_port(cls, address: str) -> str:
        host, colon, port = address.rpartition(":")
        if not colon or not host or not port.isdigit() or int(port) > MAX_PORT:
            msg = f"{address!r} is not HOST:PORT (e.g. 127.0.0.1:50051; port 0 picks a free one)"
            raise ValueError(msg)
        return address

    @field_validator("token_issuer")
    @classmethod
    def _origin(cls, issuer: str | None) -> str | None:
        if issuer is not None and not is_origin(issuer):
            msg = "not an origin: http[s]://host[:port], no path, no trailing slash"
            raise ValueError(msg)
        return issuer

    @field_validator("csrf_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and is_reference(key.get_secret_value()):
            # Its value is checked once resolved, at start-up (ledgerd.main.secrets).
            parse_reference(key.get_secret_value())
            return key
        return check_csrf_key(key)

    @property
    def issuer(self) -> str:
        """``LEDGERD_TOKEN_ISSUER``, or the HTTP listen address as an origin (https with TLS)."""
        scheme = "https" if self.tls else "http"
        return self.token_issuer or f"{scheme}://{self.http_address}"

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level


MAX_PORT = 65_535
# The CSRF tokens are HMAC-SHA256s under this key: 32 random characters or more (`openssl rand
# -hex 32` prints 64, the hash's full 256 bits).
MIN_CSRF_KEY_LENGTH = 32
# What users copy from elsewhere for PostgreSQL; ledgerd talks to it through asyncpg.
_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+asyncpg://")
_SQLITE_SCHEMES = ("sqlite+aiosqlite://", "sqlite://")
ACCEPTED_DATABASES = "sqlite+aiosqlite:///PATH or postgresql://USER@HOST:PORT/DB"


def check_csrf_key(key: SecretStr | None) -> SecretStr | None:
    """``key`` if it is long enough to be a CSRF key (or unset); else why not."""
    if key is not None and len(key.get_secret_value()) < MIN_CSRF_KEY_LENGTH:
        msg = f"must be a random secret of {MIN_CSRF_KEY_LENGTH} characters or more"
        raise ValueError(msg)
    return key


def check_wrapping_keys(keys: SecretStr | None, *, several: bool) -> SecretStr | None:
    """``keys`` if it is one wrapping key (``several``: comma-separated ones), or unset."""
    if keys is not None and len(wrapping_keys(keys.get_secret_value())) > 1 and not several:
        msg = "one key only (earlier ones go in LEDGERD_SIGNING_KEYS_SECRET_PREVIOUS)"
        raise ValueError(msg)
    return keys


def is_origin(text: str) -> bool:
    """Whether ``text`` is ``http[s]://host[:port]`` and nothing more."""
    parts = urlsplit(text)
    return (
        parts.scheme in {"https", "http"}
        and bool(parts.netloc)
        and text == f"{parts.scheme}://{parts.netloc}"
    )


def normalise_database_url(url: str) -> str:
    """``url`` with the driver ledgerd uses; any other database is refused, saying which."""
    for scheme in _POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return "postgresql+asyncpg://" + url.removeprefix(scheme)
    for scheme in _SQLITE_SCHEMES:
        if url.startswith(scheme):
            return "sqlite+aiosqlite://" + url.removeprefix(scheme)
    scheme = url.partition("://")[0] if "://" in url else url
    msg = f"unsupported database {scheme!r}: use {ACCEPTED_DATABASES}"
    raise ValueError(msg)
