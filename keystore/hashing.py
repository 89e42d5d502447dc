"""argon2id hashing and verification, run on a small dedicated thread pool, never on the event loop."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .errors import StorageUnavailable
from .settings import KeystoreSettings

log = logging.getLogger(__name__)


class Overloaded(StorageUnavailable):
    """Too many verifications are already waiting for a thread; the caller should retry later."""


class Hasher:
    """Hashes secrets and verifies them, at most `verify_threads` at a time.

    A verification that would make more than `max_pending_verifies` wait is refused at once
    (Overloaded), so a flood of cold keys queues a bounded amount of argon2 work, not an unbounded one.
    """

    def __init__(self, settings: KeystoreSettings) -> None:
        self._ph = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        self._pool = ThreadPoolExecutor(max_workers=settings.verify_threads, thread_name_prefix="argon2")
        self._slots = asyncio.Semaphore(settings.verify_threads)
        self._max_pending = settings.max_pending_verifies
        self.pending = 0
        self.verifies = 0  # argon2 verifications actually run (for metrics and tests)
        self.hashes = 0

    async def hash(self, secret: str) -> str:
        self.hashes += 1
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._ph.hash, secret)

    async def verify(self, secret_hash: str, secret: str) -> bool:
        if self.pending >= self._max_pending:
            raise Overloaded("too many key verifications in progress")
        self.pending += 1
        try:
            async with self._slots:
                self.verifies += 1
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._pool, self._verify_sync, secret_hash, secret)
        finally:
            self.pending -= 1

    def _verify_sync(self, secret_hash: str, secret: str) -> bool:
        try:
            return self._ph.verify(secret_hash, secret)
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError):
            log.error("stored hash could not be used for verification")
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
