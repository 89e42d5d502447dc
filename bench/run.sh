#!/usr/bin/env bash
# The benchmark in one command:  bash bench/run.sh [--quick] [more `python -m bench` options]
# Installs what the bench needs and the product does not (wrk from Debian, py-spy from PyPI), checks
# that Postgres and Redis answer, then runs every scenario. A full run records its tables in
# bench/README.md; --quick (< 2 minutes) only prints them.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
PG=${BENCH_PG:-postgresql://postgres@127.0.0.1:5432}
REDIS=${BENCH_REDIS:-redis://127.0.0.1:6379/11}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "no .venv here: create it first (bash deploy/dev.sh test does, or python3 -m venv .venv && .venv/bin/pip install -e .)" >&2
  exit 1
fi
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" != 0 ]; then echo "wrk is missing and installing it needs root: apt-get install -y wrk" >&2; exit 1; fi
  say "installing wrk (Debian package)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if [ ! -x "$VENV/bin/py-spy" ]; then
  say "installing the bench-only Python tools (bench/requirements.txt)"
  "$VENV/bin/pip" install -q -r bench/requirements.txt
fi
if ! "$VENV/bin/tokenhub" --help >/dev/null 2>&1; then
  say "installing tokenhub into .venv"
  "$VENV/bin/pip" install -q -e .
fi

hostport() { local rest=${1#*://}; rest=${rest#*@}; rest=${rest%%/*}; echo "${rest%%:*} ${rest##*:}"; }
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
read -r pg_host pg_port <<<"$(hostport "$PG")"
read -r redis_host redis_port <<<"$(hostport "$REDIS")"
port_open "$pg_host" "$pg_port" || { echo "Postgres does not answer at $PG (set BENCH_PG)" >&2; exit 1; }
port_open "$redis_host" "$redis_port" || { echo "Redis does not answer at $REDIS (set BENCH_REDIS)" >&2; exit 1; }

export BENCH_COMMAND="bash bench/run.sh${*:+ $*}"
exec "$VENV/bin/python" -m bench --pg "$PG" --redis "$REDIS" "$@"
