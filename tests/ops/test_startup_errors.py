"""A storage setup mistake at start (no such database, nothing listening) is one line, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str, dsn: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"TOKENHUB_ADMIN_TOKEN": "t" * 24, "TOKENHUB_POSTGRES__DSN": dsn,
                        "TOKENHUB_SERVER__LISTEN": f"127.0.0.1:{_free_port()}",
                        "TOKENHUB_ADMIN__LISTEN": f"127.0.0.1:{_free_port()}"}
    env.pop("TOKENHUB_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "proxy", *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False, stdin=subprocess.DEVNULL)


def _other_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.mark.parametrize("command", [["migrate"], ["serve"]])
def test_a_missing_database_is_one_line(database_url: str, command: list[str]) -> None:
    done = _run(*command, dsn=_other_database(database_url, "tokenhub_no_such_db"))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert 'database "tokenhub_no_such_db" does not exist' in done.stderr.strip().splitlines()[-1]


def test_nothing_listening_is_one_line() -> None:
    done = _run("migrate", dsn="postgresql://postgres@127.0.0.1:9/tokenhub")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("tokenhub: migrate: storage unreachable")
