"""What a limited key is told: the 429/402/400 errors (SPEC §9) and the `x-ratelimit-*` headers."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from keystore import KeyLimits

from proxy.errors import ProxyError

RATE_HEADERS = web.RequestKey("rate_headers", dict)  # set on a request whose key has a per-minute limit


class RateLimitExceeded(ProxyError):
    status, error_type, code = 429, "rate_limit_error", "rate_limit_exceeded"


class UsageLimitExceeded(ProxyError):
    status, error_type, code = 402, "usage_limit_error", "usage_limit_exceeded"


class MaxTokensExceeded(ProxyError):
    status, error_type, code = 400, "invalid_request_error", "max_tokens_exceeded"


@dataclass(frozen=True, slots=True)
class Levels:
    """Where a key's per-minute buckets stand after an admission decision."""

    requests_left: int = 0
    requests_reset_ms: int = 0
    tokens_left: int = 0
    tokens_reset_ms: int = 0


def duration(ms: int) -> str:
    """Milliseconds in OpenAI's (Go's) duration form: `0s`, `12ms`, `1s`, `1m30.5s`, `6m0s`, `1h0m0s`."""
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest // 1000}" if rest % 1000 == 0 else f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    out = f"{hours}h" if hours else ""
    if hours or minutes:
        out += f"{minutes}m"
    return f"{out}{seconds}s"


def rate_headers(limits: KeyLimits, levels: Levels) -> dict[str, str]:
    """The `x-ratelimit-*` headers for the per-minute limits the key has (none when it has neither)."""
    out: dict[str, str] = {}
    if limits.requests_per_minute is not None:
        out["x-ratelimit-limit-requests"] = str(limits.requests_per_minute)
        out["x-ratelimit-remaining-requests"] = str(levels.requests_left)
        out["x-ratelimit-reset-requests"] = duration(levels.requests_reset_ms)
    if limits.tokens_per_minute is not None:
        out["x-ratelimit-limit-tokens"] = str(limits.tokens_per_minute)
        out["x-ratelimit-remaining-tokens"] = str(levels.tokens_left)
        out["x-ratelimit-reset-tokens"] = duration(levels.tokens_reset_ms)
    return out


def rate_limited(limits: KeyLimits, levels: Levels, retry_ms: int, what: str) -> RateLimitExceeded:
    seconds = max(1, -(-retry_ms // 1000))  # Retry-After: whole seconds, rounded up, at least 1
    headers = rate_headers(limits, levels) | {"Retry-After": str(seconds)}
    return RateLimitExceeded(f"Rate limit reached for this API key ({what}). Retry after {seconds}s.",
                             headers=headers)


def over_budget(limits: KeyLimits, levels: Levels) -> UsageLimitExceeded:
    # The budget may not be spent yet: a request is refused when what it reserves (its max tokens, or
    # the configured estimate when it names none) would pass the budget. Say so, and what helps.
    return UsageLimitExceeded("This request would exceed this API key's monthly usage limit (what a request "
                              "may use is reserved up front: set a lower max_tokens). The limit resets at the "
                              "start of the next calendar month (UTC).", headers=rate_headers(limits, levels))


async def add_rate_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the headers of an admitted request (a refusal carries its own)."""
    headers = request.get(RATE_HEADERS)
    if headers:
        response.headers.update(headers)
