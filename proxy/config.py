"""Configuration types: one frozen dataclass per `[section]`, each checking its own values.

Loading (TOML, `TOKENHUB_<SECTION>__<KEY>` overrides, type checks, one `ConfigError` listing every
problem) lives in `proxy/config_loader.py`; it finds the sections by walking `Config`'s fields, so adding
a section means adding its dataclass here (with a `problems()` method when it has rules beyond types)
and a field on `Config` — nothing lists sections by hand.

Conventions the loader relies on:
- a field whose metadata says `resolved=True` is never read from the file or the environment: the
  loader fills it (secrets from the environment, derived values);
- `problems(self) -> list[str]` on a section returns its own rule violations, without the section name.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from keystore import KeystoreSettings

from proxy.limits.settings import LimitsConfig
from proxy.metering.settings import MeteringConfig

ENV_PREFIX = "TOKENHUB_"
DEFAULT_ADMIN_TOKEN_ENV = "TOKENHUB_ADMIN_TOKEN"
MIN_ADMIN_TOKEN_LEN = 16
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
REDIS_MODES = ("standalone", "sentinel", "cluster")
RESOLVED: dict[str, Any] = {"resolved": True}  # field metadata: filled by the loader, never configured


class ConfigError(Exception):
    """Raised once at start with every problem found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def valid_listen(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: str = "0.0.0.0:8080"
    workers: int = 1
    max_body_bytes: int = 4 * 1024 * 1024  # larger request bodies get 413
    body_timeout_seconds: float = 30.0  # a request body must arrive within this
    header_timeout_seconds: float = 10.0  # a new connection's first request head must arrive within this
    keepalive_timeout_seconds: float = 75.0
    shutdown_grace_seconds: float = 30.0  # SIGTERM: in-flight streams may finish within this
    client_write_timeout_seconds: float = 30.0  # a client that accepts no bytes for this long loses its stream
    # CIDRs of the load balancers / proxies whose X-Forwarded-For is believed (the client address scopes
    # the wrong-secret limits). Empty: the TCP peer is the client.
    trusted_proxies: tuple[str, ...] = ()

    def problems(self) -> list[str]:
        out = ["workers must be at least 1"] if self.workers < 1 else []
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                out.append(f"trusted_proxies: {cidr!r} is not an address or CIDR")
        return out


@dataclass(frozen=True, slots=True)
class AdminConfig:
    listen: str = "127.0.0.1:8081"
    # Extra named admin tokens: name -> environment variable holding the token. The default token,
    # named "admin", comes from TOKENHUB_ADMIN_TOKEN.
    token_envs: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict, repr=False, metadata=RESOLVED)  # name -> token


@dataclass(frozen=True, slots=True)
class PostgresConfig:
    dsn: str = field(default="postgresql://127.0.0.1:5432/tokenhub", repr=False)
    password_env: str = ""  # read the password from this variable (else the DSN's or PGPASSWORD)
    pool_max: int = 10
    timeout_seconds: float = 2.0  # per query and per pool acquire
    connect_timeout_seconds: float = 2.0
    # PgBouncer in transaction mode in front of Postgres: no prepared statement outlives its transaction.
    pgbouncer: bool = False
    password: str = field(default="", repr=False, metadata=RESOLVED)

    def problems(self) -> list[str]:
        ok = urlsplit(self.dsn).scheme in ("postgres", "postgresql")
        return [] if ok else ["dsn must be a postgresql:// URL"]


