"""Configuration: a TOML file plus `TOKENHUB_<SECTION>__<KEY>` environment overrides, checked in one
pass into frozen dataclasses. Every problem is collected into a single `ConfigError`."""

from __future__ import annotations

import json
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from keystore import KeystoreSettings

ENV_PREFIX = "TOKENHUB_"
DEFAULT_ADMIN_TOKEN_ENV = "TOKENHUB_ADMIN_TOKEN"
MIN_ADMIN_TOKEN_LEN = 16
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class ConfigError(Exception):
    """Raised once at start with every problem found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: str = "0.0.0.0:8080"
    workers: int = 1
    max_body_bytes: int = 4 * 1024 * 1024  # larger request bodies get 413
    body_timeout_seconds: float = 30.0  # a request body must arrive within this
    header_timeout_seconds: float = 10.0  # a new connection's first request head must arrive within this
    keepalive_timeout_seconds: float = 75.0
    shutdown_grace_seconds: float = 30.0  # SIGTERM: in-flight streams may finish within this


@dataclass(frozen=True, slots=True)
class AdminConfig:
    listen: str = "127.0.0.1:8081"
    # Extra named admin tokens: name -> environment variable holding the token. The default token,
    # named "admin", comes from TOKENHUB_ADMIN_TOKEN.
    token_envs: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict, repr=False)  # resolved name -> token


@dataclass(frozen=True, slots=True)
class PostgresConfig:
    dsn: str = field(default="postgresql://127.0.0.1:5432/tokenhub", repr=False)
    password_env: str = ""  # read the password from this variable (else the DSN's or PGPASSWORD)
    pool_min: int = 1
    pool_max: int = 10
    timeout_seconds: float = 2.0  # per query and per pool acquire
    connect_timeout_seconds: float = 2.0
    password: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    namespace: str = "tokenhub"  # prefix of every key and channel: two deployments can share one Redis
    timeout_seconds: float = 0.25
    connect_timeout_seconds: float = 0.25


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    connect_timeout_seconds: float = 5.0
    first_byte_timeout_seconds: float = 120.0  # until the provider's response headers
    idle_timeout_seconds: float = 60.0  # between two chunks of a response body
    max_connections: int = 1000
    max_connections_per_host: int = 0  # 0: no per-host limit


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "json"  # or "text"


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    base_url: str
    models: tuple[str, ...]
    api_key_env: str = ""
    api_key: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    keystore: KeystoreSettings = field(default_factory=KeystoreSettings)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    providers: tuple[ProviderConfig, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)  # bare model name -> "provider/model"


_SECTIONS: dict[str, type] = {
    "server": ServerConfig, "admin": AdminConfig, "postgres": PostgresConfig, "redis": RedisConfig,
    "keystore": KeystoreSettings, "upstream": UpstreamConfig, "logging": LoggingConfig,
}
# Filled from the environment or derived, never read from the file.
_RESOLVED = {("admin", "tokens"), ("postgres", "password"), ("keystore", "namespace")}


def load_config(path: Path | None, environ: Mapping[str, str]) -> Config:
    """Read `path` (optional), apply environment overrides, check everything, raise one ConfigError."""
    problems: list[str] = []
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError([f"config file {path} does not exist"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    raw = _apply_env_overrides(raw, environ, problems)
    config = _build(raw, environ, problems)
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        cls = _SECTIONS.get(section)
        if cls is None or key not in {f.name for f in fields(cls)} or (section, key) in _RESOLVED:
            problems.append(f"{name}: no setting [{section}] {key}")
            continue
        merged.setdefault(section, {})[key] = _EnvValue(value)
    return merged


@dataclass(frozen=True, slots=True)
class _EnvValue:
    """A string from the environment, converted to the field's type when the section is built."""

    text: str


def _build(raw: dict[str, Any], environ: Mapping[str, str], problems: list[str]) -> Config | None:
    known = set(_SECTIONS) | {"providers", "aliases"}
    problems += [f"unknown section [{s}]" for s in raw if s not in known]
    built: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        value = raw.get(section, {})
        if not isinstance(value, dict):
            problems.append(f"[{section}] must be a table")
            continue
        built[section] = _build_section(section, cls, value, problems)
    providers = _build_providers(raw.get("providers", []), environ, problems)
    aliases = _build_aliases(raw.get("aliases", {}), providers, problems)
    if any(v is None for v in built.values()):
        return None
    return _resolve(Config(**built, providers=providers, aliases=aliases), environ, problems)


def _build_section(section: str, cls: type, values: dict[str, Any], problems: list[str]) -> Any:
    kwargs: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    for key, value in values.items():
        if key not in names or (section, key) in _RESOLVED:
            problems.append(f"[{section}] unknown setting {key!r}")
            continue
        try:
            kwargs[key] = _coerce(value, hints[key])
        except ValueError as exc:
            problems.append(f"[{section}] {key}: {exc}")
    try:
        obj = cls(**kwargs)
    except TypeError as exc:
        problems.append(f"[{section}] {exc}")
        return None
    problems += [f"[{section}] {p}" for p in _check_section(obj)]
    return obj


