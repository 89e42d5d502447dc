"""Turns at argon2 for one key id: one verification at a time, handed round-robin across clients.

Bounding verification work per key id keeps a flood of wrong secrets for one id from taking every
thread; handing the turns round-robin across client addresses keeps that bound from becoming a
lockout of the key's rightful holder (issue 12, case 4).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator


class Turns:
    """One argon2 verification at a time for one key id, turns handed round-robin across clients.

    A client's waiting requests form its own queue; each turn goes to the next client in line, so a
    request waits for at most one verification per other client waiting, however many requests those
    clients queued. Other clients' wrong secrets can slow the rightful holder of a key, never lock
    them out (issue 12, case 4).
    """

    def __init__(self) -> None:
        self.busy = False
        self.queues: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    def waiting(self, client: str) -> int:
        return len(self.queues.get(client, ()))

    async def acquire(self, client: str) -> None:
        if not self.busy:
            self.busy = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queues.setdefault(client, deque()).append(turn)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.release()  # granted and cancelled in the same breath: pass the turn on
            else:
                self._drop(client, turn)
            raise

    def _drop(self, client: str, turn: asyncio.Future[None]) -> None:
        queue = self.queues.get(client)
        if queue is not None and turn in queue:
            queue.remove(turn)
            if not queue:
                del self.queues[client]

    def release(self) -> None:
        while self.queues:
            client, queue = next(iter(self.queues.items()))
            turn = queue.popleft()
            del self.queues[client]
            if queue:
                self.queues[client] = queue  # back of the line
            if not turn.done():
                turn.set_result(None)
                return
        self.busy = False

    @property
    def idle(self) -> bool:
        return not self.busy and not self.queues


class TurnTable:
    """`Turns` per key id, dropped when idle."""

    def __init__(self) -> None:
        self._by_id: dict[str, Turns] = {}

    def waiting(self, key_id: str, client: str) -> int:
        turns = self._by_id.get(key_id)
        return 0 if turns is None else turns.waiting(client)

    @contextlib.asynccontextmanager
    async def turn(self, key_id: str, client: str) -> AsyncIterator[None]:
        turns = self._by_id.setdefault(key_id, Turns())
        try:
            await turns.acquire(client)
        except BaseException:
            if turns.idle:
                self._by_id.pop(key_id, None)
            raise
        try:
            yield
        finally:
            turns.release()
            if turns.idle:
                self._by_id.pop(key_id, None)
