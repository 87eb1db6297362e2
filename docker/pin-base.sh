#!/usr/bin/env bash
# Dockerfile.cuda's base image is pinned by tag and digest, the same `image:tag@sha256:<64 hex>` in every
# FROM line that names an image (stage names such as `FROM build` are skipped).
#
# Usage (from anywhere in the repository):
#   docker/pin-base.sh --check    exit 0 when every base reference is that well-formed and they are all the
#                                 same; exit 1 otherwise (placeholder, malformed digest, FROM lines that
#                                 differ). Nothing is resolved, no network.
#   docker/pin-base.sh --update   re-resolve the tag and move the pin: a deliberate environment change,
#                                 to commit with the rebuilt image's results. It also rewrites the
#                                 `# digest:` provenance note above the FROM lines.
#   docker/pin-base.sh            resolve only while the file holds the placeholder; a real digest is never
#                                 rewritten without --update.
#
# Resolution: `docker buildx imagetools inspect` where buildx is installed, else the registry's HTTP
# API (anonymous token, HEAD on the manifest, Docker-Content-Digest). The digest is the multi-arch
# index digest, the one `docker pull` prints. Nothing is written unless it is a well-formed sha256
# digest the registry returned.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILE="${DOCKERFILE:-$ROOT/Dockerfile.cuda}"
PINNED_RE='^[a-z0-9][^@[:space:]]*:[A-Za-z0-9_][A-Za-z0-9_.-]*@sha256:[0-9a-f]{64}$'
PLACEHOLDER_RE='@sha256:UNRESOLVED[^[:space:]]*$'
MODE="${1:-}"

case "$MODE" in
    --check|--update|"") ;;
    *) echo "usage: docker/pin-base.sh [--check|--update]" >&2; exit 2 ;;
esac

# The image reference of each FROM line (`FROM [--flag=...] REF [AS NAME]`), references to stages skipped.
base_refs() {
    awk 'toupper($1) == "FROM" {
            i = 2; while ($i ~ /^--/) i++
            if (!(tolower($i) in stage)) print $i
            if (toupper($(i + 1)) == "AS") stage[tolower($(i + 2))] = 1
         }' "$FILE"
}

refs="$(base_refs)"
if [ -z "$refs" ]; then
    echo "pin-base.sh: no FROM line names a base image in $FILE" >&2; exit 1
fi
if [ "$(printf '%s\n' "$refs" | sort -u | wc -l)" -ne 1 ]; then
    echo "pin-base.sh: the FROM lines of $FILE name different references:" \
         "$(printf '%s\n' "$refs" | tr '\n' ' ')" >&2
    exit 1
fi
ref="$(printf '%s\n' "$refs" | head -n 1)"
tag_ref="${ref%%@*}"

if printf '%s' "$ref" | grep -Eq "$PINNED_RE"; then
    state=pinned
elif printf '%s' "$ref" | grep -Eq "$PLACEHOLDER_RE"; then
    state=placeholder
else
    state=malformed
fi

case "$MODE:$state" in
    --check:pinned)
        echo "pin-base.sh: $ref (every FROM line)"; exit 0 ;;
    --check:placeholder|:placeholder) ;;
    --check:*)
        echo "pin-base.sh: $FILE: $ref is not image:tag@sha256:<64 hex digits>" >&2; exit 1 ;;
    :pinned)
        echo "pin-base.sh: $ref already pinned; not rewritten (docker/pin-base.sh --update moves the pin)"
        exit 0 ;;
    :malformed)
        echo "pin-base.sh: $FILE: $ref is not a well-formed digest; not rewritten without --update" >&2
        exit 1 ;;
esac
if [ "$MODE" = "--check" ]; then
    echo "pin-base.sh: $FILE still has the placeholder digest; run docker/pin-base.sh" >&2; exit 1
fi

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

source="docker buildx"
digest="$(resolve_buildx || true)"
if [ -z "$digest" ]; then
    source="registry HTTP API"
    digest="$(resolve_registry || true)"
fi
if ! printf '%s' "$digest" | grep -Eq '^sha256:[0-9a-f]{64}$'; then
    echo "pin-base.sh: could not resolve $tag_ref (no buildx and the registry is unreachable?); $FILE unchanged" >&2
    exit 1
fi

# Every FROM line's reference to the new digest, and the provenance note (the `# digest:` lines, or before
# the first FROM line where there are none) to where this digest came from.
note="# digest: $tag_ref's index, resolved by docker/pin-base.sh --update ($source, $(date -u +%Y-%m-%d))."
tmp="$(mktemp)"
awk -v ref="$ref" -v new="$tag_ref@$digest" -v note="$note" '
    /^# digest: / { if (!noted) { print note; noted = 1 } next }
    toupper($1) == "FROM" {
        if (!noted) { print note; noted = 1 }
        for (i = 2; i <= NF; i++) if ($i == ref) $i = new
    }
    { print }' "$FILE" > "$tmp"
cat "$tmp" > "$FILE" && rm -f "$tmp"
echo "pin-base.sh: $tag_ref -> $digest written to $FILE"
