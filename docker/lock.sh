#!/usr/bin/env bash
# Regenerate the image's hashed lock files from their inputs:
#   docker/requirements.in        -> docker/requirements.lock        (runtime, pinned to requirements/ci.txt)
#   docker/build-requirements.in  -> docker/build-requirements.lock  (build backend for the kit's wheel)
#
# Usage (from anywhere in the repository):
#   docker/lock.sh              both locks, every package from PyPI (torch: PyPI's CUDA 13.0 build)
#   CUDA=cu126 docker/lock.sh   docker/requirements-cu126.lock only: the same versions, torch from PyTorch's
#                               cu126 index (an older CUDA, for hosts whose NVIDIA driver predates R580);
#                               the image is then built with
#                               --build-arg LOCK=docker/requirements-cu126.lock
#
# It resolves for the image's platform, linux x86_64 CPython 3.11, so it must run on one (any Linux
# x86_64 machine with python3.11, or inside the base image:
#   docker run --rm -v "$PWD":/src -w /src python:3.11-slim-bookworm docker/lock.sh ).
# It uses pip-tools (pip-compile --generate-hashes) at a pinned version, installed into a throwaway
# virtual environment, against PyPI only (with CUDA=..., also PyTorch's index for that CUDA): local wheel
# caches and pip config are ignored, so every hash is the hash of a file those indexes serve.
set -euo pipefail

# CUDA: empty, or PyTorch's name for a CUDA index (cu126, cu128, ...). Checked before anything is installed.
CUDA="${CUDA:-}"
if [ -n "$CUDA" ] && ! [[ "$CUDA" =~ ^cu[0-9]{3}$ ]]; then
    echo "lock.sh: CUDA=$CUDA is not a PyTorch CUDA index name such as cu126" \
         "(https://download.pytorch.org/whl/cu126)" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3.11}"
INDEX="${PIP_LOCK_INDEX:-https://pypi.org/simple}"
PIP_VERSION="26.3"
PIP_TOOLS_VERSION="7.6.2"

"$PY" - <<'PY'
import platform, sys
ok = sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"
if not ok:
    sys.exit(f"lock.sh: must run on linux x86_64 CPython 3.11 (the image's platform); this is "
             f"{sys.platform} {platform.machine()} Python {platform.python_version()}. Run it in the base "
             f"image: docker run --rm -v \"$PWD\":/src -w /src python:3.11-slim-bookworm docker/lock.sh")
PY

# PyPI only: no pip config file, no local find-links or extra indexes, no global constraints.
export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL PIP_CONSTRAINT PIP_NO_INDEX || true

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PY" -m venv "$TMP/venv"
"$TMP/venv/bin/python" -m pip install --quiet --index-url "$INDEX" \
    "pip==$PIP_VERSION" "pip-tools==$PIP_TOOLS_VERSION"

cd "$ROOT"
compile() {  # compile IN OUT [pip-compile options]
    local input="$1" output="$2"
    shift 2
    CUSTOM_COMPILE_COMMAND="${CUDA:+CUDA=$CUDA }docker/lock.sh" "$TMP/venv/bin/pip-compile" \
        --quiet --generate-hashes --allow-unsafe --strip-extras --newline=LF \
        --no-emit-find-links --index-url "$INDEX" \
        --cache-dir "$TMP/cache" --rebuild \
        "$@" --output-file "$output" "$input"
}
if [ -z "$CUDA" ]; then
    compile docker/requirements.in docker/requirements.lock --no-emit-index-url
    compile docker/build-requirements.in docker/build-requirements.lock --no-emit-index-url
    echo "lock.sh: wrote docker/requirements.lock and docker/build-requirements.lock"
    echo "lock.sh: now run  python -m pytest -q tests/test_environment.py  (lock and CI pins must agree)"
    exit 0
fi

# torch for another CUDA: PyTorch's index as an extra index. requirements/ci.txt pins torch==X without a
# local label, which PyTorch's X+cuNNN satisfies, and pip prefers X+cuNNN to PyPI's X (a local label sorts
# after the plain version). The index line is kept in the lock, so the image's `pip install -r` finds it.
TORCH_INDEX="https://download.pytorch.org/whl/$CUDA"
OUT="docker/requirements-$CUDA.lock"
if ! compile docker/requirements.in "$OUT" --emit-index-url --extra-index-url "$TORCH_INDEX"; then
    echo "lock.sh: could not lock torch from $TORCH_INDEX: PyTorch may publish no build of" \
         "requirements/ci.txt's torch for $CUDA (see $TORCH_INDEX/torch/), or the index is unreachable" >&2
    exit 1
fi
if ! grep -Eq "^torch==[^[:space:]]+\+$CUDA( |$)" "$OUT"; then
    echo "lock.sh: $OUT does not hold torch's +$CUDA build (PyPI's torch won the resolution); not usable" >&2
    exit 1
fi
echo "lock.sh: wrote $OUT; build with  docker build --build-arg LOCK=$OUT -f Dockerfile.cuda -t pulse-repro ."
