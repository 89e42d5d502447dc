"""`create_app()` and `create_admin_app()`: the only place that wires the pieces together. No I/O here."""

from __future__ import annotations

from aiohttp import web

from keystore import Clock

from proxy.admin import api as admin
from proxy.admin import page
from proxy.config import Config
from proxy.errors import error_mw
from proxy.gateway import forward
from proxy.gateway.providers import ProviderTable
from proxy.gateway.styles.owners import owners_ctx
from proxy.limits import ctx as limits
from proxy.log import add_request_id_header, request_id_mw
from proxy.metering.ctx import metering_ctx
from proxy.runtime import health
from proxy.runtime.access import RequestLog
from proxy.runtime.lifecycle import Lifecycle
from proxy.runtime.metrics import Metrics
from proxy.runtime.resources import start_watch_ctx, storage_ctx, upstream_http_ctx
from proxy.state import CLOCK, CONFIG, KEYSTORE, LIFECYCLE, METER, METRICS, PROVIDERS, REQUEST_LOG


def create_app(config: Config, *, clock: Clock | None = None) -> web.Application:
    """The proxy listener: `/v1/…` (authenticated), `/healthz`, `/readyz`."""
    metrics = Metrics()
    request_log = RequestLog(metrics)  # serve.py attaches the access log's sink
    root = web.Application(middlewares=[request_id_mw, request_log.middleware(), error_mw],
                           client_max_size=config.server.max_body_bytes)
    root[CONFIG] = config
    root[METRICS] = metrics
    root[REQUEST_LOG] = request_log
    root[PROVIDERS] = ProviderTable(config.providers, config.aliases)
    root[LIFECYCLE] = Lifecycle()
    if clock is not None:
        root[CLOCK] = clock
    # metering_ctx last: torn down first, after the drain, with its own pool (the final usage write)
    root.cleanup_ctx.extend([storage_ctx, start_watch_ctx, upstream_http_ctx, owners_ctx, metering_ctx])
    root.on_response_prepare.append(add_request_id_header)
    limits.setup(root)  # the limiter's context (after metering's) and the x-ratelimit-* headers
    root.add_routes(health.routes)
    root.add_subapp("/v1/", forward.make_subapp())
    root.add_subapp("/openai/", forward.make_azure_subapp())  # the AzureOpenAI client's own paths
    return root


def create_admin_app(config: Config, proxy_app: web.Application) -> web.Application:
    """The admin listener: `/admin/…` (admin token), the API Keys page, `/metrics`, `/healthz`, `/readyz`.

    It shares the proxy app's keystore and metrics: start it after `proxy_app` has started (its startup
    refuses otherwise), and clean it up before.
    """
    app = web.Application(middlewares=[request_id_mw, error_mw], client_max_size=1024 * 1024)
    app[CONFIG] = config
    app[METRICS] = proxy_app[METRICS]
    app[PROVIDERS] = proxy_app[PROVIDERS]
    app[LIFECYCLE] = proxy_app[LIFECYCLE]  # /healthz and /readyz answer here too, next to /metrics

    async def share_keystore(admin_app: web.Application) -> None:
        if KEYSTORE not in proxy_app:
            raise RuntimeError("start the proxy app before its admin app: the admin app uses its keystore")
        admin_app[KEYSTORE] = proxy_app[KEYSTORE]
        if METER in proxy_app:
            admin_app[METER] = proxy_app[METER]

    app.on_startup.append(share_keystore)
    app.on_response_prepare.append(add_request_id_header)
    app.add_routes(health.routes)
    admin.setup(app)
    page.setup(app)  # the API Keys page: loads without a token, then calls /admin/ with one
    return app
