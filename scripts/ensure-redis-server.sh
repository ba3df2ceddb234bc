#!/usr/bin/env bash
# Make sure `redis-server` is on PATH: installed with apt-get when missing and running as root on
# Debian/Ubuntu; elsewhere it says how to install it and exits 1.
# Used by scripts/with-redis.sh (make test, make bench) and by make demo / make up.
set -euo pipefail

command -v redis-server >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server not found; installing it with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq redis-server >&2
fi
command -v redis-server >/dev/null 2>&1 || {
  echo "redis-server is required; install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)" >&2
  exit 1
}
