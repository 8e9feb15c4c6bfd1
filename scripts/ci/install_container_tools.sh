#!/usr/bin/env bash
# For CI: install the host tools the image smoke test needs.
#
# Usage: scripts/ci/install_container_tools.sh   (as root)
#
# Changes: installs podman, runc, debootstrap, fuse-overlayfs and uidmap with apt-get when any is missing
# (runs apt-get update first); does nothing when all are present.
case "${1:-}" in -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
set -euo pipefail

needed=()
command -v podman >/dev/null 2>&1 || needed+=(podman)
command -v runc >/dev/null 2>&1 || needed+=(runc)
command -v debootstrap >/dev/null 2>&1 || needed+=(debootstrap)
# podman import / build on a host without overlay support falls back to vfs;
# fuse-overlayfs keeps layer storage small where /dev/fuse exists.
dpkg -s fuse-overlayfs >/dev/null 2>&1 || needed+=(fuse-overlayfs)
dpkg -s uidmap >/dev/null 2>&1 || needed+=(uidmap)

if [ "${#needed[@]}" -eq 0 ]; then
    echo "container tools: podman, runc, debootstrap already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
echo "container tools: installing ${needed[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${needed[@]}" containernetworking-plugins
