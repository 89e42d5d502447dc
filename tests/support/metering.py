"""Metering test helpers: a recording OpenAI-shaped upstream (the exact bytes it sent, per request), the
proxy and admin apps in front of it, and the config they run with."""


from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openai import AsyncOpenAI

from keystore import KeystoreSettings

from proxy.config import AdminConfig, Config, ModelPrice, PostgresConfig, ProviderConfig, RedisConfig
from proxy.metering.meter import Meter
from proxy.metering.settings import MeteringConfig
from proxy.state import METER
from tests.metering.streams import chat_body, chat_events, completion_body, completion_events, embeddings_body

ADMIN_TOKEN = "metering-admin-token-0123456789"
CHAT, INSTRUCT, EMBED, FREE = "gpt-4o-mini", "gpt-3.5-turbo-instruct", "text-embedding-3-small", "free-model"
PRICES = {CHAT: ModelPrice(input=0.15, output=0.60), INSTRUCT: ModelPrice(input=1.50, output=2.00),
          EMBED: ModelPrice(input=0.02, output=0.0)}
PROVIDER_REQUEST_ID = "req_0123456789abcdef"


@dataclass
class Recorder:
    """The upstream. `sent` holds the exact bytes of each answer; `mode` bends its behaviour:
    "normal", "no_usage" (never reports usage), "hold" (a stream waits after its first event until
    `release`), "break" (a stream is cut after two events)."""

    sent: list[bytes] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "normal"
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.answer)
        app.router.add_post("/v1/completions", self.answer)
        app.router.add_post("/v1/embeddings", self.answer)
        return app

    async def answer(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.received.append(body)
        model, kind = body["model"], request.path.split("/")[2]  # chat, completions or embeddings
        if body.get("stream"):
            asked = (body.get("stream_options") or {}).get("include_usage") is True and self.mode != "no_usage"
            events = chat_events if kind == "chat" else completion_events
            return await self._stream(request, events(model, with_usage=asked))
        answers: dict[str, Callable[[str], bytes]] = {"chat": chat_body, "embeddings": embeddings_body}
        raw = answers.get(kind, completion_body)(model)
        if self.mode == "no_usage":
            raw = orjson.dumps({k: v for k, v in orjson.loads(raw).items() if k != "usage"})
        self.sent.append(raw)
        return web.Response(body=raw, content_type="application/json", headers={"x-request-id": PROVIDER_REQUEST_ID})

    async def _stream(self, request: web.Request, events: list[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "x-request-id": PROVIDER_REQUEST_ID})
        await response.prepare(request)
        self.sent.append(b"")
        for n, event in enumerate(events):
            if self.mode == "break" and n == 2:
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write(event)
            self.sent[-1] += event
            if self.mode == "hold" and n == 0:
                self.holding.set()
                await self.release.wait()
        await response.write_eof()
        return response


def metering_config(database_url: str, redis_url: str, settings: KeystoreSettings, upstream: str,
                    **metering: Any) -> Config:
    provider = ProviderConfig(name="openai", base_url=upstream, models=(CHAT, INSTRUCT, EMBED, FREE),
                              api_key="sk-upstream-credential-0123456789", prices=PRICES)
    return Config(postgres=PostgresConfig(dsn=database_url), keystore=settings,
                  redis=RedisConfig(url=redis_url, namespace=settings.namespace, timeout_seconds=1.0),
                  admin=AdminConfig(tokens={"admin": ADMIN_TOKEN}), providers=(provider,),
                  metering=MeteringConfig(**({"flush_seconds": 3600.0} | metering)))


@dataclass
class Stack:
    proxy: TestServer
    admin: TestClient[web.Request, web.Application]

    @property
    def meter(self) -> Meter:
        return self.proxy.app[METER]

    async def issue(self, name: str = "metered") -> tuple[str, str]:
        """A new key through the admin API: (key, id)."""
        r = await self.admin.post("/admin/keys", json={"name": name})
        assert r.status == 201, await r.text()
        created = await r.json()
        return created["key"], created["id"]

    async def usage(self, key_id: str, **params: str) -> Any:
        await self.meter.flush()
        r = await self.admin.get(f"/admin/keys/{key_id}/usage", params=params)
        assert r.status == 200, await r.text()
        return await r.json()

    def sdk(self, key: str) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=str(self.proxy.make_url("/v1")), api_key=key, max_retries=0)
