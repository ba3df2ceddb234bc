#!/usr/bin/env bash
# Make sure `haproxy` is on PATH: installed with apt-get when missing and running as root on
# Debian/Ubuntu; elsewhere it says how to install it and exits 1.
# Used by make test (the load-balancer tests in tests/deploy run the shipped deploy/haproxy config).
set -euo pipefail

command -v haproxy >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "haproxy not found; installing it with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq haproxy >&2
fi
command -v haproxy >/dev/null 2>&1 || {
  echo "haproxy is required; install it (Debian/Ubuntu: apt-get install haproxy; macOS: brew install haproxy)" >&2
  exit 1
}
