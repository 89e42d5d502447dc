"""The `tokenhub` command line: serve, migrate, keys, local."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

import asyncpg
import uvloop

from keystore import StorageUnavailable, migrate

from proxy.cli import keys as cli_keys
from proxy.config import Config, ConfigError
from proxy.config_loader import load_config
from proxy.log import setup_logging
from proxy.runtime import local
from proxy.runtime.resources import create_pool
from proxy.runtime.serve import StartupError, check_runtime, run_instance
from proxy.runtime.supervisor import Supervisor

log = logging.getLogger("tokenhub")


def _config(args: argparse.Namespace, *, provider_keys: bool = True) -> Config:
    path = args.config or os.environ.get("TOKENHUB_CONFIG")
    return load_config(Path(path) if path else None, os.environ, provider_keys=provider_keys)


def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args)
    setup_logging(config.logging)
    check_runtime(config)
    if args.worker is not None:  # started by the supervisor below
        uvloop.run(run_instance(config, worker=args.worker, reuse_port=True, parent_pid=os.getppid()))
        return 0
    workers = config.server.workers if args.workers is None else args.workers
    if workers < 1:
        raise StartupError("--workers must be at least 1")
    if workers > 1:
        return Supervisor(config, args.config or os.environ.get("TOKENHUB_CONFIG"), workers, os.environ).run()
    uvloop.run(run_instance(config))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    config = _config(args, provider_keys=False)  # migrate only talks to Postgres
    setup_logging(config.logging)

    async def run() -> list[str]:
        pool = await create_pool(config)
        try:
            return await migrate(pool)
        finally:
            await pool.close()

    applied = asyncio.run(run())
    print(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}; schema is current")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenhub", description="TokenHub authenticating LLM gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the proxy and admin listeners")
    serve.add_argument("--config", help="TOML config file (default: $TOKENHUB_CONFIG)")
    serve.add_argument("--workers", type=int, help="processes sharing the ports (default: [server] workers)")
    serve.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # internal: run as worker N
    serve.set_defaults(func=cmd_serve)
    migrate = sub.add_parser("migrate", help="apply database migrations (idempotent, safe concurrently)")
    migrate.add_argument("--config", help="TOML config file (default: $TOKENHUB_CONFIG)")
    migrate.set_defaults(func=cmd_migrate)
    cli_keys.register(sub)
    local.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"tokenhub: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"tokenhub: cannot start:\n{exc}", file=sys.stderr)
        return 2
    except (StorageUnavailable, asyncpg.PostgresError, OSError) as exc:
        # A database that does not exist, a refused connection, a role without rights: the operator's
        # setup, not a bug, so one line and no traceback. (Secrets are not in these messages.)
        print(f"tokenhub: {args.command}: storage unreachable or refused: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
