"""The `[limits]` config section: estimates for reservations, lease lifetime, and the Redis-down mode."""

from __future__ import annotations

from dataclasses import dataclass

FALLBACK_MODES = ("local", "open", "closed")


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    # Reserved for a request that names no max_tokens (max_completion_tokens, max_output_tokens):
    # output tokens assumed before the provider's metered figure corrects it.
    default_output_tokens: int = 1024
    # Input tokens are estimated from the request body's size before forwarding (one per this many bytes).
    bytes_per_input_token: int = 4
    # A concurrency slot is a lease in Redis: renewed while its request runs, gone this long after an
    # instance died mid-request, so a crash cannot leak concurrency for longer.
    lease_seconds: float = 30.0
    # Redis unreachable: "local" (each instance enforces 1/fallback_instances of every limit), "open"
    # (admit, count nothing), "closed" (refuse limited keys with 503).
    fallback: str = "local"
    fallback_instances: int = 1  # proxy processes (instances x workers) to split limits by while Redis is down
    retry_redis_seconds: float = 1.0  # after a Redis failure, use the fallback this long before retrying

    def problems(self) -> list[str]:
        out = []
        if self.fallback not in FALLBACK_MODES:
            out.append(f"fallback must be one of {', '.join(FALLBACK_MODES)}, got {self.fallback!r}")
        if self.fallback_instances < 1:
            out.append("fallback_instances must be at least 1")
        if self.bytes_per_input_token < 1:
            out.append("bytes_per_input_token must be at least 1")
        if self.lease_seconds < 1:
            out.append("lease_seconds must be at least 1")
        return out
