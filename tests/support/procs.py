"""Helpers for tests that run real `tokenhub` processes: free ports, a config file, `tokenhub migrate`,
`tokenhub serve` started and waited for (`/healthz`), and stopped with SIGTERM.

    config = write_config(tmp_path, database_url=..., redis_url=..., namespace=...,
                          providers=[provider("demo", url, ["echo"], api_key_env="DEMO_KEY")])
    run_migrate(config)
    async with serving(config, env={"DEMO_KEY": "sk-provider"}) as proc:
        ... proc.url("/v1/models"), proc.admin_url("/admin/keys"), proc.admin_token ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(also: int = 0) -> int:
    """A port nobody listens on right now, below the kernel's ephemeral range: a port from that range
    (what binding port 0 gives) can be taken by any outgoing connection before the process we pass it to
    binds it, which failed a fleet test once ("address already in use"). `also`: the process listens on
    port + `also` too (a Redis Cluster node's bus: + 10000); that one is kept below the range and free."""
    low = _ephemeral_low() - also
    for _ in range(200):
        port = random.randint(max(1024, low - 12000), low - 1)
        if _bindable(port) and (not also or _bindable(port + also)):
            return port
    raise RuntimeError("no free port below the ephemeral range")


def provider(name: str, base_url: str, models: Sequence[str], api_key_env: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "base_url": base_url, "models": list(models)}
    if api_key_env:
        entry["api_key_env"] = api_key_env
    return entry


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string of printable text is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def render_toml(sections: Mapping[str, Mapping[str, Any]], providers: Sequence[Mapping[str, Any]] = ()) -> str:
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    for entry in providers:
        lines.append("[[providers]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
        lines.append("")
    return "\n".join(lines)


def write_config(directory: Path, *, database_url: str, redis_url: str, namespace: str,
                 providers: Sequence[Mapping[str, Any]] = (), name: str = "tokenhub.toml",
                 **sections: Mapping[str, Any]) -> Path:
    """A config file with free ports for both listeners; `sections` add or override settings,
    e.g. `upstream={"idle_timeout_seconds": 1.0}`."""
    base: dict[str, dict[str, Any]] = {
        "server": {"listen": f"127.0.0.1:{free_port()}", "shutdown_grace_seconds": 5.0},
        "admin": {"listen": f"127.0.0.1:{free_port()}"},
        "postgres": {"dsn": database_url},
        "redis": {"url": redis_url, "namespace": namespace},
        "keystore": {"ping_interval_seconds": 0.5, "poll_interval_seconds": 0.2, "heartbeat_seconds": 0.5},
        "logging": {"level": "INFO", "format": "json"},
    }
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    path = directory / name
    path.write_text(render_toml(base, providers))
    return path


def _listen(config_path: Path, section: str) -> tuple[str, int]:
    with config_path.open("rb") as fh:
        host, _, port = tomllib.load(fh)[section]["listen"].rpartition(":")
    return host, int(port)


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_")}
    env["TOKENHUB_ADMIN_TOKEN"] = ADMIN_TOKEN
    env.update(extra or {})
    return env


def run_migrate(config_path: Path, env: Mapping[str, str] | None = None) -> str:
    """`tokenhub migrate --config PATH`; returns its output, raises if it failed."""
    done = subprocess.run([sys.executable, "-m", "proxy", "migrate", "--config", str(config_path)],
                          env=_env(env), capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise AssertionError(f"tokenhub migrate failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class ServeProcess:
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    admin_port: int
    log_path: Path
    admin_token: str = ADMIN_TOKEN
    extra: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def admin_url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.admin_port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"tokenhub serve exited with {self.proc.returncode}:\n{self.log()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(self.url("/healthz")) as r:
                        if r.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise AssertionError(f"tokenhub serve not healthy after {timeout}s:\n{self.log()}")
                await asyncio.sleep(0.05)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Signal the process (SIGTERM: drain and exit) and wait; kill it if it overstays."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        return int(self.proc.returncode)


def start_serve(config_path: Path, env: Mapping[str, str] | None = None,
                args: Sequence[str] = ()) -> ServeProcess:
    """Start `tokenhub serve --config PATH` (not yet waited for: call `wait_healthy()`)."""
    host, port = _listen(config_path, "server")
    _, admin_port = _listen(config_path, "admin")
    log_path = config_path.with_suffix(f".{port}.log")
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(config_path), *args],
                                env=_env(env), stdout=log_file, stderr=subprocess.STDOUT)
    return ServeProcess(proc, host, port, admin_port, log_path)


@contextlib.asynccontextmanager
async def serving(config_path: Path, env: Mapping[str, str] | None = None,
                  args: Sequence[str] = ()) -> AsyncIterator[ServeProcess]:
    """A healthy `tokenhub serve`, stopped (SIGTERM, then kill) on exit."""
    proc = start_serve(config_path, env, args)
    try:
        await proc.wait_healthy()
        yield proc
    finally:
        await proc.stop()
