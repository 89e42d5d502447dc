"""Stored responses belong to the key that created them (OpenAI Responses API).

Behind one provider credential, every key could read, cancel, delete or continue (`previous_response_id`)
every other key's stored responses. So the proxy remembers, in Postgres, which key (and provider and
model) created each response id, the moment the id first shows in the provider's answer (`IdTap`, a
tap on the relay), and lets only that key — or the key it was rotated into — reach the id again. Anyone
else gets the same 404 as for an id that never existed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from keystore import ApiKey, ResponseOwner, ResponseOwners

from proxy.errors import NotFound
from proxy.gateway.tap import Outcome
from proxy.runtime.resources import create_pool
from proxy.state import CONFIG

log = logging.getLogger(__name__)
ID_RE = re.compile(r"[A-Za-z0-9_-]{1,200}")
_HEAD_LIMIT = 1024 * 1024  # the first event of a stream is read for its id up to this size
_JSON_ID = re.compile(rb'\A\s*\{\s*"id"\s*:\s*"([A-Za-z0-9_-]{1,200})"')
RETRY_DELAY = 0.25  # a miss is asked once more: the creating instance may still be writing the record
_WRITES: set[asyncio.Task[None]] = set()  # records being written (strong references until done)


def _first_event_id(head: bytes, end: int) -> str | None:
    data = b"\n".join(line[5:].strip() for line in head[:end].replace(b"\r\n", b"\n").split(b"\n")
                      if line.startswith(b"data:"))
    try:
        event: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    response = event.get("response") if isinstance(event, dict) else None
    found = response.get("id") if isinstance(response, dict) else None
    return found if isinstance(found, str) else None


def _whole_id(body: bytes) -> str | None:
    try:
        obj: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    found = obj.get("id") if isinstance(obj, dict) else None
    return found if isinstance(found, str) else None


class IdTap:
    """Finds the id in a successful answer — a response object (`{"id": …}`) or, in a stream, the
    response of its first event (`response.created`) — and hands it to `found` once. Looks only at
    the head of the answer; passes every byte on untouched."""

    def __init__(self, found: Callable[[str], None]) -> None:
        self._found = found
        self._done = False
        self._sse = False
        self._head = b""

    def on_start(self, status: int, headers: CIMultiDictProxy[str]) -> None:
        self._done = not 200 <= status < 300
        self._sse = headers.get("Content-Type", "").startswith("text/event-stream")

    def on_chunk(self, chunk: bytes) -> bytes:
        if not self._done:
            self._head += chunk
            self._look()
        return chunk

    def on_body(self, body: bytes) -> bytes:
        if not self._done:
            self._head = body
            self._look(whole=True)
        return body

    def on_end(self, outcome: Outcome) -> None:
        if not self._done and self._head:
            self._look(whole=True)

    def _look(self, *, whole: bool = False) -> None:
        head = self._head
        if self._sse:
            ends = [i for i in (head.find(b"\n\n"), head.find(b"\r\n\r\n")) if i >= 0]
            end = min(ends) if ends else -1
            if end < 0 and not whole and len(head) <= _HEAD_LIMIT:
                return
            self._emit(_first_event_id(head, end if end >= 0 else len(head)))
        else:
            match = _JSON_ID.match(head)  # OpenAI and vLLM write the id first
            if match is None and not whole and len(head) <= _HEAD_LIMIT:
                return
            self._emit(match.group(1).decode() if match else _whole_id(head) if whole else None)

    def _emit(self, found: str | None) -> None:
        self._done, self._head = True, b""
        if found is not None and ID_RE.fullmatch(found):
            self._found(found)
        else:
            log.warning("a created response carried no readable id; it cannot be read back through the proxy")


def remember(owners: ResponseOwners, owner: ResponseOwner) -> asyncio.Task[None]:
    """Start writing `owner`; the task outlives a cancelled request (the answer may already be out)."""
    async def write() -> None:
        try:
            if not await owners.remember(owner):
                log.warning("response id %s was already recorded for another creator", owner.response_id)
        except Exception:  # a background write: log it (the id then stays unreachable)
            log.exception("could not record the creator of response %s", owner.response_id)

    task = asyncio.create_task(write())
    _WRITES.add(task)
    task.add_done_callback(_WRITES.discard)
    return task


async def owned(owners: ResponseOwners, key: ApiKey, response_id: str, param: str | None = None) -> ResponseOwner:
    """The record of a response this key created (or the key it was rotated from); NotFound otherwise,
    the same answer as for an id that does not exist."""
    if ID_RE.fullmatch(response_id):
        owner = await owners.find(response_id)
        if owner is None:
            await asyncio.sleep(RETRY_DELAY)
            owner = await owners.find(response_id)
        if owner is not None and owner.key_id in (key.id, key.rotated_from):
            return owner
    raise NotFound(f"No response found with id '{response_id[:80]}'.", param=param, code="response_not_found")


RESPONSE_OWNERS = web.AppKey("response_owners", ResponseOwners)
# Providers keep stored responses 30 days (OpenAI's default); a record older than that guards nothing.
KEEP_DAYS = 45.0
_PURGE_EVERY = 3600.0


async def _forget_old(owners: ResponseOwners) -> None:
    """Every instance, hourly: drop records past KEEP_DAYS (idempotent, batched, harmless if several run)."""
    while True:
        await asyncio.sleep(_PURGE_EVERY)
        try:
            while await owners.forget_older_than(KEEP_DAYS) > 0:
                pass
        except Exception:  # a background loop: log and try again next time
            log.exception("could not purge old response records")


async def owners_ctx(app: web.Application) -> AsyncIterator[None]:
    """The response-owner records, on a pool of their own (opened lazily, like the keystore's)."""
    config = app[CONFIG]
    pool = await create_pool(config)
    owners = app[RESPONSE_OWNERS] = ResponseOwners(pool, timeout=config.postgres.timeout_seconds)
    purge = asyncio.create_task(_forget_old(owners))
    try:
        yield
    finally:
        purge.cancel()
        if _WRITES:
            await asyncio.wait(list(_WRITES), timeout=config.postgres.timeout_seconds)
        await pool.close()
