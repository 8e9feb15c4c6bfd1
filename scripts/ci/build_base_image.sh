#!/usr/bin/env bash
# For CI: build a stand-in for the CUDA base image, for the image smoke test.
#
# Usage: scripts/ci/build_base_image.sh IMAGE_TAG   (needs root, debootstrap and podman)
#
# Builds a minimal Debian root filesystem with python3 (debootstrap) and imports it into podman as
# IMAGE_TAG: no container registry is reachable from CI, so the nvidia/cuda base cannot be pulled.
#
# Changes: caches the root filesystem tarball in F5_WORKER_CACHE (default ~/.cache/f5-worker), so later
# runs only import it; adds IMAGE_TAG to podman's local images.
# Settings: BASE_SUITE (default bookworm), DEBIAN_MIRROR (default: this host's apt mirror).
case "${1:-}" in -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
set -euo pipefail

tag="${1:?usage: build_base_image.sh IMAGE_TAG}"
cache_dir="${F5_WORKER_CACHE:-$HOME/.cache/f5-worker}"
suite="${BASE_SUITE:-bookworm}"
tarball="$cache_dir/debian-$suite-python3-rootfs.tar"
packages="python3,python3-venv,ca-certificates,curl"

# The mirror configured for this host's apt (deb822 or one-line format);
# overridable with DEBIAN_MIRROR.
apt_mirror() {
    local uri
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [ -z "$uri" ]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

mkdir -p "$cache_dir"
if [ ! -s "$tarball" ]; then
    mirror="${DEBIAN_MIRROR:-$(apt_mirror)}"
    rootfs=$(mktemp -d "$cache_dir/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs" "$tarball.tmp"' EXIT
    echo "base image: debootstrap $suite from $mirror (cold cache, a few minutes)"
    start=$(date +%s)
    debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" \
        >"$cache_dir/debootstrap.log" 2>&1 || {
        echo "base image: debootstrap failed, last lines of $cache_dir/debootstrap.log:" >&2
        tail -n 30 "$cache_dir/debootstrap.log" >&2
        exit 1
    }
    # Drop apt lists and docs: they only make the image bigger.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    echo "base image: rootfs tarball ready in $(( $(date +%s) - start ))s: $tarball"
else
    echo "base image: reusing cached rootfs $tarball"
fi

podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    "$tarball" "$tag" >/dev/null
echo "base image: imported as $tag"
