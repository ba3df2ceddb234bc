#!/usr/bin/env bash
# Make sure Debian's headless-capable `chromium` is at /usr/bin/chromium (the viewer's browser test,
# tests/orchestrator/test_ui_browser.py, drives it with Playwright): installed with apt-get when
# missing and running as root on Debian/Ubuntu; elsewhere it says how to install it and exits 1.
# Playwright's own browser download is not used. Called by `make test` (Makefile) before pytest.
set -euo pipefail

CHROMIUM="${UMI_CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium not found; installing it with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
fi
[ -x "$CHROMIUM" ] || {
  echo "chromium is required at $CHROMIUM for the viewer's browser test; install it (Debian/Ubuntu: apt-get install chromium)" >&2
  exit 1
}
