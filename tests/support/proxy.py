"""Helpers of the request-path tests: the proxy's config in front of a fake provider, key issuing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from keystore import KeystoreSettings

from proxy.config import Config, PostgresConfig, ProviderConfig, RedisConfig, ServerConfig, UpstreamConfig

PROVIDER_KEY = "sk-provider-secret-0123456789"
DEMO_MODELS = ("echo", "echo-mini", "embed-small")


def proxy_config(database_url: str, redis_url: str, settings: KeystoreSettings, provider_url: str,
                 **overrides: Any) -> Config:
    """Two providers behind the same fake: `demo` (with a credential) and `open` (without)."""
    providers = (
        ProviderConfig(name="demo", base_url=provider_url, models=DEMO_MODELS, api_key_env="DEMO_KEY",
                       api_key=PROVIDER_KEY),
        ProviderConfig(name="open", base_url=provider_url, models=("echo",)),
    )
    config = Config(
        postgres=PostgresConfig(dsn=database_url, timeout_seconds=2.0, connect_timeout_seconds=2.0),
        redis=RedisConfig(url=redis_url, namespace=settings.namespace, timeout_seconds=1.0,
                          connect_timeout_seconds=1.0),
        keystore=settings, providers=providers, aliases={"chat": "demo/echo"},
        server=ServerConfig(max_body_bytes=64 * 1024), upstream=UpstreamConfig(),
    )
    return replace(config, **overrides)


IssueKey = Callable[..., Awaitable[str]]
