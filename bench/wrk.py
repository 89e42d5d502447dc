"""wrk as the load generator: a Lua script per scenario, run pinned to its own core, results as JSON."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .procs import BenchError, pinned

# `done` prints one JSON line; latencies are in microseconds. Non-2xx answers are counted by wrk
# itself (errors.status); `statuses` below counts them by code so a scenario can say what it saw.
_LUA = r"""
local keys = {%(keys)s}
local body = %(body)s
local delay_ms = %(delay_ms)d
local counter = 0
local threads = {}
statuses = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function request()
  counter = counter + 1
  local headers = {["Content-Type"] = "application/json"}
  if #keys > 0 then
    headers["Authorization"] = "Bearer " .. keys[(counter %% #keys) + 1]
  end
  return wrk.format("%(method)s", nil, headers, body)
end

%(response)s
if delay_ms > 0 then
  function delay() return delay_ms end
end

function done(summary, latency, requests)
  local parts = {}
  for _, p in ipairs({50, 90, 99, 99.9}) do
    parts[#parts + 1] = string.format('"p%%s": %%d', tostring(p), latency:percentile(p))
  end
  local codes = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses") or {}) do
      codes[#codes + 1] = string.format('"%%d": %%d', code, n)
    end
  end
  parts[#parts + 1] = '"statuses": {' .. table.concat(codes, ", ") .. '}'
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, "mean": %%f, "max": %%d, ' ..
    '"err_connect": %%d, "err_read": %%d, "err_write": %%d, "err_status": %%d, "err_timeout": %%d, %%s}\n',
    summary.requests, summary.duration, summary.bytes, latency.mean, latency.max,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout, table.concat(parts, ", ")))
end
"""
# Only when asked: defining `response` makes wrk parse every answer, which costs it CPU.
_COUNT_STATUSES = """
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
"""
_JSON_LINE = re.compile(r"^WRKJSON (\{.*\})$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    errors: int  # socket errors plus non-2xx/3xx answers
    statuses: dict[int, int]  # answers by status code (only when the script counted them)
    wrk_cpu_pct: float  # the load generator's own CPU, % of one core


def lua_string(value: str) -> str:
    """A Lua long-bracket string literal holding `value` verbatim."""
    level = 0
    while f"]{'=' * level}]" in value:
        level += 1
    return f"[{'=' * level}[{value}]{'=' * level}]"


def render_script(*, body: str, keys: Sequence[str], method: str = "POST", delay_ms: int = 0,
                  count_statuses: bool = False) -> str:
    return _LUA % {
        "response": _COUNT_STATUSES if count_statuses else "",
        "keys": ", ".join(lua_string(k) for k in keys),
        "body": lua_string(body) if body else "nil",
        "method": method,
        "delay_ms": delay_ms,
    }


def parse_output(text: str, wrk_cpu_pct: float = 0.0) -> WrkResult:
    match = _JSON_LINE.search(text)
    if match is None:
        raise BenchError(f"wrk printed no result:\n{text[-2000:]}")
    raw = json.loads(match.group(1))
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    return WrkResult(
        requests=raw["requests"], rps=raw["requests"] / seconds if seconds else 0.0,
        p50_ms=raw["p50"] / 1000, p90_ms=raw["p90"] / 1000, p99_ms=raw["p99"] / 1000,
        p999_ms=raw["p99.9"] / 1000, mean_ms=raw["mean"] / 1000, errors=errors, wrk_cpu_pct=wrk_cpu_pct,
        statuses={int(k): int(v) for k, v in raw.get("statuses", {}).items()},
    )


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchError("wrk is not installed: `bash bench/run.sh` installs it (or apt-get install -y wrk)")
    return path


def start_wrk(url: str, script: str, *, connections: int, seconds: float, cores: Sequence[int],
              threads: int = 1) -> tuple[subprocess.Popen[bytes], Path]:
    """Start wrk in the background (for concurrent runs); finish with `finish_wrk`."""
    fd, name = tempfile.mkstemp(prefix="bench-", suffix=".lua")
    with os.fdopen(fd, "w") as fh:
        fh.write(script)
    duration = f"-d{max(1, round(seconds))}s"
    argv = [wrk_binary(), f"-t{threads}", f"-c{connections}", duration, "--timeout", "10s",
            "-s", name, url]
    popen = subprocess.Popen(pinned(argv, cores), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return popen, Path(name)


def finish_wrk(popen: subprocess.Popen[bytes], script_path: Path, seconds: float) -> WrkResult:
    """Wait for wrk, with its own CPU use taken from the kernel's accounting of the child."""
    assert popen.stdout is not None
    output = popen.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(popen.pid, 0)
    popen.returncode = os.waitstatus_to_exitcode(status)
    script_path.unlink(missing_ok=True)
    if popen.returncode != 0:
        raise BenchError(f"wrk failed ({popen.returncode}):\n{output[-2000:]}")
    cpu = 100.0 * (usage.ru_utime + usage.ru_stime) / seconds
    return parse_output(output, cpu)


def run_wrk(url: str, script: str, *, connections: int, seconds: float, cores: Sequence[int]) -> WrkResult:
    popen, path = start_wrk(url, script, connections=connections, seconds=seconds, cores=cores)
    return finish_wrk(popen, path, max(1, round(seconds)))
