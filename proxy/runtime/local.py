"""`tokenhub local`: a one-command local stack for a newcomer.

In this one process: migrate the database, start the built-in demo provider (no account, no internet),
start the proxy and admin listeners, create a key, and print it with a curl line and an OpenAI SDK
snippet that work as printed. Ctrl-C (or SIGTERM) drains and stops exactly what it started.
Postgres and Redis come from TOKENHUB_POSTGRES__DSN / TOKENHUB_REDIS__URL (`deploy/dev.sh run` sets
them, starting throwaway servers when the machine has none).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shlex
import socket
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import uvloop

from keystore import Actor, migrate

from proxy.config import DEFAULT_ADMIN_TOKEN_ENV, Config
from proxy.config_loader import load_config
from proxy.log import setup_logging
from proxy.runtime.demo import DEMO_MODELS, start_demo
from proxy.runtime.resources import create_pool
from proxy.runtime.serve import Instance, StartupError, check_runtime, stop_on_signals
from proxy.state import KEYSTORE

PROVIDER = "demo"
DEFAULT_PORTS = {"proxy": 8080, "admin": 8081, "demo": 8090}
HELLO = "Hello, TokenHub!"
API_KEY_ENV = "TOKENHUB_API_KEY"  # where every printed snippet reads the key from


@dataclass(frozen=True, slots=True)
class Ports:
    proxy: int
    admin: int
    demo: int


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `local` command."""
    p = sub.add_parser("local", help="run a local stack with a demo provider and print a working key")
    p.add_argument("--host", default="127.0.0.1", help="address every listener binds (default 127.0.0.1)")
    for name, port in DEFAULT_PORTS.items():
        p.add_argument(f"--{name}-port", type=int, default=None,
                       help=f"default {port}; if that is taken a free port is used (0: any free port)")
    p.add_argument("--state-dir", default=".tokenhub", help="where the generated config goes (default .tokenhub)")
    p.set_defaults(func=cmd_local)
    d = sub.add_parser("demo", help="run only the built-in demo provider (OpenAI-compatible echo)")
    d.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    d.add_argument("--port", type=int, default=DEFAULT_PORTS["demo"], help=f"default {DEFAULT_PORTS['demo']}")
    d.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo provider on its own (compose runs it as a service); stops on SIGTERM or SIGINT."""
    async def serve() -> None:
        runner, port = await start_demo(args.host, args.port)
        print(f"demo provider on http://{args.host}:{port}/v1 (models: {', '.join(DEMO_MODELS)})", flush=True)
        stop = asyncio.Event()
        with stop_on_signals(stop):
            await stop.wait()
        await runner.cleanup()

    uvloop.run(serve())
    return 0


def cmd_local(args: argparse.Namespace) -> int:
    ports, notes = pick_ports(args.host, {n: getattr(args, f"{n}_port") for n in DEFAULT_PORTS})
    environ = dict(os.environ)
    generated = not environ.get(DEFAULT_ADMIN_TOKEN_ENV)
    if generated:
        environ[DEFAULT_ADMIN_TOKEN_ENV] = secrets.token_urlsafe(24)
    path = write_config(Path(args.state_dir), args.host, ports)
    config = load_config(path, environ)
    setup_logging(config.logging)
    check_runtime(config)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    uvloop.run(run_local(config, ports, path, environ[DEFAULT_ADMIN_TOKEN_ENV], generated))
    return 0


def pick_ports(host: str, requested: Mapping[str, int | None],
               defaults: Mapping[str, int] = DEFAULT_PORTS) -> tuple[Ports, list[str]]:
    """A port given on the command line must be free (or 0: any); a default that is taken falls back
    to a free port, said in a note. Fails with StartupError naming the port otherwise."""
    chosen: dict[str, int] = {}
    notes: list[str] = []
    for name, port in requested.items():
        if port is None:
            port = defaults[name]
            if not _bindable(host, port):
                free = _free_port(host)
                notes.append(f"port {port} ({name}) is in use; using {free} instead")
                port = free
        elif port == 0:
            port = _free_port(host)
        elif not _bindable(host, port):
            raise StartupError(f"port {port} ({name}) on {host} is in use; choose another with --{name}-port")
        chosen[name] = port
    return Ports(**chosen), notes


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def write_config(state_dir: Path, host: str, ports: Ports) -> Path:
    """The local stack's config file (no secrets in it: the database and Redis come from the env)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = (state_dir / "local.toml").resolve()
    models = ", ".join(json.dumps(m) for m in DEMO_MODELS)
    path.write_text(f"""# Written by `tokenhub local` on every start. Postgres and Redis: TOKENHUB_POSTGRES__DSN and
# TOKENHUB_REDIS__URL (see deploy/dev.sh); the admin token: TOKENHUB_ADMIN_TOKEN.
[server]
listen = "{host}:{ports.proxy}"
shutdown_grace_seconds = 5.0

[admin]
listen = "{host}:{ports.admin}"

[logging]
format = "text"

[[providers]]
name = "{PROVIDER}"
base_url = "http://{host}:{ports.demo}/v1"
models = [{models}]
""")
    return path


