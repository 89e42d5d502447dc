"""The `[limits]` config section: estimates for reservations, leases, allowances, and the Redis-down mode."""

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
    # Allowances (allowance.py): a busy key's requests are decided in-process from a share of its limits
    # taken from Redis ahead of use. At most this many requests' worth at once (0: every request of a
    # limited key is decided in Redis), at most 1/allowance_share of what is left of a limit, given
    # back when unused after allowance_seconds.
    allowance_requests: int = 1024
    allowance_share: int = 8
    allowance_seconds: float = 1.0

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
        if self.allowance_requests < 0:
            out.append("allowance_requests must be 0 (no allowances) or more")
        if self.allowance_share < 2:
            out.append("allowance_share must be at least 2 (one process never takes all that is left)")
        if not 0 < self.allowance_seconds <= 60:
            out.append("allowance_seconds must be more than 0 and at most 60")
        return out
