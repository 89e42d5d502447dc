"""The application keys (`web.AppKey`) under which shared objects live. Nothing else."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from keystore import Clock, KeyStore

from proxy.config import Config
from proxy.gateway.providers import ProviderTable
from proxy.limits.limiter import Limiter
from proxy.metering.meter import Meter
from proxy.runtime.access import RequestLog
from proxy.runtime.lifecycle import Lifecycle
from proxy.runtime.metrics import Metrics

CONFIG = web.AppKey("config", Config)
KEYSTORE = web.AppKey("keystore", KeyStore)
UPSTREAM_HTTP = web.AppKey("upstream_http", aiohttp.ClientSession)
PROVIDERS = web.AppKey("providers", ProviderTable)
METRICS = web.AppKey("metrics", Metrics)
REQUEST_LOG = web.AppKey("request_log", RequestLog)  # metrics and access log of every proxy request
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)  # starting → started → draining (runtime/lifecycle.py)
METER = web.AppKey("meter", Meter)  # usage metering (its `config.enabled` says whether it meters)
LIMITER = web.AppKey("limiter", Limiter)  # per-key limits and budgets (proxy/limits/)
CLOCK = web.AppKey("clock", Clock)  # optional: tests inject a controllable clock
