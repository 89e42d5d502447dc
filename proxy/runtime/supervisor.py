"""`tokenhub serve --workers N`: a parent process that runs N workers sharing the listen ports.

Each worker is a fresh `python -m proxy serve --worker I` process (its own event loop, caches, Redis
subscription and keystore instance id), bound to both ports with SO_REUSEPORT, so the kernel spreads
connections over them and a revocation, published to every subscriber, reaches each one.

The parent forwards SIGTERM/SIGINT to the workers and exits once they have drained (killing any that
outlive the grace period by a margin). A worker that dies on its own is logged with its exit status
and restarted; a worker that keeps dying right after it starts makes the whole server stop instead of
looping. Metrics: the parent gives the workers a shared PROMETHEUS_MULTIPROC_DIR (see metrics.py).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from prometheus_client.multiprocess import mark_process_dead

from proxy.config import Config, split_listen
from proxy.runtime.metrics import MULTIPROC_ENV
from proxy.runtime.serve import StartupError

log = logging.getLogger(__name__)
_TICK = 0.1
_KILL_MARGIN_SECONDS = 10.0  # after the grace period, a worker still running is killed
_MIN_UPTIME_SECONDS = 10.0  # a worker that dies sooner than this after starting counts as a failed start
_MAX_FAILED_STARTS = 5


@dataclass(slots=True)
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)


def check_ports_free(config: Config) -> None:
    """Fail clearly before starting workers: with SO_REUSEPORT a port held by another process that
    also set it would be shared silently, so probe each one with a plain bind first."""
    for what, listen in (("proxy", config.server.listen), ("admin", config.admin.listen)):
        host, port = split_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                hint = " (is another tokenhub running?)" if exc.errno == errno.EADDRINUSE else ""
                raise StartupError(f"cannot listen on {listen} ({what}): {exc.strerror}{hint}") from None


class Supervisor:
    def __init__(self, config: Config, config_path: str | None, workers: int,
                 environ: Mapping[str, str]) -> None:
        self._config, self._path, self._count = config, config_path, workers
        self._env = dict(environ)
        self._workers: dict[int, _Worker] = {}
        self._failed_starts = 0
        self._stop: int | None = None
        self._own_dir: str | None = None

    def run(self) -> int:
        """Start the workers, keep them running until a signal, then stop them. Returns the exit code."""
        check_ports_free(self._config)
        self._prepare_metrics_dir()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self._count):
                self._spawn(index)
            log.info("supervisor (pid %d) started %d workers on %s", os.getpid(), self._count,
                     self._config.server.listen)
            healthy = self._watch()
            return self._shutdown() if healthy else max(self._shutdown(), 1)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._own_dir is not None:
                shutil.rmtree(self._own_dir, ignore_errors=True)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop = self._stop or signum

    def _prepare_metrics_dir(self) -> None:
        path = self._env.get(MULTIPROC_ENV)
        if path is None:
            path = self._own_dir = tempfile.mkdtemp(prefix="tokenhub-metrics-")
            self._env[MULTIPROC_ENV] = path
        for stale in Path(path).glob("*.db"):  # counts of a previous run must not leak into this one
            stale.unlink()

    def _spawn(self, index: int) -> None:
        argv = [sys.executable, "-m", "proxy", "serve", "--worker", str(index)]
        if self._path:
            argv += ["--config", self._path]
        proc = subprocess.Popen(argv, env=self._env)
        self._workers[index] = _Worker(index, proc)
        log.info("worker %d started (pid %d)", index, proc.pid)

    def _watch(self) -> bool:
        """Until a signal: reap workers that died, restart them. False if they keep failing to start."""
        while self._stop is None:
            for worker in list(self._workers.values()):
                code = worker.proc.poll()
                if code is None:
                    continue
                mark_process_dead(worker.proc.pid, self._env[MULTIPROC_ENV])  # type: ignore[no-untyped-call]
                up = time.monotonic() - worker.started
                log.error("worker %d (pid %d) exited unexpectedly with %s after %.1fs", worker.index,
                          worker.proc.pid, _describe(code), up)
                self._failed_starts = self._failed_starts + 1 if up < _MIN_UPTIME_SECONDS else 0
                if self._failed_starts >= _MAX_FAILED_STARTS:
                    log.error("workers keep dying right after they start; stopping")
                    return False
                self._spawn(worker.index)
            time.sleep(_TICK)
        return True

    def _shutdown(self) -> int:
        sig = self._stop or signal.SIGTERM
        log.info("supervisor stopping %d workers (%s)", len(self._workers), signal.Signals(sig).name)
        for worker in self._workers.values():
            if worker.proc.poll() is None:
                worker.proc.send_signal(sig)
        deadline = time.monotonic() + self._config.server.shutdown_grace_seconds + _KILL_MARGIN_SECONDS
        while any(w.proc.poll() is None for w in self._workers.values()) and time.monotonic() < deadline:
            time.sleep(_TICK)
        codes = []
        for worker in self._workers.values():
            if worker.proc.poll() is None:
                log.error("worker %d (pid %d) did not stop in time; killing it", worker.index, worker.proc.pid)
                worker.proc.kill()
            codes.append(worker.proc.wait())
        log.info("supervisor stopped; worker exit statuses: %s", ", ".join(_describe(c) for c in codes))
        return 0 if all(c == 0 for c in codes) else 1


def _describe(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
