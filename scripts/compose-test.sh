#!/usr/bin/env bash
# `make compose-test` (docs/compose.md; CI runs it after `make test`): docker-compose.yml's CPU
# stack for real, on a Docker engine of its own and without any registry, checked from the host
# by tests/test_compose_stack.py. Prints the time of each part.
#
#  1. Debian's docker.io, docker-compose and debootstrap packages, installed with apt-get when
#     missing (as root on Debian/Ubuntu; the install starts no service).
#  2. A private dockerd: its own data root, exec root, pidfile, unix socket (DOCKER_HOST) and
#     containerd namespace, in a directory of its own under $UMI_CACHE_DIR; no default bridge,
#     and no iptables or forwarding changes on the host, so the containers reach each other and
#     the ports they publish on the host's loopback, nothing else (the image build runs with no
#     network at all).
#     At exit, whatever happened, its containers are removed, it is stopped and its directory
#     deleted.
#  3. The base image from Debian packages (no registry): debootstrap --variant=minbase bookworm
#     with python3, python3-venv and redis-server, then `docker import`. It is the cpu image's
#     PYTHON_IMAGE and the REDIS_IMAGE (Debian's Redis 7). Its tarball is cached in
#     $UMI_CACHE_DIR (default /var/cache/umi-serve) under a key of its package list.
#  4. The wheelhouse (scripts/make-wheelhouse.sh, this machine's pip configuration), cached there
#     under a key of pyproject.toml, that script and the base image's Python; linked into the
#     build context as .compose-test/wheelhouse (removed at exit).
#  5. pytest tests/test_compose_stack.py with .venv's Python (`make setup`): `up -d --build`, the
#     checks, `down -v`.
#
# Not root, or no apt-get where a package is missing: it says so and exits 0 (skipped), except
# in CI (CI=true), where it exits 1. The documented ports (8000, 8101-8103, 8300, 6390) must be free.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
PACKAGES=python3,python3-venv,redis-server
CACHE=${UMI_CACHE_DIR:-/var/cache/umi-serve}
PYTHON=.venv/bin/python
started=$SECONDS
say() { echo "compose-test [$((SECONDS - started)) s]: $*" >&2; }
skip() {
  if [ "${CI:-}" = true ]; then say "cannot run in CI: $*"; exit 1; fi
  say "SKIPPED: $*"; exit 0
}

# ------------------------------------------------------------------------------- 1. packages
[ "$(id -u)" = 0 ] || skip "needs root (a private dockerd, debootstrap)"
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || skip "needs ${missing[*]} and there is no apt-get to install them"
  say "installing ${missing[*]} with apt-get"
  # no service starts on install (Debian's policy-rc.d protocol; one of our own only if none)
  policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  [ -z "$policy" ] || rm -f "$policy"
fi
[ -x "$PYTHON" ] || { say "no $PYTHON: run \`make setup\` first"; exit 1; }

