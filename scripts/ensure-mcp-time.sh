#!/usr/bin/env bash
# A real MCP server from PyPI for the tests (tests/orchestrator/test_mcp_tools.py): mcp-server-time
# (a stdio server) served over Streamable HTTP by mcp-proxy, both in their own venv
# .venv-mcp-time, because they pin the mcp SDK 1.x while umi-serve uses 2.x.
#   scripts/ensure-mcp-time.sh        # does nothing once installed
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-mcp-time
PACKAGES=(mcp-proxy==0.13.0 mcp-server-time==2026.10.10)
STAMP="$VENV/.installed-$(echo "${PACKAGES[*]}" | tr ' =' '_-')"
[ -f "$STAMP" ] && exit 0
echo "== installing a real MCP server for the tests: ${PACKAGES[*]} (in $VENV)"
rm -rf "$VENV"
"${PYTHON:-python3}" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PACKAGES[@]}"
touch "$STAMP"
