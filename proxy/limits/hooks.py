"""The request path's two calls into the limiter: `reserve()` before the provider, `finish()` after."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from keystore import ApiKey

from proxy.gateway.providers import Route
from proxy.gateway.tap import Outcome
from proxy.limits.answers import RATE_HEADERS
from proxy.limits.tickets import Ticket
from proxy.log import ENDED
from proxy.metering.meter import METERED
from proxy.state import LIMITER, root


async def reserve(request: web.Request, key: ApiKey, route: Route, caps: Sequence[str],
                  body: Mapping[str, Any] | None, size: int) -> Ticket | None:
    """Admit the request under its key's limits (or raise the 400/402/429 answer); a key without limits
    returns at once. `caps`: where the endpoint takes max tokens; `size`: the bytes forwarded."""
    if key.limits is None:
        return None
    price = route.provider.prices.get(route.model)
    ticket = await root(request)[LIMITER].reserve(key, price, body or {}, size, caps)
    if ticket is not None and ticket.headers:
        request[RATE_HEADERS] = ticket.headers
    return ticket


def finish(request: web.Request, ticket: Ticket | None) -> None:
    """After the relay returned or raised (a client's disconnect included): reconcile to metering's figure
    (or refund it all when the relay recorded that the request never left)."""
    if ticket is not None:
        ended = request.get(ENDED)
        sent = ended is None or ended[0] is not Outcome.NOT_SENT
        root(request)[LIMITER].finish(ticket, request.get(METERED), sent=sent)
