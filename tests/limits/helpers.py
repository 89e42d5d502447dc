"""Helpers for the limits tests: key records with limits, metered figures, what serve processes decided."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp

from keystore import ApiKey
from keystore.limits import limits_from

from proxy.metering.tap import Metered
from proxy.metering.usage import Unmetered, Usage
from tests.support.procs import ADMIN_TOKEN, ServeProcess


def limited_key(key_id: str = "lim0000000000001", **limits: Any) -> ApiKey:
    """An ApiKey record with these limits (what the keystore hands the request path)."""
    now = datetime.now(UTC)
    return ApiKey(id=key_id, name="limited", account="default", hint="th-…", created_at=now, expires_at=None,
                  last_used_at=None, revoked_at=None, allowed_models=(), allowed_providers=(), rotated_from=None,
                  version=1, limits=limits_from(limits) if limits else None)


def metered(input_tokens: int, output_tokens: int, *, reason: Unmetered | None = None,
            usd: Decimal | None = None) -> Metered:
    """What metering's tap leaves on a request after the answer."""
    return Metered(Usage(input_tokens=input_tokens, output_tokens=output_tokens), reason, usd, None)


async def admitted_by_allowance(http: aiohttp.ClientSession, procs: list[ServeProcess]) -> int:
    """Requests the serve processes admitted from their allowances (limits taken from Redis ahead of use),
    summed from their `/metrics`."""
    total = 0
    for proc in procs:
        async with http.get(proc.admin_url("/metrics"), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
            for line in (await resp.text()).splitlines():
                if line.startswith("tokenhub_limits_decisions_total{") and 'by="allowance"' in line \
                        and 'outcome="admitted"' in line:
                    total += int(float(line.rsplit(" ", 1)[1]))
    return total