@dataclass(frozen=True, slots=True)
class RedisConfig:
    mode: str = "standalone"  # or "sentinel" or "cluster" (see README "At fleet scale")
    # standalone: the server; cluster: any node; sentinel: only the scheme (rediss:// = TLS) and the db.
    url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    sentinels: tuple[str, ...] = ()  # sentinel mode: "host:port" of each sentinel
    master_name: str = ""  # sentinel mode: the monitored master's name
    username: str = ""  # ACL user (Redis 6+); empty: the default user
    password_env: str = ""  # read the password (AUTH) from this variable
    sentinel_password_env: str = ""  # sentinel mode: the sentinels' own password, if they require one
    namespace: str = "tokenhub"  # prefix of every key and channel: two deployments can share one Redis
    timeout_seconds: float = 0.25
    connect_timeout_seconds: float = 0.25
    password: str = field(default="", repr=False, metadata=RESOLVED)
    sentinel_password: str = field(default="", repr=False, metadata=RESOLVED)

    def problems(self) -> list[str]:
        out = [] if urlsplit(self.url).scheme in ("redis", "rediss", "unix") else [
            "url must be a redis:// or rediss:// URL"]
        if self.mode not in REDIS_MODES:
            out.append(f"mode must be one of {', '.join(REDIS_MODES)}, got {self.mode!r}")
        if self.mode == "sentinel" and not (self.sentinels and self.master_name):
            out.append("sentinel mode needs sentinels and master_name")
        if self.mode == "cluster" and urlsplit(self.url).scheme == "unix":
            out.append("cluster mode needs a redis:// or rediss:// url of one node")
        out += [f"sentinels: {s!r} is not host:port" for s in self.sentinels if not valid_listen(s)]
        return out


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """The HTTP connection to providers: timeouts and pool sizes."""

    connect_timeout_seconds: float = 5.0
    first_byte_timeout_seconds: float = 120.0  # until the provider's response headers
    idle_timeout_seconds: float = 60.0  # between two chunks of a response body
    max_connections: int = 1000
    max_connections_per_host: int = 0  # 0: no per-host limit


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "json"  # or "text"

    def problems(self) -> list[str]:
        out = []
        if self.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            out.append(f"level must be DEBUG, INFO, WARNING or ERROR, got {self.level!r}")
        if self.format not in ("json", "text"):
            out.append(f"format must be json or text, got {self.format!r}")
        return out


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens."""

    input: float = 0.0
    output: float = 0.0


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One `[[providers]]` entry. Models are addressed as `<name>/<model>`."""

    name: str
    base_url: str
    models: tuple[str, ...]
    api: str = "openai"  # the provider's API style: "openai", "anthropic" or "azure" (proxy/gateway/styles/)
    api_key_env: str = ""  # the provider credential is read from this variable
    anthropic_version: str = "2023-06-01"  # api = "anthropic": the anthropic-version header sent
    api_version: str = ""  # api = "azure": the api-version query parameter
    deployments: dict[str, str] = field(default_factory=dict)  # api = "azure": model -> deployment
    prices: dict[str, ModelPrice] = field(default_factory=dict)  # model -> USD per million tokens
    # The endpoint families served (README "Endpoint policy"); empty: the style's inference endpoints.
    endpoints: tuple[str, ...] = ()
    anthropic_betas: tuple[str, ...] = ()  # api = "anthropic": anthropic-beta values allowed beyond the built-in list
    api_key: str = field(default="", repr=False, metadata=RESOLVED)

    def problems(self) -> list[str]:
        out = []
        if not NAME_RE.fullmatch(self.name):
            out.append("name must be lowercase letters, digits, '_', '.', '-'")
        url = urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            out.append("base_url must be an http(s) URL")
        if not self.models or not all(self.models):
            out.append("models must be a non-empty list of model names")
        out += [f"deployments: {m!r} is not in models" for m in self.deployments if m not in self.models]
        out += [f"prices: {m!r} is not in models" for m in self.prices if m not in self.models]
        from proxy.gateway.styles import provider_problems  # the style seam knows its own rules
        return out + provider_problems(self)


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    keystore: KeystoreSettings = field(default_factory=KeystoreSettings)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metering: MeteringConfig = field(default_factory=MeteringConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    providers: tuple[ProviderConfig, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)  # bare model name -> "provider/model"
