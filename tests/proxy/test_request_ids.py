"""Generated request ids: 128 random bits as 32 hex digits, never repeated, and a forked worker does not
replay its parent's sequence (the generator is seeded once per process, not per request)."""

from __future__ import annotations

import os
import re

from proxy import log


def _next_id() -> str:
    return f"{log._ids.getrandbits(128):032x}"


def test_ids_are_32_hex_digits_and_unique() -> None:
    ids = {_next_id() for _ in range(100_000)}
    assert len(ids) == 100_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_forked_worker_draws_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    state = log._ids.getstate()
    pid = os.fork()
    if pid == 0:  # the child: what it draws first after the fork
        os.write(write, _next_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    log._ids.setstate(state)  # what the parent draws from the same point
    assert child != _next_id()
