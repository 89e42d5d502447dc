"""Tunables of the keystore: argon2 cost, cache sizes and lifetimes, the revocation feed's bounds."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class KeystoreSettings:
    # argon2id cost. The secret has ~190 bits of entropy, so the hash guards against a dumped
    # table, not against guessing: OWASP's minimum argon2id profile (19 MiB, t=2, p=1) costs
    # about 20 ms here and keeps a cold key cheap. See README "Key format".
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    verify_threads: int = 2  # argon2 threads; also the bound on concurrent verifications
    max_pending_verifies: int = 256  # cold verifications waiting for a thread; beyond: 503

    last_used_flush_seconds: float = 10.0
    # Keys older than this are flagged for rotation in `tokenhub keys list` and on the API Keys page
    # (a reminder only: nothing stops working). The usual policy: rotate every 90 days.
    rotation_reminder_days: int = 90

    cache_size: int = 100_000  # in-process verified keys
    cache_ttl_seconds: float = 60.0  # re-check a verified key against Redis/Postgres after this
    cache_keep_seconds: float = 3600.0  # drop a verified key unconfirmed this long (then argon2 again)
    negative_ttl_seconds: float = 10.0  # unknown key ids and known-bad presented keys
    negative_cache_size: int = 100_000
    redis_ttl_seconds: float = 300.0  # key records in Redis; must exceed fill_max_age_seconds
    fill_max_age_seconds: float = 10.0  # a loader older than this never fills a cache
    stale_bound_seconds: float = 2.0  # while the revocation feed is down, trust cache entries this long
    pg_down_grace_seconds: float = 30.0  # Postgres down: serve keys verified this recently

    # prefix of every Redis key and channel; set from [redis] namespace, never configured here
    namespace: str = field(default="tokenhub", metadata={"resolved": True})
    ping_interval_seconds: float = 1.0  # revocation feed liveness PING
    resubscribe_delay_seconds: float = 0.5
    poll_interval_seconds: float = 1.0  # the Postgres change-log backstop
    heartbeat_seconds: float = 2.0  # instance presence in Redis
    ack_timeout_seconds: float = 2.0  # how long a revoke waits for instances to confirm

    failure_threshold: int = 20  # failed verifications per (key id, client) per window before 429
    failure_window_seconds: float = 60.0
    max_waiting_per_client: int = 8  # verifications of one key id queued by one client; beyond: 429 at once
    redis_retry_after_seconds: float = 1.0  # skip Redis this long after it failed

    clock_sync_seconds: float = 30.0  # re-measure the offset to the Postgres clock this often
    clock_warn_offset_seconds: float = 1.0  # log a warning when the offset exceeds this
    clock_max_offset_seconds: float = 10.0  # past this offset the instance reports not ready

    def problems(self) -> list[str]:
        """This section's own rules (the config loader adds the section name)."""
        if self.redis_ttl_seconds <= self.fill_max_age_seconds:
            return ["redis_ttl_seconds must exceed fill_max_age_seconds"]
        return []
