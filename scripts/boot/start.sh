#!/usr/bin/env bash
# The image's start command: find or build the worker's Python environment, then run the worker.
#
# Usage: scripts/boot/start.sh [runpod_handler.py's options]   (the container runs it; no command needed)
#
# Phases, each logged with its duration: preflight (host, Python, uv, the volume, the GPU); venv
# (setup_network_venv.py finds the environment for this uv.lock, or builds it once); handoff (holds the
# environment's use lock and execs its python on runpod_handler.py, passing the arguments on, e.g.
# --rp_serve_api). A failure ends with "BOOT FAILED in phase ..." and the reason above it
# (docs/deployment.md, "Reading a failed boot's log").
#
# Changes: builds the environment under <NETWORK_VOLUME_PATH>/f5-worker/venvs (or F5_LOCAL_ROOT without a
# volume) when none is ready, prunes old unused ones there, and sets HF_HOME/TORCH_HOME to the volume's
# caches. Settings: docs/configuration.md.
case "${1:-}" in -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
set -Eeuo pipefail

APP_DIR="${F5_APP_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
export F5_APP_DIR="$APP_DIR"
BOOT_START=$(date +%s.%N)
PHASE="init"
PHASE_START=$BOOT_START

log() { printf '[start.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

phase() {
    if [ "$PHASE" != "init" ]; then
        log "phase $PHASE done in $(since "$PHASE_START")s"
    fi
    PHASE="$1"
    PHASE_START=$(date +%s.%N)
    log "phase $PHASE: $2"
}

on_error() {
    local code=$?
    log "BOOT FAILED in phase '$PHASE' (exit $code) after $(since "$BOOT_START")s; the lines above say why"
    exit "$code"
}
trap on_error ERR

# The image's label: F5_IMAGE_VERSION (the build's --build-arg, or the endpoint's), else the project's version
# in the app's pyproject.toml, so every image says which code it runs.
project_version() {
    awk '/^\[/ { in_project = ($0 == "[project]") }
         in_project && /^version *=/ { gsub(/^version *= *"|".*$/, ""); print; exit }' "$APP_DIR/pyproject.toml" 2>/dev/null
}
IMAGE_VERSION="${F5_IMAGE_VERSION:-$(project_version || true)}"

phase preflight "who and where"
log "host $(hostname), user $(id -un), app $APP_DIR, image ${IMAGE_VERSION:-unversioned}"
if ! command -v python3 >/dev/null 2>&1; then
    log "ERROR: python3 not found on PATH; the base image must provide Python 3.11 or 3.12"
    false
fi
log "$(python3 --version 2>&1) at $(command -v python3); $(uv --version 2>/dev/null || echo 'uv MISSING')"
VOLUME="${NETWORK_VOLUME_PATH-/runpod-volume}"
if [ -n "$VOLUME" ] && [ -d "$VOLUME" ]; then
    log "network volume at $VOLUME: $(df -h "$VOLUME" 2>/dev/null | awk 'NR==2 {print $4 " free of " $2}')"
else
    log "no network volume at '${VOLUME}': the venv goes on the container disk"
fi
if command -v nvidia-smi >/dev/null 2>&1; then
    log "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 4 | tr '\n' ';')"
else
    log "GPU: none visible (no nvidia-smi)"
fi

phase venv "setup_network_venv.py (builds once per uv.lock, then reuses)"
BOOT_ENV=$(python3 "$APP_DIR/setup_network_venv.py")
eval "$BOOT_ENV"

phase handoff "hold the venv's use lock and start the handler"
if ! command -v flock >/dev/null 2>&1; then
    log "flock (util-linux) missing: the venv is not marked in use; a newer image may prune it after F5_VENV_PRUNE_IDLE_HOURS"
elif [ -n "${F5_VENV_USE_LOCK:-}" ]; then
    # Shared lock held by the handler for its whole life (fd 9 survives exec):
    # pruning by a newer image never deletes a venv this worker runs from.
    exec 9<>"$F5_VENV_USE_LOCK"
    flock -s -w 120 9 || log "could not take the use lock (filesystem without locks?); going on"
fi
if [ ! -x "$F5_VENV_PYTHON" ]; then
    log "ERROR: $F5_VENV_PYTHON vanished after setup; restart the worker"
    false
fi
cd "$APP_DIR"
log "phase handoff done; boot took $(since "$BOOT_START")s; exec $F5_VENV_PYTHON -u runpod_handler.py $*"
trap - ERR
exec "$F5_VENV_PYTHON" -u runpod_handler.py "$@"
