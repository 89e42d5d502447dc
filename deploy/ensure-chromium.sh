#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the API Keys page's browser tests
# (tests/page/). Called by `deploy/dev.sh test`. Idempotent and quiet: does nothing when Chromium is
# already there; otherwise installs the `chromium` package with apt-get (needs root, no prompt).
# The tests drive this system Chromium through Playwright; `playwright install` is never used.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "ensure-chromium: $CHROMIUM is missing and installing it needs root (apt-get install chromium)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "ensure-chromium: $CHROMIUM is missing and apt-get is not available; install Chromium yourself" >&2
  exit 1
fi

printf '\033[1m==> %s\033[0m\n' "installing Debian's chromium for the browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# apt-get and debconf chatter goes to a file, shown only if something fails.
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; } </dev/null >"$out" 2>&1; then
  cat "$out" >&2
  echo "ensure-chromium: apt-get could not install chromium" >&2
  exit 1
fi
[ -x "$CHROMIUM" ] || { echo "ensure-chromium: installed chromium but $CHROMIUM is still missing" >&2; exit 1; }
