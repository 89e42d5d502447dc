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
    stream_delay_ms: float = 2.0  # gap between two SSE events from the fake provider

    @classmethod
    def quick_mode(cls) -> Options:
        return cls(quick=True, rounds=1, seconds=2, cold_keys=40, revokes=30, memory_keys=2000,
                   profile_seconds=4)

    @classmethod
    def full_mode(cls) -> Options:
        return cls(quick=False, rounds=5, seconds=5, cold_keys=300, revokes=200, memory_keys=10_000,
                   profile_seconds=15)


@dataclass
class Bench:
    options: Options
    layout: Layout
    services: Services
    fake: Proc
    relay: Proc
    proxy: Proxy
    key: BenchKey  # the warm key every throughput scenario uses
    measured: dict[str, float] = field(default_factory=dict)  # figures later scenarios build on

    def url(self, target: str, path: str = "/v1/chat/completions") -> str:
        port = {"direct": self.fake.port, "relay": self.relay.port, "proxy": self.proxy.port}[target]
        return f"http://127.0.0.1:{port}{path}"

    def pid(self, target: str) -> int:
        return {"direct": self.fake.pid, "relay": self.relay.pid, "proxy": self.proxy.proc.pid}[target]


def chat_body(*, stream: bool = False, delay_ms: float = 0.0) -> str:
    body: dict[str, object] = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}],
                               "max_tokens": 16}
    if stream:
        body |= {"stream": True, "bench_delay_ms": delay_ms}
    return json.dumps(body, separators=(",", ":"))
