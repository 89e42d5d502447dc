#!/usr/bin/env bash
# The README's two commands for a fresh machine:
#   bash deploy/dev.sh run    a local stack (Postgres, Redis, demo provider, proxy, admin) and a working key
#   bash deploy/dev.sh test   the gates (ruff, mypy --strict over proxy/ and keystore/), then the whole test
#                             suite against real Postgres and Redis; a violation fails the run
#   bash deploy/dev.sh lint   the gates alone
# Uses the machine's Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379) when they answer; otherwise
# starts throwaway ones under .tokenhub/ (installing Debian's packages if needed) and stops them on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=$ROOT/.tokenhub
VENV=$ROOT/.venv
mkdir -p "$STATE"
STARTED=()

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

cleanup() {
  local pid
  for pid in "${STARTED[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  if [ -f "$STATE/pg/postmaster.pid" ] && [ "${PG_STARTED:-0}" = 1 ]; then
    su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D '$STATE/pg' -m fast stop" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

apt_install() {
  say "installing Debian packages: $*"
  if [ "$(id -u)" != 0 ]; then echo "need root to install $* (or start them yourself)" >&2; exit 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_venv() {
  local stamp="$VENV/.tokenhub-stamp" want
  want=$(sha256sum pyproject.toml | cut -c1-16)
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv in .venv"
    python3 -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing tokenhub and its dependencies into .venv"
    # Quiet unless it fails: setuptools is chatty about editable installs.
    if ! { "$VENV/bin/pip" install -q --upgrade pip && "$VENV/bin/pip" install -q -e ".[test]"; } \
        > "$STATE/pip.log" 2>&1; then
      cat "$STATE/pip.log" >&2
      echo "installing the dependencies failed (log above, also in .tokenhub/pip.log)" >&2
      exit 1
    fi
    echo "$want" > "$stamp"
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_postgres() {
  if port_open 5432; then PG_URL_BASE="postgresql://postgres@127.0.0.1:5432"; return; fi
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$PG_BIN" ] || { apt_install postgresql; PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); }
  say "starting a throwaway Postgres on 127.0.0.1:55432 (.tokenhub/pg)"
  if [ ! -f "$STATE/pg/PG_VERSION" ]; then
    mkdir -p "$STATE/pg" && chown postgres "$STATE/pg"
    su postgres -s /bin/sh -c "$PG_BIN/initdb -D '$STATE/pg' -A trust -U postgres" >/dev/null
  fi
  chown -R postgres "$STATE/pg"
  su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D '$STATE/pg' -o '-p 55432 -k /tmp -c listen_addresses=127.0.0.1' -l '$STATE/pg.log' -w start" >/dev/null
  PG_STARTED=1
  PG_URL_BASE="postgresql://postgres@127.0.0.1:55432"
}

ensure_redis() {
  if port_open 6379; then REDIS_URL_BASE="redis://127.0.0.1:6379"; return; fi
  command -v redis-server >/dev/null || apt_install redis-server
  say "starting a throwaway Redis on 127.0.0.1:56379"
  redis-server --port 56379 --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
    --logfile "$STATE/redis.log" &
  STARTED+=($!)
  for _ in $(seq 50); do port_open 56379 && break; sleep 0.1; done
  REDIS_URL_BASE="redis://127.0.0.1:56379"
}

create_db() {  # create_db NAME: create the database if it does not exist yet
  "$VENV/bin/python" - "$PG_URL_BASE" "$1" <<'PY'
import asyncio, sys, asyncpg
async def main(base, name):
    conn = await asyncpg.connect(base + "/postgres", timeout=10)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()
asyncio.run(main(*sys.argv[1:]))
PY
}

gates() {  # ruff and mypy --strict over the shipped packages; any violation ends the run (set -e)
  say "gates: ruff check proxy keystore"
  "$VENV/bin/ruff" check --quiet proxy keystore
  say "gates: mypy --strict proxy keystore"
  "$VENV/bin/mypy" --strict proxy keystore
}

focused() {  # true when the pytest arguments name test files or folders (an edit loop, not the full run)
  local arg
  for arg in "$@"; do [ -e "${arg%%::*}" ] && return 0; done
  return 1
}

ensure_fleet_tools() {  # tests/fleet start their own Sentinel, PgBouncer and Postgres pair from these
  local want=()
  command -v redis-sentinel >/dev/null || want+=(redis-sentinel)
  command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || want+=(pgbouncer)
  ls /usr/lib/postgresql/*/bin/pg_basebackup >/dev/null 2>&1 || want+=(postgresql)
  command -v psql >/dev/null || want+=(postgresql-client)
  [ ${#want[@]} -eq 0 ] && return
  # Not fatal: without them the fleet tests skip and say what is missing.
  ( apt_install "${want[@]}" ) || say "could not install ${want[*]}: the fleet tests that need them skip"
}

cmd_test() {
  ensure_venv
  # The full run (what CI calls) is gated; a focused run on named tests skips the gates so one
  # unfinished module elsewhere does not block it. `dev.sh lint` runs them alone.
  if focused "$@"; then say "gates skipped: focused run (bash deploy/dev.sh lint runs them)"; else gates; fi
  ensure_postgres
  ensure_redis
  local db=${TOKENHUB_TEST_DB:-tokenhub_test}  # parallel runs each use their own database
  create_db "$db"
  [ -x deploy/ensure-chromium.sh ] && bash deploy/ensure-chromium.sh
  ensure_fleet_tools
  export TEST_DATABASE_URL="$PG_URL_BASE/$db"
  export TEST_REDIS_URL="$REDIS_URL_BASE/13"
  say "running the tests (Postgres $TEST_DATABASE_URL, Redis $TEST_REDIS_URL)"
  "$VENV/bin/python" -m pytest "$@"
}

cmd_run() {
  ensure_venv
  ensure_postgres
  ensure_redis
  create_db tokenhub_local
  export TOKENHUB_POSTGRES__DSN="$PG_URL_BASE/tokenhub_local"
  export TOKENHUB_REDIS__URL="$REDIS_URL_BASE/12"
  # Not exec'd (the EXIT trap stops a throwaway Postgres), so a SIGTERM or SIGHUP sent to this script
  # alone is passed on: `tokenhub local` stops what it started, then this script stops its own.
  "$VENV/bin/tokenhub" local "$@" &
  LOCAL_PID=$!
  trap 'kill -TERM "$LOCAL_PID" 2>/dev/null || true' TERM HUP INT
  local rc=0
  while kill -0 "$LOCAL_PID" 2>/dev/null; do wait "$LOCAL_PID" || rc=$?; done
  return "$rc"
}

case "${1:-}" in
  test) shift; cmd_test "$@" ;;
  lint) shift; ensure_venv; gates ;;
  run) shift; cmd_run "$@" ;;
  *) echo "usage: bash deploy/dev.sh run|test|lint [args]" >&2; exit 2 ;;
esac