def _coerce(value: Any, hint: Any) -> Any:
    """Check `value` against a field type; strings from the environment are converted first."""
    origin = typing.get_origin(hint)
    if isinstance(value, _EnvValue):
        value = _parse_env(value.text, hint, origin)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (hint is int and not isinstance(value, int)):
            raise ValueError(f"expected {'an integer' if hint is int else 'a number'}, got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected a list of strings, got {value!r}")
        return tuple(value)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValueError(f"expected a table of strings, got {value!r}")
        return dict(value)
    raise ValueError(f"unsupported type {hint}")


def _parse_env(text: str, hint: Any, origin: Any) -> Any:
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return text
    if hint in (int, float):
        try:
            return int(text) if hint is int else float(text)
        except ValueError:
            return text
    if origin in (tuple, list, dict):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return [p.strip() for p in text.split(",") if p.strip()] if origin is not dict else text
    return text


def _check_section(obj: Any) -> list[str]:
    out: list[str] = []
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            out.append(f"{f.name} must not be negative")
        if f.name == "listen" and not _valid_listen(v):
            out.append(f"listen must be HOST:PORT, got {v!r}")
    if isinstance(obj, ServerConfig) and obj.workers < 1:
        out.append("workers must be at least 1")
    if isinstance(obj, LoggingConfig):
        if obj.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            out.append(f"level must be DEBUG, INFO, WARNING or ERROR, got {obj.level!r}")
        if obj.format not in ("json", "text"):
            out.append(f"format must be json or text, got {obj.format!r}")
    if isinstance(obj, RedisConfig) and not urlsplit(obj.url).scheme.startswith(("redis", "unix")):
        out.append("url must be a redis:// or rediss:// URL")
    if isinstance(obj, PostgresConfig) and urlsplit(obj.dsn).scheme not in ("postgres", "postgresql"):
        out.append("dsn must be a postgresql:// URL")
    if isinstance(obj, KeystoreSettings) and obj.redis_ttl_seconds <= obj.fill_max_age_seconds:
        out.append("redis_ttl_seconds must exceed fill_max_age_seconds")
    return out


def _valid_listen(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)


def _build_providers(raw: Any, environ: Mapping[str, str], problems: list[str]) -> tuple[ProviderConfig, ...]:
    if not isinstance(raw, list):
        problems.append("[[providers]] must be an array of tables")
        return ()
    out: list[ProviderConfig] = []
    allowed = {f.name for f in fields(ProviderConfig)} - {"api_key"}
    for i, entry in enumerate(raw):
        where = f"[[providers]] #{i + 1}"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a table")
            continue
        where = f"provider {entry.get('name', f'#{i + 1}')!r}"
        problems += [f"{where}: unknown setting {k!r}" for k in entry if k not in allowed]
        name, url, models = entry.get("name"), entry.get("base_url"), entry.get("models")
        key_env = entry.get("api_key_env", "")
        bad = len(problems)
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            problems.append(f"{where}: name must be lowercase letters, digits, '_', '.', '-'")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            problems.append(f"{where}: base_url must be an http(s) URL")
        if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
            problems.append(f"{where}: models must be a non-empty list of model names")
        if not isinstance(key_env, str):
            problems.append(f"{where}: api_key_env must be the name of an environment variable")
        elif key_env and not environ.get(key_env):
            problems.append(f"{where}: environment variable {key_env} (api_key_env) is not set")
        if len(problems) == bad:
            assert isinstance(name, str) and isinstance(url, str) and isinstance(models, list)
            out.append(ProviderConfig(name=name, base_url=url.rstrip("/"), models=tuple(models),
                                      api_key_env=key_env, api_key=environ.get(key_env, "") if key_env else ""))
    names = [p.name for p in out]
    problems += [f"provider {n!r} is defined twice" for n in sorted({n for n in names if names.count(n) > 1})]
    return tuple(out)


def _build_aliases(raw: Any, providers: tuple[ProviderConfig, ...], problems: list[str]) -> dict[str, str]:
    if not isinstance(raw, dict):
        problems.append("[aliases] must be a table of name = \"provider/model\"")
        return {}
    known = {f"{p.name}/{m}" for p in providers for m in p.models}
    for alias, target in raw.items():
        if not isinstance(target, str) or target not in known:
            problems.append(f"[aliases] {alias} = {target!r}: not a configured provider/model")
    return {k: v for k, v in raw.items() if isinstance(v, str)}


def _resolve(config: Config, environ: Mapping[str, str], problems: list[str]) -> Config:
    """Fill secrets from the environment and derived settings."""
    tokens: dict[str, str] = {}
    envs = {"admin": DEFAULT_ADMIN_TOKEN_ENV} | config.admin.token_envs
    for name, env in envs.items():
        token = environ.get(env, "")
        if token and len(token) < MIN_ADMIN_TOKEN_LEN:
            problems.append(f"admin token {name!r} ({env}) must be at least {MIN_ADMIN_TOKEN_LEN} characters")
        elif token:
            tokens[name] = token
        elif name != "admin":
            problems.append(f"admin token {name!r}: environment variable {env} is not set")
    password = environ.get(config.postgres.password_env, "") if config.postgres.password_env else ""
    if config.postgres.password_env and not password:
        problems.append(f"[postgres] password_env: environment variable {config.postgres.password_env} is not set")
    return Config(
        server=config.server,
        admin=replace(config.admin, tokens=tokens),
        postgres=replace(config.postgres, password=password),
        redis=config.redis,
        keystore=replace(config.keystore, namespace=config.redis.namespace),
        upstream=config.upstream, logging=config.logging, providers=config.providers, aliases=config.aliases,
    )


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)

