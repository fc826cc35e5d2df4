#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, when they are missing:
#   postgresql-15-cron  pg_cron, for the safe-copy tests (scheduled jobs never fire on a copy)
#   prometheus          promtool, to check and unit-test the chart's alerting rules
#   chromium            the real browser the status-page test drives with playwright-core
#   zsh, fish           the shells whose completion scripts the completion test loads and drives
# Needs root (CI and these machines run as root); elsewhere it only says what is missing.
set -euo pipefail

missing=()
pg_major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1)
if [ -n "$pg_major" ] && [ ! -f "/usr/lib/postgresql/$pg_major/lib/pg_cron.so" ]; then
  missing+=("postgresql-$pg_major-cron")
fi
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v zsh >/dev/null 2>&1 || missing+=(zsh)
command -v fish >/dev/null 2>&1 || missing+=(fish)

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system deps: missing ${missing[*]}; install them with your package manager (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "system deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Quiet when it works (debconf's notes included); the whole output when it does not.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "system deps: installing ${missing[*]} failed" >&2
  exit 1
fi
