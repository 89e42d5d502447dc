"""What every scenario needs: the options of this run and the running processes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .keys import BenchKey
from .procs import Proc
from .stack import MODEL, Layout, Proxy, Services


@dataclass(frozen=True, slots=True)
class Options:
    quick: bool
    rounds: int  # each measurement is repeated this often, targets alternating, and the median kept
    seconds: float  # length of one measured run
    cold_keys: int
    revokes: int
    memory_keys: int
    profile_seconds: float
    rate_seconds: float  # one step of the sustained-rate search
    stream_delay_ms: float = 2.0  # gap between two SSE events from the fake provider

    @classmethod
    def quick_mode(cls) -> Options:
        return cls(quick=True, rounds=1, seconds=2, cold_keys=40, revokes=30, memory_keys=2000,
                   profile_seconds=4, rate_seconds=2)

    @classmethod
    def full_mode(cls) -> Options:
        return cls(quick=False, rounds=5, seconds=5, cold_keys=300, revokes=200, memory_keys=10_000,
                   profile_seconds=15, rate_seconds=3)


@dataclass
class Bench:
    options: Options
    layout: Layout
    services: Services
    fake: Proc
    relay: Proc
    proxy: Proxy
    key: BenchKey  # a warm key without limits (the relay accepts only this one)
    # The governed path's key: limits on every dimension, all far above what the bench can use, so
    # the limiter runs on every request and never refuses one. None when the product has no limits.
    limited: BenchKey | None = None
    limited_note: str = ""  # why there is no limited key
    measured: dict[str, float] = field(default_factory=dict)  # figures later scenarios build on

    @property
    def proxy_key(self) -> BenchKey:
        """The key the proxy is measured with: the limited one when the product has limits."""
        return self.limited or self.key

    def url(self, target: str, path: str = "/v1/chat/completions") -> str:
        port = {"direct": self.fake.port, "relay": self.relay.port, "proxy": self.proxy.port}[target]
        return f"http://127.0.0.1:{port}{path}"

    def pid(self, target: str) -> int:
        return {"direct": self.fake.pid, "relay": self.relay.pid, "proxy": self.proxy.proc.pid}[target]


def chat_body(*, stream: bool = False, delay_ms: float = 0.0, chunks: int | None = None) -> str:
    """A chat request for the fake provider. `delay_ms`: the gap between two SSE events, or for a
    non-streamed answer the provider's time to answer; `chunks`: events in a stream (default 16)."""
    body: dict[str, object] = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}],
                               "max_tokens": 16}
    if stream:
        body |= {"stream": True, "bench_delay_ms": delay_ms}
        if chunks is not None:
            body["bench_chunks"] = chunks
    elif delay_ms > 0:
        body["bench_delay_ms"] = delay_ms
    return json.dumps(body, separators=(",", ":"))
