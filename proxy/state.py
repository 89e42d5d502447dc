"""The application keys (`web.AppKey`) under which shared objects live, and where to find them."""

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


def root(request: web.Request) -> web.Application:
    """The root application, where every key above lives. On the request path, `root(request)[KEY]` is one
    dict lookup; `request.config_dict[KEY]` builds a chain of the apps on the request's path at each call
    and tries each in turn, a KeyError per miss (about 2 µs a lookup, several per request: issue 18)."""
    return request.match_info.apps[0]