# ------------------------------------------------------------------------------- 2. dockerd
mkdir -p "$CACHE"
run=$(mktemp -d "$CACHE/run.XXXXXX")  # on disk: the engine's data root holds a few GB
dockerd_pid=
cleanup() {
  local status=$?
  if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
    # everything on this engine is ours
    docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1 || true
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
    say "stopped the private dockerd"
  fi
  # nothing is deleted through a mount that outlived the engine
  awk '{print $2}' /proc/mounts | grep "^$run/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$run" .compose-test
  say "removed its data root; $([ "$status" = 0 ] && echo OK || echo "FAILED (exit $status)") in $((SECONDS - started)) s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export DOCKER_HOST="unix://$run/docker.sock"
dockerd --data-root "$run/data" --exec-root "$run/exec" --pidfile "$run/dockerd.pid" --host "$DOCKER_HOST" \
  --containerd-namespace umi-compose-test --containerd-plugins-namespace umi-compose-test-plugins \
  --bridge none --iptables=false --ip-forward=false >"$run/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 120); do
  docker version >/dev/null 2>&1 && break
  kill -0 "$dockerd_pid" 2>/dev/null || { say "dockerd exited:"; tail -20 "$run/dockerd.log" >&2; exit 1; }
  sleep 0.5
done
docker version --format 'dockerd {{.Server.Version}} (private: '"$run"')' >&2

# ------------------------------------------------------------------------------- 3. base image
debian_mirror() {
  # the first URI of this machine's APT sources for the suite (one-line and deb822 formats)
  local uri
  uri=$({ awk -v suite="$SUITE" '$1 == "deb" { sub(/\[[^]]*\] */, ""); if ($3 == suite) { print $2; exit } }' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
          awk -v suite="$SUITE" 'BEGIN { RS = ""; FS = "\n" } {
              uri = ""; ok = 0
              for (i = 1; i <= NF; i++) {
                if ($i ~ /^URIs:/) { split($i, w, " "); uri = w[2] }
                if ($i ~ /^Suites:/ && (" " $i " ") ~ (" " suite " ")) ok = 1
              }
              if (ok && uri != "") { print uri; exit } }' /etc/apt/sources.list.d/*.sources 2>/dev/null; } | head -1)
  echo "${uri:-http://deb.debian.org/debian}"
}
key=$(printf '%s\n' "$SUITE" minbase "$PACKAGES" "$(dpkg --print-architecture)" | sha256sum | cut -c1-16)
base_tar=$CACHE/base-$SUITE-$key.tar
base_image=umi-serve-test/debian-$SUITE:$key
if [ ! -s "$base_tar" ]; then
  mirror=$(debian_mirror)
  say "making the base image: debootstrap --variant=minbase --include=$PACKAGES $SUITE from $mirror"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$run/rootfs" "$mirror" >"$run/debootstrap.log" 2>&1 \
    || { tail -20 "$run/debootstrap.log" >&2; exit 1; }
  rm -rf "$run/rootfs/var/cache/apt/"* "$run/rootfs/var/lib/apt/lists/"*
  tar --numeric-owner -C "$run/rootfs" -cf "$base_tar.partial" .
  rm -rf --one-file-system "$run/rootfs"
  rm -f "$CACHE"/base-*.tar  # earlier package lists
  mv "$base_tar.partial" "$base_tar"
fi
docker import "$base_tar" "$base_image" >/dev/null
image_python=$(docker run --rm --network none "$base_image" python3 -c 'import platform; print(platform.python_version())')
say "base image $base_image (Python $image_python, Redis from Debian) from $base_tar"

# ------------------------------------------------------------------------------- 4. wheelhouse
key=$({ cat pyproject.toml scripts/make-wheelhouse.sh; echo "$image_python"; } | sha256sum | cut -c1-16)
wheels=$CACHE/wheelhouse-$key
if [ ! -d "$wheels" ]; then
  say "making the wheelhouse (scripts/make-wheelhouse.sh) for Python $image_python"
  rm -rf "$wheels.partial"
  IMAGE_PYTHON_VERSION=$image_python PYTHON=$PYTHON scripts/make-wheelhouse.sh "$wheels.partial"
  for old in "$CACHE"/wheelhouse-*; do [ "$old" = "$wheels.partial" ] || rm -rf "$old"; done  # earlier keys
  mv "$wheels.partial" "$wheels"
fi
rm -rf .compose-test && mkdir -p .compose-test
cp -al "$wheels" .compose-test/wheelhouse 2>/dev/null || cp -a "$wheels" .compose-test/wheelhouse
say "wheelhouse $wheels: $(ls "$wheels" | wc -l) wheels"

# ------------------------------------------------------------------------------- 5. the stack
export UMI_COMPOSE_TEST_BASE_IMAGE=$base_image UMI_COMPOSE_TEST_WHEELHOUSE=.compose-test/wheelhouse
export UMI_COMPOSE_TEST_CLI=${UMI_COMPOSE_TEST_CLI:-docker-compose}
say "$($UMI_COMPOSE_TEST_CLI version --short 2>/dev/null || true): up --build, checks, down (tests/test_compose_stack.py)"
"$PYTHON" -m pytest tests/test_compose_stack.py -p no:cacheprovider -v --durations=5
