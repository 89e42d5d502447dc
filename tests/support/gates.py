"""A real TCP forwarder in front of Postgres, Redis or a provider, which a test cuts, restores or freezes.

The one gate of the suite (the faults suite's freezing gate and the plain gate were two copies that had
drifted apart): `cut()` is a network fault (connections reset, new ones refused), `freeze()` a hung peer
or silent partition (connections accepted, nothing passes), `thaw()`/`restore()` end them.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class TcpGate:
    """Forwards 127.0.0.1:`port` to the target until told otherwise."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._held: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.open = True
        self.frozen = False
        self.refused = 0  # connections turned away while cut

    @classmethod
    async def before(cls, url: str, default_port: int) -> TcpGate:
        """A started gate in front of the service a URL names (Postgres, Redis, a provider)."""
        u = urlsplit(url)
        return await cls(u.hostname or "127.0.0.1", u.port or default_port).start()

    async def start(self) -> TcpGate:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.frozen:
            self._held.add(writer)  # accepted, never answered
            return
        if not self.open:
            self.refused += 1
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._links.update({writer, up_writer})
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self.frozen:  # frozen: swallowed
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._links.discard(writer)
            writer.close()

    def cut(self) -> None:
        """Drop every live connection and refuse new ones."""
        self.open = False
        for w in list(self._links):
            w.transport.abort()
        self._links.clear()

    def restore(self) -> None:
        self.open = True

    def freeze(self) -> None:
        """Keep connections open and accept new ones, but let nothing through in either direction."""
        self.frozen = True

    def thaw(self) -> None:
        """Unfreeze; what was held or swallowed is dropped (both ends see a reset)."""
        self.frozen = False
        for w in list(self._held):
            w.transport.abort()
        self._held.clear()
        self.cut()
        self.restore()

    async def close(self) -> None:
        self.cut()
        for w in list(self._held):
            w.transport.abort()
        self._held.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def gated_url(url: str, gate: TcpGate) -> str:
    """`url` (postgresql://, redis://, http://) with its host and port replaced by the gate's."""
    u = urlsplit(url)
    user = u.netloc.rpartition("@")[0]
    return u._replace(netloc=f"{user + '@' if user else ''}127.0.0.1:{gate.port}").geturl()
