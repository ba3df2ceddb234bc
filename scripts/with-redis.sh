#!/usr/bin/env bash
# Run a command with a private Redis server on a free loopback port, then stop the server.
#   scripts/with-redis.sh CMD [ARGS...]
# The command sees UMI_TEST_REDIS_URL (redis://127.0.0.1:PORT/0) and UMI_REDIS_SERVER (the binary).
# Without redis-server on PATH: scripts/ensure-redis-server.sh installs it (apt-get, as root on
# Debian/Ubuntu) or says how to.
set -euo pipefail

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

"$(dirname "$0")/ensure-redis-server.sh"
dir=$(mktemp -d "${TMPDIR:-/tmp}/umi-redis.XXXXXX")
port=$(free_port)
redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no \
  --daemonize no --logfile "$dir/redis.log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

for _ in $(seq 1 100); do
  if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "with-redis: redis-server exited:" >&2; cat "$dir/redis.log" >&2; exit 1; fi
  sleep 0.1
done
redis-cli -p "$port" ping >/dev/null

export UMI_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
export UMI_REDIS_SERVER="$(command -v redis-server)"
echo "with-redis: redis-server $(redis-server --version | awk '{print $3}') on 127.0.0.1:$port (pid $pid)" >&2
set +e
"$@"
status=$?
exit "$status"
