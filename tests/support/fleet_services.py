"""Throwaway Redis, Sentinel, Redis Cluster, PgBouncer and Postgres processes for the fleet tests.

Each runs from the Debian package's binary on a free port with its own data directory, and is stopped
(and its directory removed) when its context exits. Postgres and PgBouncer refuse to run as root: when
the tests run as root they run as the `postgres` user, in a directory that user owns.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.procs import free_port

PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=Path("/usr/lib/postgresql/none/bin"),
             key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"  # sbin: not on every PATH
START_TIMEOUT = 20.0


def missing(*binaries: str) -> list[str]:
    return [b for b in binaries if shutil.which(b) is None and not Path(b).exists()]


def _wait(check: object, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up within {timeout}s")
        time.sleep(0.05)


def redis_cli(port: int, *args: str, timeout: float = 10.0) -> str:
    done = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args], capture_output=True,
                          text=True, timeout=timeout, check=False)
    return done.stdout.strip()


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A directory the postgres user can use when we are root (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix=f"tokenhub-{prefix}-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _as_postgres(argv: Sequence[str]) -> list[str]:
    if os.geteuid() != 0:
        return list(argv)
    return ["runuser", "-u", "postgres", "--", *argv]


# -- Redis -------------------------------------------------------------------------------------------

@dataclass
class RedisProc:
    port: int
    directory: Path
    extra: Sequence[str] = ()
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisProc:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), "--logfile", str(self.directory / "redis.log"),
             *self.extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(lambda: self.proc.poll() is not None or redis_cli(self.port, "PING") == "PONG",  # type: ignore[union-attr]
                  f"redis-server on {self.port}")
            assert self.proc.poll() is None, (self.directory / "redis.log").read_text(errors="replace")
        except BaseException:
            self.kill()
            raise
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@contextlib.contextmanager
def redis_servers(base: Path, count: int, extra: Sequence[str] = ()) -> Iterator[list[RedisProc]]:
    servers: list[RedisProc] = []
    try:
        for i in range(count):
            d = base / f"redis-{i}"
            d.mkdir()
            # A cluster node also listens on port + 10000 (the cluster bus): keep both in range and free.
            port = free_port(also=10000) if "--cluster-enabled" in extra else free_port()
            servers.append(RedisProc(port, d, extra).start())
        yield servers
    finally:
        for s in servers:
            s.kill()


@dataclass
class SentinelSet:
    primary: RedisProc
    replica: RedisProc
    ports: list[int]
    master_name: str = "tokenhub"
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.ports]

    def master_port(self) -> int | None:
        for p in self.ports:
            out = redis_cli(p, "SENTINEL", "get-master-addr-by-name", self.master_name).split()
            if len(out) == 2 and out[1].isdigit():
                return int(out[1])
        return None

    def ready(self) -> bool:
        """Every sentinel knows the other two and the replica: a failover can be elected."""
        for p in self.ports:
            info = redis_cli(p, "SENTINEL", "master", self.master_name).split("\n")
            fields = dict(zip(info[::2], info[1::2], strict=False))
            if fields.get("num-other-sentinels") != "2" or fields.get("num-slaves") != "1":
                return False
        return True


@contextlib.contextmanager
def sentinel_set(base: Path) -> Iterator[SentinelSet]:
    """One primary, one replica, three sentinels (quorum 2) that fail over after 1 s of silence."""
    with redis_servers(base, 1) as (primary,):
        replica_dir = base / "replica"
        replica_dir.mkdir()
        replica = RedisProc(free_port(), replica_dir, ("--replicaof", "127.0.0.1", str(primary.port))).start()
        s = SentinelSet(primary, replica, [free_port() for _ in range(3)])
        try:
            for i, port in enumerate(s.ports):
                conf = base / f"sentinel-{i}.conf"
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\ndir {base}\nlogfile {base}/sentinel-{i}.log\n"
                    f"sentinel monitor {s.master_name} 127.0.0.1 {primary.port} 2\n"
                    f"sentinel down-after-milliseconds {s.master_name} 1000\n"
                    f"sentinel failover-timeout {s.master_name} 4000\n"
                    f"sentinel parallel-syncs {s.master_name} 1\n")
                s.procs.append(subprocess.Popen(["redis-sentinel", str(conf)], stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL))
            _wait(s.ready, "three sentinels that know each other and the replica", timeout=30)
            yield s
        finally:
            for proc in s.procs:
                proc.kill()
                proc.wait(10)
            replica.kill()


@contextlib.contextmanager
def redis_cluster(base: Path, masters: int = 3) -> Iterator[list[RedisProc]]:
    """`masters` nodes started with --cluster-enabled yes and joined with `redis-cli --cluster create`."""
    extra = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
    with redis_servers(base, masters, extra) as nodes:
        done = subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes],
                               "--cluster-replicas", "0", "--cluster-yes"],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        wait_cluster_ok(nodes)
        yield nodes


def wait_cluster_ok(nodes: Sequence[RedisProc]) -> None:
    _wait(lambda: all("cluster_state:ok" in redis_cli(n.port, "CLUSTER", "INFO") for n in nodes),
          "cluster_state:ok on every node", timeout=30)


# -- Postgres and PgBouncer ----------------------------------------------------------------------------

@dataclass
class PostgresProc:
    port: int
    data: Path

    def ctl(self, *args: str, check: bool = True) -> None:
        done = subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]),
                              capture_output=True, text=True, timeout=60, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"pg_ctl {' '.join(args)} failed:\n{done.stdout}{done.stderr}")

    def start(self) -> PostgresProc:
        opts = f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.ctl("-o", opts, "-l", str(self.data.parent / f"pg-{self.port}.log"), "-w", "start")
        return self

    def stop(self, mode: str = "immediate") -> None:
        self.ctl("-m", mode, "-w", "stop", check=False)

    def promote(self) -> None:
        self.ctl("-w", "promote")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def _pg(argv: Sequence[str]) -> None:
    done = subprocess.run(_as_postgres(argv), capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{argv[0]} failed:\n{done.stdout}{done.stderr}")


@contextlib.contextmanager
def postgres_pair(base: Path) -> Iterator[tuple[PostgresProc, PostgresProc]]:
    """A primary and a streaming replica of it (pg_basebackup -R), each on its own port."""
    primary = PostgresProc(free_port(), base / "primary")
    replica = PostgresProc(free_port(), base / "replica")
    _pg([str(PG_BIN / "initdb"), "-D", str(primary.data), "-A", "trust", "-U", "postgres", "--no-sync"])
    started: list[PostgresProc] = []
    try:
        started.append(primary.start())
        _pg([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
             "-D", str(replica.data), "-R", "-X", "stream", "--no-sync"])
        started.append(replica.start())
        yield primary, replica
    finally:
        for pg in started:
            pg.stop()


@dataclass
class Bouncer:
    port: int
    proc: subprocess.Popen[bytes]

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"


@contextlib.contextmanager
def pgbouncer(base: Path, database_url: str, pool_size: int = 20) -> Iterator[Bouncer]:
    """PgBouncer in transaction mode in front of the Postgres that `database_url` names."""
    u = urlsplit(database_url)
    user = u.username or "postgres"
    port = free_port()
    (base / "users.txt").write_text(f'"{user}" ""\n')
    ini = base / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = host={u.hostname or '127.0.0.1'} port={u.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {base}/users.txt\nadmin_users = {user}\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 500\n"
        f"logfile = {base}/pgbouncer.log\nignore_startup_parameters = extra_float_digits\n")
    if os.geteuid() == 0:
        for f in (ini, base / "users.txt"):
            shutil.chown(f, "postgres", "postgres")
    proc = subprocess.Popen(_as_postgres([PGBOUNCER, str(ini)]), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: _port_open(port) or proc.poll() is not None, f"pgbouncer on {port}")
        assert proc.poll() is None, (base / "pgbouncer.log").read_text(errors="replace")
        yield Bouncer(port, proc)
    finally:
        proc.terminate()
        proc.wait(10)


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0