async def run_local(config: Config, ports: Ports, path: Path, admin_token: str, generated: bool,
                    out: TextIO = sys.stdout) -> None:
    await _migrate(config)
    demo, _ = await start_demo(_host(config), ports.demo)
    try:
        instance = Instance(config)
        await instance.start()
        stop = asyncio.Event()
        with stop_on_signals(stop):
            try:
                store = instance.proxy_app[KEYSTORE]
                issued = await store.create(Actor("tokenhub local", uuid.uuid4().hex), name="local-demo",
                                            account="local")
                out.write(banner(config, ports, path, issued.secret, admin_token, generated))
                out.flush()
                await stop.wait()
            finally:
                await instance.drain()
    finally:
        await demo.cleanup()
    print("tokenhub local: stopped the proxy, the admin listener and the demo provider", file=sys.stderr)


def _host(config: Config) -> str:
    return config.server.listen.rpartition(":")[0]


async def _migrate(config: Config) -> None:
    try:
        pool = await create_pool(config)
        try:
            await migrate(pool)
        finally:
            await pool.close()
    except (TimeoutError, OSError) as exc:
        raise StartupError(f"cannot reach Postgres ({exc}); `bash deploy/dev.sh run` finds or starts one "
                           "and sets TOKENHUB_POSTGRES__DSN") from None


def banner(config: Config, ports: Ports, path: Path, key: str, admin_token: str, generated: bool) -> str:
    host = _host(config)
    proxy, admin = f"http://{host}:{ports.proxy}", f"http://{host}:{ports.admin}"
    model = f"{PROVIDER}/{DEMO_MODELS[0]}"
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": HELLO}]})
    # Every snippet reads the key from TOKENHUB_API_KEY: a key pasted into code ends up in a repository.
    curl = (f'curl -sS {proxy}/v1/chat/completions -H "Authorization: Bearer ${API_KEY_ENV}" '
            f"-H 'Content-Type: application/json' -d {shlex.quote(body)}")
    token_note = "generated for this run" if generated else "from TOKENHUB_ADMIN_TOKEN"
    models = ", ".join(f"{PROVIDER}/{m}" for m in DEMO_MODELS)
    return f"""
TokenHub is running. Ctrl-C stops everything it started.

  proxy          {proxy}/v1
  admin + page   {admin}/   (admin token {token_note})
  metrics        {admin}/metrics
  demo provider  http://{host}:{ports.demo}/v1   models: {models}
  config         {path}

A new API key (shown only now; make more with the CLI or the web page). Keep it in the environment,
never in code:

export {API_KEY_ENV}={key}

Then try it with curl:

{curl}

Or with the OpenAI Python SDK (.venv/bin/python, started from the same shell):

import os
from openai import OpenAI
client = OpenAI(base_url="{proxy}/v1", api_key=os.environ["{API_KEY_ENV}"])
reply = client.chat.completions.create(model="{model}", messages=[{{"role": "user", "content": "{HELLO}"}}])
print(reply.choices[0].message.content)

Admin token: {admin_token}
Keys from the command line:

  export TOKENHUB_ADMIN_URL={admin} TOKENHUB_ADMIN_TOKEN={admin_token}
  .venv/bin/tokenhub keys list

"""
