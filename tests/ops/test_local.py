"""`tokenhub local`: the printed curl line and OpenAI SDK snippet work exactly as printed; Ctrl-C
(SIGINT) stops the proxy, the admin listener and the demo provider; port clashes fail or fall back."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.runtime.local import pick_ports
from tests.support.ops import refused

pytestmark = pytest.mark.slow


def local_env(database_url: str, redis_url: str, namespace: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_")}
    return env | {"TOKENHUB_POSTGRES__DSN": database_url, "TOKENHUB_REDIS__URL": redis_url,
                  "TOKENHUB_REDIS__NAMESPACE": namespace}


@pytest.fixture
def local_stack(tmp_path: Path, database_url: str, redis_url: str, namespace: str,
          migrated: None) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`tokenhub local` on free ports; yields the process and its banner once printed."""
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("wb") as fh, err.open("wb") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "proxy", "local", "--state-dir", str(tmp_path / "state"),
                                 "--proxy-port", "0", "--admin-port", "0", "--demo-port", "0"],
                                env=local_env(database_url, redis_url, namespace), stdout=fh, stderr=fe)
    deadline = time.monotonic() + 30
    while "keys list" not in out.read_text() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "keys list" in out.read_text(), err.read_text()
    yield proc, out.read_text()
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def banner_ports(banner: str) -> list[int]:
    return [int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)/", banner)[:3]]  # proxy, admin, demo


def exported(banner: str) -> str:
    """The printed `export TOKENHUB_API_KEY=…` line: the only place the key appears in a snippet."""
    (line,) = [line for line in banner.splitlines() if line.startswith("export TOKENHUB_API_KEY=")]
    return line


def test_printed_curl_line_works(local_stack: tuple[subprocess.Popen[bytes], str]) -> None:
    (curl,) = [line for line in local_stack[1].splitlines() if line.startswith("curl ")]
    assert "th-" not in curl  # the key comes from the environment
    done = subprocess.run(["bash", "-c", exported(local_stack[1]) + "\n" + curl + " -w '\\n%{http_code}'"],
                          check=False, capture_output=True, text=True, timeout=30)
    body, _, status = done.stdout.rpartition("\n")
    assert status == "200", done
    assert json.loads(body)["choices"][0]["message"]["content"] == "Hello, TokenHub!"


def test_printed_sdk_snippet_works(local_stack: tuple[subprocess.Popen[bytes], str]) -> None:
    snippet = re.search(r"^import os\nfrom openai import OpenAI\n.*?^print\(.*?\)$", local_stack[1], re.MULTILINE | re.DOTALL)
    assert snippet is not None and "th-" not in snippet.group(0)
    env = os.environ | {"TOKENHUB_API_KEY": exported(local_stack[1]).partition("=")[2]}
    done = subprocess.run([sys.executable, "-c", snippet.group(0)], check=False, capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 0 and done.stdout == "Hello, TokenHub!\n", done.stderr


def test_printed_admin_token_works(local_stack: tuple[subprocess.Popen[bytes], str]) -> None:
    token = re.search(r"^Admin token: (\S+)$", local_stack[1], re.MULTILINE).group(1)  # type: ignore[union-attr]
    admin = banner_ports(local_stack[1])[1]
    request = urllib.request.Request(f"http://127.0.0.1:{admin}/admin/keys?account=local",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as r:
        names = [k["name"] for k in json.load(r)["data"]]
    assert "local-demo" in names


def test_ctrl_c_stops_everything_it_started(local_stack: tuple[subprocess.Popen[bytes], str]) -> None:
    proc, banner = local_stack
    ports = banner_ports(banner)
    assert len(ports) == 3 and not any(refused(p) for p in ports)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert all(refused(p) for p in ports)


def test_explicit_port_in_use_fails_clearly(tmp_path: Path, database_url: str, redis_url: str,
                                            namespace: str) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "proxy", "local", "--state-dir", str(tmp_path),
                               "--proxy-port", str(port)], env=local_env(database_url, redis_url, namespace),
                              check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert f"port {port} (proxy) on 127.0.0.1 is in use; choose another with --proxy-port" in done.stderr


def test_default_port_in_use_falls_back() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        ports, notes = pick_ports("127.0.0.1", {"proxy": None, "admin": 0, "demo": 0},
                                  defaults={"proxy": taken, "admin": 0, "demo": 0})
    assert ports.proxy != taken and notes == [f"port {taken} (proxy) is in use; using {ports.proxy} instead"]
