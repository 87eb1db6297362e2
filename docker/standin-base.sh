#!/usr/bin/env bash
# Build a local image that stands in for Dockerfile.cuda's base, python:3.11-slim-bookworm, from Debian
# bookworm's own packages, on a machine that can reach Debian's archive but no container registry.
#
# Usage (as root, from anywhere in the repository):
#   docker/standin-base.sh [IMAGE]     default IMAGE: localhost/pulse-standin-base:3.11-slim-bookworm
#
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian), STANDIN_CA (a CA bundle to trust, see below;
# default: the machine's /etc/ssl/certs/ca-certificates.crt when its HTTPS egress is re-signed locally).
#
# How the stand-in differs from the official python:3.11-slim-bookworm:
#   - Python is Debian's python3.11 package (3.11.2, /usr/bin/python3.11), not CPython 3.11.16 built from
#     source in /usr/local; `python`, `python3` and `python3.11` are linked into /usr/local/bin so that
#     the Dockerfile's `python -m venv` finds it as it does in the official image. A venv's pip is
#     Debian's bundled wheel (pip 23.0.1) rather than the official image's pip.
#   - The root file system is debootstrap's minbase variant with python3.11, python3.11-venv,
#     ca-certificates, netbase and tzdata (what the official image installs on top of debian:bookworm-slim,
#     less the build-time-only libraries its Python needs), from today's bookworm archive rather than the
#     snapshot the official image was built from; no apt lists, docs or man pages are removed.
#   - ENV holds LANG=C.UTF-8 and PATH as the official image does, no PYTHON_VERSION / GPG_KEY; CMD python3.
#   - Where this machine's HTTPS goes through a re-signing proxy (its CA bundle then differs from Debian's),
#     that bundle replaces /etc/ssl/certs/ca-certificates.crt in the stand-in, and SSL_CERT_FILE, PIP_CERT
#     and REQUESTS_CA_BUNDLE point at it, so that `pip install` in the build reaches PyPI. The official
#     image needs neither.
set -euo pipefail

IMAGE="${1:-localhost/pulse-standin-base:3.11-slim-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3-distutils provides python3.11-venv's virtual dependency python3.11-distutils, which debootstrap does
# not resolve by itself.
PACKAGES="python3.11,python3.11-venv,python3-distutils,python3-pip-whl,python3-setuptools-whl,ca-certificates,netbase,tzdata"

if [ "$(id -u)" -ne 0 ]; then
    echo "standin-base.sh: debootstrap needs root" >&2; exit 2
fi
for tool in debootstrap podman; do
    command -v "$tool" >/dev/null || { echo "standin-base.sh: $tool is not installed (apt-get install $tool)" >&2; exit 2; }
done

ROOTFS="$(mktemp -d /var/tmp/pulse-standin.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
echo "standin-base.sh: debootstrap bookworm ($PACKAGES) from $MIRROR into $ROOTFS"
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || {
    tail -n 20 "$ROOTFS.log" >&2; echo "standin-base.sh: debootstrap failed (log: $ROOTFS.log)" >&2; exit 1; }
rm -f "$ROOTFS.log"

# `python` on PATH, as the official image has it (there in /usr/local/bin, built from source).
for name in python python3 python3.11; do
    ln -sf /usr/bin/python3.11 "$ROOTFS/usr/local/bin/$name"
done
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb

changes=(--change "ENV LANG=C.UTF-8"
         --change "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the official value
         --change 'CMD ["python3"]')
CA="${STANDIN_CA:-/etc/ssl/certs/ca-certificates.crt}"
if [ -f "$CA" ] && ! cmp -s "$CA" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"; then
    echo "standin-base.sh: trusting this machine's CA bundle $CA (its HTTPS egress is re-signed locally)"
    cp "$CA" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
    for var in SSL_CERT_FILE PIP_CERT REQUESTS_CA_BUNDLE; do
        changes+=(--change "ENV $var=/etc/ssl/certs/ca-certificates.crt")
    done
fi

tar -C "$ROOTFS" --numeric-owner -cf - . | podman import --quiet "${changes[@]}" - "$IMAGE" >/dev/null
echo "standin-base.sh: $IMAGE ($(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1 / 1e6}'))"
