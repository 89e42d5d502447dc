"""Loading the configuration: a TOML file plus `TOKENHUB_<SECTION>__<KEY>` environment overrides,
checked in one pass into the frozen dataclasses of `proxy/config.py`. Every problem is collected into a
single `ConfigError`.

The sections are `Config`'s dataclass-typed fields, found by walking the type: a new section (or a new
field in one) needs no change here. `[[providers]]` entries go through the same machinery as sections.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar, overload

from proxy.config import (
    DEFAULT_ADMIN_TOKEN_ENV,
    ENV_PREFIX,
    MIN_ADMIN_TOKEN_LEN,
    Config,
    ConfigError,
    ProviderConfig,
    valid_listen,
)

T = TypeVar("T")
C = TypeVar("C", bound=Config)


@overload
def load_config(path: Path | None, environ: Mapping[str, str], *, provider_keys: bool = True) -> Config: ...


@overload
def load_config(path: Path | None, environ: Mapping[str, str], *, schema: type[C],
                provider_keys: bool = True) -> C: ...


def load_config(path: Path | None, environ: Mapping[str, str], *, schema: type[Config] = Config,
                provider_keys: bool = True) -> Config:
    """Read `path` (optional), apply environment overrides, check everything, raise one ConfigError.

    `provider_keys=False` (for `tokenhub migrate`, which never calls a provider) does not require the
    providers' credentials to be set. `schema` is `Config` or a subclass with more sections.
    """
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
    sections = _sections(schema)
    raw = _apply_env_overrides(raw, environ, sections, problems)
    config = _resolve(_build(schema, sections, raw, problems), environ, problems, provider_keys=provider_keys)
    if problems:
        raise ConfigError(problems)
    return config


def _sections(schema: type[Config]) -> dict[str, type]:
    """`[section]` name → its dataclass, from the schema's fields."""
    hints = typing.get_type_hints(schema)
    return {f.name: hints[f.name] for f in fields(schema) if dataclasses.is_dataclass(hints[f.name])}


def _settable(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in fields(cls) if not f.metadata.get("resolved")}


@dataclass(frozen=True, slots=True)
class _EnvValue:
    """A string from the environment, converted to the field's type when the section is built."""

    text: str


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str], sections: dict[str, type],
                         problems: list[str]) -> dict[str, Any]:
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        cls = sections.get(section)
        if cls is None or key not in _settable(cls):
            problems.append(f"{name}: no setting [{section}] {key}")
            continue
        target = merged.setdefault(section, {})
        if isinstance(target, dict):
            target[key] = _EnvValue(value)
    return merged


def _build(schema: type[C], sections: dict[str, type], raw: dict[str, Any], problems: list[str]) -> C:
    """The whole config. A section that failed is replaced by its defaults so that every later check
    still runs and reports; the caller raises when `problems` is not empty."""
    lists = {f.name for f in fields(schema)} - set(sections)  # providers, aliases
    problems += [f"unknown section [{s}]" for s in raw if s not in sections and s not in lists]
    built: dict[str, Any] = {}
    for name, cls in sections.items():
        value = raw.get(name, {})
        if not isinstance(value, dict):
            problems.append(f"[{name}] must be a table")
            value = {}
        built[name] = build_section(f"[{name}]", cls, value, problems) or cls()
    providers = _build_providers(raw.get("providers", []), ProviderConfig, problems)
    aliases = _build_aliases(raw.get("aliases", {}), providers, problems)
    return replace(schema(), **built, providers=providers, aliases=aliases)


def build_section(where: str, cls: type[T], values: Mapping[str, Any], problems: list[str]) -> T | None:
    """One dataclass from a table: unknown keys, types, missing required keys, then its own rules."""
    hints = typing.get_type_hints(cls)
    settable = _settable(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in settable:
            problems.append(f"{where} unknown setting {key!r}")
            continue
        try:
            kwargs[key] = _coerce(value, hints[key], f"{where} {key}", problems)
        except ValueError as exc:
            problems.append(f"{where} {key}: {exc}")
    required = [n for n, f in settable.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    problems += [f"{where} missing setting {n!r}" for n in required if n not in values]
    if any(n not in kwargs for n in required):
        return None
    obj = cls(**kwargs)  # fields that failed above keep their defaults, so the rules below still run
    own = getattr(obj, "problems", None)
    problems += [f"{where} {p}" for p in _generic_problems(obj) + (own() if callable(own) else [])]
    failed = any(k not in kwargs for k in values if k in settable)
    return None if failed else obj


def _generic_problems(obj: Any) -> list[str]:
    out: list[str] = []
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            out.append(f"{f.name} must not be negative")
        if f.name == "listen" and not valid_listen(v):
            out.append(f"listen must be HOST:PORT, got {v!r}")
    return out


def _coerce(value: Any, hint: Any, where: str, problems: list[str]) -> Any:
    """Check `value` against a field type; strings from the environment are converted first."""
    origin = typing.get_origin(hint)
    if isinstance(value, _EnvValue):
        value = _parse_env(value.text, hint, origin)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ValueError(f"expected a table, got {value!r}")
        built = build_section(where + ":", typing.cast(type, hint), value, problems)
        if built is None:
            raise ValueError("see above")
        return built
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
        if not isinstance(value, dict):
            raise ValueError(f"expected a table, got {value!r}")
        item = typing.get_args(hint)[1]
        return {k: _coerce(v, item, f"{where}.{k}", problems) for k, v in value.items()}
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


def _build_providers(raw: Any, cls: type[ProviderConfig], problems: list[str]) -> tuple[ProviderConfig, ...]:
    if not isinstance(raw, list):
        problems.append("[[providers]] must be an array of tables")
        return ()
    out: list[ProviderConfig] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            problems.append(f"[[providers]] #{i + 1} must be a table")
            continue
        built = build_section(f"provider {entry.get('name', f'#{i + 1}')!r}:", cls, entry, problems)
        if built is not None:
            out.append(built)
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


def _resolve(config: C, environ: Mapping[str, str], problems: list[str], *, provider_keys: bool) -> C:
    """Fill secrets from the environment and derived settings; every other field passes through."""
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
    pg = config.postgres
    password = environ.get(pg.password_env, "") if pg.password_env else ""
    if pg.password_env and not password:
        problems.append(f"[postgres] password_env: environment variable {pg.password_env} is not set")
    rd = config.redis
    for setting, env in (("password_env", rd.password_env), ("sentinel_password_env", rd.sentinel_password_env)):
        if env and not environ.get(env):
            problems.append(f"[redis] {setting}: environment variable {env} is not set")
    redis_password = environ.get(rd.password_env, "") if rd.password_env else ""
    sentinel_password = environ.get(rd.sentinel_password_env, "") if rd.sentinel_password_env else ""
    providers = []
    for p in config.providers:
        if p.api_key_env and not environ.get(p.api_key_env) and provider_keys:
            problems.append(f"provider {p.name!r}: environment variable {p.api_key_env} (api_key_env) is not set")
        providers.append(replace(p, api_key=environ.get(p.api_key_env, "") if p.api_key_env else ""))
    return replace(config, admin=replace(config.admin, tokens=tokens), postgres=replace(pg, password=password),
                   redis=replace(rd, password=redis_password, sentinel_password=sentinel_password),
                   keystore=replace(config.keystore, namespace=config.redis.namespace), providers=tuple(providers))
