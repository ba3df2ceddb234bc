#!/usr/bin/env bash
# A wheelhouse for building the cpu image without network (docs/compose.md): every wheel that
# `pip install '.[cpu]'` and the build of the project itself (pyproject.toml's build-system) need,
# fetched with this machine's own pip configuration (its indexes, find-links, proxy, certificates).
#   scripts/make-wheelhouse.sh [DIR]     DIR: default wheelhouse; it must lie in the build context
# then: WHEELHOUSE=DIR docker compose -p umi-serve up --build  (or --build-arg WHEELHOUSE=DIR)
#
# torch comes from TORCH_INDEX_URL only (default PyTorch's CPU index; plus pip's find-links) and
# must be a CPU build (a `+cpu` wheel): a CUDA torch or any nvidia-* wheel fails the script.
# PYTHON (default python3) must be a Python 3.11 on Linux x86_64, as in the image, so that the
# wheels fit it. pip applies the requirements' markers of PYTHON's own version: when the image's
# Python is another 3.11 patch release (Debian bookworm's is 3.11.2), give it as
# IMAGE_PYTHON_VERSION and the wheels only that version needs are added (e.g. redis's
# async-timeout, for python_full_version < "3.11.3"). Run again to update DIR; wheels already
# there are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-wheelhouse}
python=${PYTHON:-python3}
torch_index=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}

"$python" -c 'import platform, sys; sys.exit(None if sys.version_info[:2] == (3, 11) and platform.machine() == "x86_64" else f"make-wheelhouse: needs Python 3.11 on x86_64, as in the image (PYTHON={sys.executable}: {platform.python_version()} on {platform.machine()})")'
# torch's pin (the cpu extra) and the build requirements, from pyproject.toml
mapfile -t torch < <("$python" -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); print(*[r for r in p["project"]["optional-dependencies"]["cpu"] if r.startswith("torch")], sep="\n")')
mapfile -t build_requires < <("$python" -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")')

mkdir -p "$dir"
echo "make-wheelhouse: ${torch[*]} from $torch_index" >&2
"$python" -m pip download --quiet --no-deps --dest "$dir" --index-url "$torch_index" "${torch[@]}"
echo "make-wheelhouse: .[cpu] ${build_requires[*]}" >&2
"$python" -m pip wheel --quiet --wheel-dir "$dir" --find-links "$dir" '.[cpu]' "${build_requires[@]}"
rm -f "$dir"/umi_serve-*.whl  # the image installs the project from its sources

if [ -n "${IMAGE_PYTHON_VERSION:-}" ]; then
  report=$(mktemp)
  trap 'rm -f "$report"' EXIT
  "$python" -m pip install --quiet --dry-run --ignore-installed --no-index --find-links "$dir" --report "$report" '.[cpu]'
  # the requirements of the resolved set whose markers hold for the image's Python only
  mapfile -t only_image < <("$python" - "$report" "$IMAGE_PYTHON_VERSION" <<'PY'
import json
import sys

try:
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
except ImportError:  # pip's own copy
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging.requirements import Requirement

report, version = json.load(open(sys.argv[1], encoding="utf-8")), sys.argv[2]
here = default_environment()
image = {**here, "python_full_version": version, "python_version": ".".join(version.split(".")[:2])}
for item in report["install"]:
    extras = item.get("requested_extras") or [""]
    for spec in item["metadata"].get("requires_dist", []):
        req = Requirement(spec)
        if req.marker is None:
            continue
        holds = [any(req.marker.evaluate({**env, "extra": e}) for e in extras) for env in (image, here)]
        if holds == [True, False]:
            req.marker = None
            print(req)
PY
)
  if [ "${#only_image[@]}" -gt 0 ]; then
    echo "make-wheelhouse: for Python $IMAGE_PYTHON_VERSION also ${only_image[*]}" >&2
    "$python" -m pip wheel --quiet --wheel-dir "$dir" --find-links "$dir" "${only_image[@]}"
  fi
fi

shopt -s nullglob
fail() { echo "make-wheelhouse: $*" >&2; exit 1; }
wheels=("$dir"/torch-*.whl)
[ "${#wheels[@]}" -gt 0 ] || fail "no torch wheel in $dir"
for wheel in "${wheels[@]}"; do
  [[ "$wheel" == *+cpu-* ]] || fail "$wheel is not torch's CPU build (torch-*+cpu-*.whl)"
done
cuda=("$dir"/nvidia_*.whl "$dir"/nvidia-*.whl)
[ "${#cuda[@]}" -eq 0 ] || fail "CUDA wheels in $dir (a CUDA torch slipped in?): ${cuda[*]}"
count=("$dir"/*.whl)
echo "make-wheelhouse: $dir: ${#count[@]} wheels, $(du -sh "$dir" | cut -f1)" >&2
