#!/usr/bin/env bash
# Pin Dockerfile.cuda's base image: resolve the digest its tag points to NOW and write it into every
# `FROM <tag>@sha256:...` line.
#
# Usage (from anywhere in the repository):
#   docker/pin-base.sh            resolve only if the file still holds the placeholder (idempotent)
#   docker/pin-base.sh --update   re-resolve the tag and move the pin (a deliberate environment change)
#   docker/pin-base.sh --check    exit 1 if the placeholder is still there (nothing is resolved)
#
# Resolution: `docker buildx imagetools inspect` where buildx is installed, else the registry's HTTP
# API (anonymous token, HEAD on the manifest, Docker-Content-Digest). The digest is the multi-arch
# index digest, the one `docker pull` prints. Nothing is written unless it is a well-formed sha256
# digest the registry returned: never hand-edit a digest into the file.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILE="${DOCKERFILE:-$ROOT/Dockerfile.cuda}"
PLACEHOLDER_RE='@sha256:UNRESOLVED[^[:space:]]*'
MODE="${1:-}"

refs="$(sed -nE 's/^FROM[[:space:]]+([^[:space:]@]+)@sha256:[^[:space:]]+.*/\1/p' "$FILE" | sort -u)"
if [ -z "$refs" ]; then
    echo "pin-base.sh: no 'FROM image:tag@sha256:...' line in $FILE" >&2; exit 1
fi
if [ "$(printf '%s\n' "$refs" | wc -l)" -ne 1 ]; then
    echo "pin-base.sh: the FROM lines name different images: $refs" >&2; exit 1
fi
tag_ref="$refs"

has_placeholder() { grep -Eq "^FROM[[:space:]]+[^[:space:]]+$PLACEHOLDER_RE" "$FILE"; }

case "$MODE" in
    --check)
        if has_placeholder; then
            echo "pin-base.sh: $FILE still has the placeholder digest; run docker/pin-base.sh" >&2; exit 1
        fi
        echo "pin-base.sh: $tag_ref is pinned by digest"; exit 0 ;;
    --update) ;;
    "")
        if ! has_placeholder; then
            echo "pin-base.sh: $tag_ref already pinned (use --update to move the pin)"; exit 0
        fi ;;
    *) echo "usage: docker/pin-base.sh [--update|--check]" >&2; exit 2 ;;
esac

resolve_buildx() {
    docker buildx version >/dev/null 2>&1 || return 1
    docker buildx imagetools inspect "$tag_ref" --format '{{json .Manifest.Digest}}' 2>/dev/null | tr -d '"'
}

resolve_registry() {
    command -v curl >/dev/null || return 1
    local name="${tag_ref%:*}" tag="${tag_ref##*:}" registry repo token
    case "$name" in
        */*.*/*|*.*/*|localhost*/*) registry="${name%%/*}"; repo="${name#*/}" ;;
        */*) registry="registry-1.docker.io"; repo="$name" ;;
        *) registry="registry-1.docker.io"; repo="library/$name" ;;
    esac
    local auth=()
    if [ "$registry" = "registry-1.docker.io" ]; then
        token="$(curl -fsS --max-time 20 \
            "https://auth.docker.io/token?service=registry.docker.io&scope=repository:$repo:pull" \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' 2>/dev/null)" || return 1
        auth=(-H "Authorization: Bearer $token")
    fi
    curl -fsSI --max-time 20 "${auth[@]}" \
        -H 'Accept: application/vnd.oci.image.index.v1+json' \
        -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        "https://$registry/v2/$repo/manifests/$tag" \
        | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'
}

digest="$(resolve_buildx || true)"
[ -n "$digest" ] || digest="$(resolve_registry || true)"
if ! printf '%s' "$digest" | grep -Eq '^sha256:[0-9a-f]{64}$'; then
    echo "pin-base.sh: could not resolve $tag_ref (no buildx and the registry is unreachable?); $FILE unchanged" >&2
    exit 1
fi
tmp="$(mktemp)"
sed -E "s#^(FROM[[:space:]]+$tag_ref)@sha256:[^[:space:]]+#\1@$digest#" "$FILE" > "$tmp"
cat "$tmp" > "$FILE" && rm -f "$tmp"
echo "pin-base.sh: $tag_ref -> $digest written to $FILE"
