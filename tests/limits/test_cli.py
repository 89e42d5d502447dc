"""`tokenhub keys create|update` limit flags, run as real subprocesses against a live `tokenhub serve`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from proxy.cli.limits import add_flags, body
from tests.support.procs import ADMIN_TOKEN, ServeProcess, run_migrate, serving, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
async def server(tmp_path: Path, database_url: str, redis_url: str, namespace: str) -> AsyncIterator[ServeProcess]:
    config = write_config(tmp_path, database_url=database_url, redis_url=redis_url, namespace=namespace)
    run_migrate(config)
    async with serving(config) as proc:
        yield proc


async def _keys(server: ServeProcess, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_")} | {
        "TOKENHUB_ADMIN_URL": server.admin_url(""), "TOKENHUB_ADMIN_TOKEN": ADMIN_TOKEN}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "proxy", "keys", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_limit_flags_set_merge_clear_and_print(server: ServeProcess) -> None:
    code, out = await _keys(server, "create", "--name", "cli", "--rpm", "60", "--usd-per-month", "2.5",
                            "--max-tokens", "512", "--json")
    created: dict[str, Any] = json.loads(out)
    assert code == 0 and created["limits"] == {
        "requests_per_minute": 60, "tokens_per_minute": None, "max_concurrent_requests": None,
        "tokens_per_month": None, "usd_per_month": 2.5, "max_tokens_per_request": 512}
    code, out = await _keys(server, "update", created["id"], "--tpm", "1000", "--clear-limit", "usd_per_month",
                            "--json")
    updated = json.loads(out)["limits"]
    assert (updated["requests_per_minute"], updated["tokens_per_minute"], updated["usd_per_month"]) == (60, 1000, None)
    code, out = await _keys(server, "show", created["id"])
    assert code == 0 and "limits        rpm 60, tpm 1000, max tokens 512" in out
    code, out = await _keys(server, "update", created["id"], "--rpm", "0")
    assert code == 1 and "requests_per_minute" in out  # the server's 400, printed


def test_clear_limit_takes_the_api_name_or_the_flag_name() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, clearing=True)
    args = parser.parse_args(["--clear-limit", "rpm", "--clear-limit", "tokens_per_month", "--clear-limit", "max-tokens"])
    assert body(args) == {"requests_per_minute": None, "tokens_per_month": None, "max_tokens_per_request": None}
    with pytest.raises(SystemExit):
        parser.parse_args(["--clear-limit", "rmp"])
