"""The processes under test: the fake provider, the bare relay and `tokenhub serve` as shipped."""

from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
import sys
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import procs
from .procs import BenchError, Proc
from proxy.config import Config, ProviderConfig

MODEL = "fake/bench-model"
PROVIDER_KEY_ENV = "BENCH_PROVIDER_KEY"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where things run: the target core(s), the load generator's core, where logs go."""

    target_cores: tuple[int, ...]
    load_cores: tuple[int, ...]
    run_dir: Path


@dataclass(frozen=True, slots=True)
class Services:
    dsn: str
    redis_url: str
    namespace: str
    admin_token: str


@dataclass
class Proxy:
    proc: Proc
    port: int
    admin_port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


def python() -> str:
    return sys.executable


def tokenhub() -> str:
    return str(Path(sys.executable).with_name("tokenhub"))


def new_services(dsn: str, redis_url: str) -> Services:
    return Services(dsn, redis_url, f"bench-{secrets.token_hex(4)}", secrets.token_urlsafe(24))


def start_fake(layout: Layout) -> Proc:
    return procs.start("fake", [python(), "-m", "bench.fake", "--port", "0"], cores=layout.load_cores,
                       log_dir=layout.run_dir, announces_port=True)


def start_relay(layout: Layout, fake_port: int, keys: Sequence[str]) -> Proc:
    argv = [python(), "-m", "bench.relay", "--port", "0", "--upstream", f"http://127.0.0.1:{fake_port}"]
    argv += [a for k in keys for a in ("--key", k)]
    return procs.start("relay", argv, cores=layout.target_cores, log_dir=layout.run_dir, announces_port=True)


def write_config(path: Path, services: Services, fake_port: int, port: int, admin_port: int,
                 extra: str = "") -> None:
    """Shipped defaults plus this run's ports, database and namespace; the bench model priced (so
    metering computes USD and a USD budget applies) when the product knows prices; `extra` TOML last."""
    priced = config_has("providers", "prices")
    prices = '\nprices = { "bench-model" = { input = 2.5, output = 10.0 } }' if priced else ""
    path.write_text(f"""# written by bench/: shipped defaults plus this run's ports, database and namespace
[server]
listen = "127.0.0.1:{port}"

[admin]
listen = "127.0.0.1:{admin_port}"

[postgres]
dsn = "{services.dsn}"

[redis]
url = "{services.redis_url}"
namespace = "{services.namespace}"

[logging]
level = "INFO"
format = "json"

[[providers]]
name = "fake"
base_url = "http://127.0.0.1:{fake_port}/v1"
api_key_env = "{PROVIDER_KEY_ENV}"
models = ["bench-model"]{prices}
{extra}""")


def environment(services: Services, code: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_")}
    if code is not None:  # its `proxy` and `keystore` packages come before the installed (working tree) ones
        env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [env.get("PYTHONPATH")])])
    return env | {"TOKENHUB_ADMIN_TOKEN": services.admin_token, PROVIDER_KEY_ENV: "sk-bench-provider"}


def migrate(layout: Layout, services: Services, fake_port: int) -> None:
    """`tokenhub migrate`, as an operator would run it."""
    config = layout.run_dir / "migrate.toml"
    write_config(config, services, fake_port, procs.free_port(), procs.free_port())
    done = subprocess.run([tokenhub(), "migrate", "--config", str(config)], env=environment(services),
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise BenchError(f"tokenhub migrate failed: {done.stdout}{done.stderr}")


def config_has(section: str, name: str) -> bool:
    """Whether the product under test has setting `name` in `section` (features land while the bench
    is in use: a scenario that needs one says so and skips when it is missing)."""
    owner = ProviderConfig if section == "providers" else typing.get_type_hints(Config).get(section)
    return dataclasses.is_dataclass(owner) and name in {f.name for f in dataclasses.fields(owner)}


def start_proxy(name: str, layout: Layout, services: Services, fake_port: int, *, workers: int = 1,
                cores: Sequence[int] | None = None, extra: str = "", code: Path | None = None) -> Proxy:
    """`tokenhub serve --config …` as shipped (Postgres, Redis, metrics, JSON logs to its log file);
    `extra`: more TOML (e.g. `[metering]` settings); `code`: run the product from this copy of the
    source instead of the working tree (`python -m bench.ab`: before and after a change)."""
    port, admin_port = procs.free_port(), procs.free_port()
    config = layout.run_dir / f"{name}.toml"
    write_config(config, services, fake_port, port, admin_port, extra)
    argv = [tokenhub(), "serve", "--config", str(config)]
    if workers != 1:
        argv += ["--workers", str(workers)]
    proc = procs.start(name, argv, cores=layout.target_cores if cores is None else cores,
                       log_dir=layout.run_dir, env=environment(services, code))
    proxy = Proxy(proc, port, admin_port)
    # Each new connection may reach a different worker: ask until every one has had its chance.
    for _ in range(4 * workers):
        procs.wait_http(f"{proxy.base}/readyz", proc=proc, timeout=60)
    procs.wait_http(f"{proxy.admin}/metrics", proc=proc, timeout=30)
    return proxy
