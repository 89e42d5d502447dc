"""Helpers of the fault and bad-input suite: `tokenhub serve` clusters, a recording HTTP client, the key
hygiene record, raw HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.support.gates import TcpGate, gated_url
from tests.support.procs import ADMIN_TOKEN, ServeProcess, provider, serving, write_config

PROVIDER_ENV = {"DEMO_KEY": "sk-provider-secret-for-faults"}
MODELS = ("echo", "echo-mini", "embed-small")
CHAT = "/v1/chat/completions"
GUARD = 15.0  # seconds: a guard against hanging, never a timing assertion


@dataclass
class Hygiene:
    """Everything the suite must keep clean of key material: issued keys and the texts to scan."""

    keys: set[str] = field(default_factory=set)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (where it came from, text)
    logs: list[Path] = field(default_factory=list)

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def leaks(self) -> list[str]:
        """Where any issued key, or just its secret part, appears."""
        needles = {k: (k, k[16:48]) for k in self.keys}  # th-<id>_ is 16 characters, the secret 32
        sources = self.texts + [(p.name, p.read_text(errors="replace")) for p in self.logs if p.exists()]
        return [f"{where}: {k[:7]}…" for where, text in sources for k, parts in needles.items()
                if any(part in text for part in parts)]


class Cluster:
    """Starts `tokenhub serve` processes for one test; every one shares the test's namespace."""

    def __init__(self, tmp_path: Path, database_url: str, redis_url: str, namespace: str, provider_url: str,
                 hygiene: Hygiene, stack: contextlib.AsyncExitStack) -> None:
        self._args = (tmp_path, database_url, redis_url, namespace, provider_url)
        self._hygiene, self._stack, self._n = hygiene, stack, 0
        self.procs: list[ServeProcess] = []

    async def start(self, *, pg: TcpGate | None = None, redis: TcpGate | None = None,
                    provider_base: str | None = None, **sections: dict[str, Any]) -> ServeProcess:
        tmp_path, database_url, redis_url, namespace, provider_url = self._args
        self._n += 1
        config = write_config(
            tmp_path, name=f"serve{self._n}.toml", namespace=namespace,
            database_url=gated_url(database_url, pg) if pg else database_url,
            redis_url=gated_url(redis_url, redis) if redis else redis_url,
            providers=[provider("demo", provider_base or provider_url, MODELS, api_key_env="DEMO_KEY")],
            **sections)
        proc = await self._stack.enter_async_context(serving(config, PROVIDER_ENV))
        self._hygiene.logs.append(proc.log_path)
        self.procs.append(proc)
        return proc


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        body = self.json()
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
        return dict(body["error"])


class Client:
    """HTTP calls that record every error body for the hygiene scan."""

    def __init__(self, session: aiohttp.ClientSession, hygiene: Hygiene) -> None:
        self.session, self._hygiene = session, hygiene

    async def call(self, method: str, url: str, *, key: str | None = None, admin: bool = False,
                   **kw: Any) -> Answer:
        headers = dict(kw.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if admin:
            headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        async with asyncio.timeout(GUARD):
            async with self.session.request(method, url, headers=headers, **kw) as r:
                answer = Answer(r.status, dict(r.headers), await r.read())
        if answer.status >= 400:
            self._hygiene.add(f"{method} {url} -> {answer.status}", answer.body.decode(errors="replace"))
        return answer

    def record(self, where: str, raw: bytes) -> None:
        self._hygiene.add(where, raw.decode("latin-1"))

    async def chat(self, proc: ServeProcess, key: str, **body: Any) -> Answer:
        payload = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]} | body
        return await self.call("POST", proc.url(CHAT), key=key, json=payload)

    async def issue(self, proc: ServeProcess, name: str = "faults", **fields: Any) -> tuple[str, str]:
        """A new key through the admin API; returns (key, key id) and records the key for the scan."""
        answer = await self.call("POST", proc.admin_url("/admin/keys"), admin=True, json={"name": name} | fields)
        assert answer.status == 201, answer.body
        created = answer.json()
        self._hygiene.keys.add(created["key"])
        return created["key"], created["id"]


async def scrape(proc: ServeProcess) -> str:
    async with aiohttp.ClientSession() as session, asyncio.timeout(GUARD), \
            session.get(proc.admin_url("/metrics")) as r:
        return await r.text()


def metric(text: str, name: str) -> float:
    """The sum of every sample of `name` (any labels) in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def raw_request(port: int, data: bytes, *, host: str = "127.0.0.1") -> bytes:
    """Send raw bytes to `port` and read until the server closes the connection (or GUARD)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(GUARD):
            return await reader.read(-1)
    finally:
        writer.close()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]
