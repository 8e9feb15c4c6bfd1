#!/usr/bin/env bash
# For CI and developers: install the headless browser the page's tests drive (tests/test_page.py).
#
# Usage: scripts/ci/install_browser.sh   (as root, or with sudo)
#
# Changes: installs Debian's chromium and chromium-driver with apt-get when either is missing (runs apt-get
# update first); does nothing when both are present. Prints the paths of chromium and chromedriver.
case "${1:-}" in -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
set -euo pipefail

needed=()
command -v chromium >/dev/null 2>&1 || needed+=(chromium)
command -v chromedriver >/dev/null 2>&1 || needed+=(chromium-driver)

if [ "${#needed[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        SUDO=sudo
    else
        SUDO=
    fi
    echo "browser: installing ${needed[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${needed[@]}" fonts-dejavu-core >/dev/null
fi
echo "browser: $(command -v chromium) $(command -v chromedriver)"
