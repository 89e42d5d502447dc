"""Child processes of the benchmark: start them pinned to cores, wait for them, read their CPU and memory."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent  # the repository: `python -m bench.…` runs from here
_PORT_LINE = re.compile(r"^PORT (\d+)$")


class BenchError(Exception):
    """A benchmark step could not run; the message says which and why."""


@dataclass
class Proc:
    """A started child process, its log file, and the port it announced (0 if none)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0
    cores: tuple[int, ...] = field(default_factory=tuple)

    @property
    def pid(self) -> int:
        return self.popen.pid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(argv: Sequence[str], cores: Sequence[int]) -> list[str]:
    """`argv` run under `taskset` on the given cores (all of them when `cores` is empty)."""
    if not cores:
        return list(argv)
    return ["taskset", "-c", ",".join(map(str, cores)), *argv]


def start(name: str, argv: Sequence[str], *, cores: Sequence[int], log_dir: Path,
          env: Mapping[str, str] | None = None, announces_port: bool = False, timeout: float = 20.0) -> Proc:
    """Start `argv` pinned to `cores`, output to `log_dir/name.log`; optionally wait for `PORT n`."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        popen = subprocess.Popen(pinned(argv, cores), stdout=log_file, stderr=subprocess.STDOUT,
                                 env=dict(env) if env is not None else None, start_new_session=True, cwd=ROOT)
    proc = Proc(name, popen, log_path, cores=tuple(cores))
    if announces_port:
        proc.port = _wait_for_port_line(proc, timeout)
    return proc


def _wait_for_port_line(proc: Proc, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in proc.log_path.read_text(errors="replace").splitlines():
            match = _PORT_LINE.match(line.strip())
            if match:
                return int(match.group(1))
        if proc.popen.poll() is not None:
            break
        time.sleep(0.05)
    raise BenchError(f"{proc.name} did not start: {tail(proc.log_path)}")


def wait_http(url: str, *, proc: Proc, timeout: float = 30.0, status: int = 200) -> None:
    """Poll `url` until it answers `status`; fail early if the process died."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise BenchError(f"{proc.name} exited with {proc.popen.returncode}: {tail(proc.log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == status:
                    return
                last = f"status {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"status {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise BenchError(f"{proc.name} not ready at {url} ({last}): {tail(proc.log_path)}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(proc: Proc, timeout: float = 10.0) -> None:
    """SIGTERM the process group (the proxy drains), SIGKILL it after `timeout`."""
    if proc.popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.popen.wait(5)


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (workers of a multi-process server, a taskset child)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _read_stat(int(entry.name))
            if stat is not None:
                parents.setdefault(int(stat[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(parents.get(current, []))
    return out


def _read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/pid/stat after the command name: [state, ppid, ...]."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of `pid` and its descendants (all threads), in seconds."""
    total = 0
    for p in descendants(pid):
        stat = _read_stat(p)
        if stat is not None:
            total += int(stat[11]) + int(stat[12])  # utime, stime
    return total / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and its descendants."""
    total = 0
    for p in descendants(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def set_cores(pid: int, cores: Sequence[int]) -> None:
    """Move every thread of `pid` and its descendants to `cores`."""
    for p in descendants(pid):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task.name), set(cores))


@contextlib.contextmanager
def cpu_meter(pids: Mapping[str, int]) -> Iterator[dict[str, float]]:
    """Measure the CPU each named process tree used inside the block, as % of one core."""
    result: dict[str, float] = {}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    yield result
    wall = time.monotonic() - started
    for name, pid in pids.items():
        result[name] = 100.0 * (cpu_seconds(pid) - before[name]) / wall if wall > 0 else 0.0


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, as the kernel prints them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
