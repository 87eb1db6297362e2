#!/usr/bin/env bash
# Regenerate the image's hashed lock files from their inputs:
#   docker/requirements.in        -> docker/requirements.lock        (runtime, pinned to requirements/ci.txt)
#   docker/build-requirements.in  -> docker/build-requirements.lock  (build backend for the kit's wheel)
#
# Usage (from anywhere in the repository):   docker/lock.sh
#
# It resolves for the image's platform, linux x86_64 CPython 3.11, so it must run on one (any Linux
# x86_64 machine with python3.11, or inside the base image:
#   docker run --rm -v "$PWD":/src -w /src python:3.11-slim-bookworm docker/lock.sh ).
# It uses pip-tools (pip-compile --generate-hashes) at a pinned version, installed into a throwaway
# virtual environment, against PyPI only: local wheel caches and pip config are ignored, so every
# hash is the hash of the file PyPI serves.
set -euo pipefail

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
compile() {
    CUSTOM_COMPILE_COMMAND="docker/lock.sh" "$TMP/venv/bin/pip-compile" \
        --quiet --generate-hashes --allow-unsafe --strip-extras --newline=LF \
        --no-emit-index-url --no-emit-find-links --index-url "$INDEX" \
        --cache-dir "$TMP/cache" --rebuild \
        --output-file "$2" "$1"
}
compile docker/requirements.in docker/requirements.lock
compile docker/build-requirements.in docker/build-requirements.lock
echo "lock.sh: wrote docker/requirements.lock and docker/build-requirements.lock"
echo "lock.sh: now run  python -m pytest -q tests/test_environment.py  (lock and CI pins must agree)"
