#!/usr/bin/env bash
# For CI: build the worker's images on a local Debian base and boot them: the thin Dockerfile.runpod four
# times against a temporary directory standing in for the network volume, the Hub's .runpod/Dockerfile
# (environment baked in) once with neither volume nor network.
#
# Usage: scripts/ci/image_smoke_test.sh   (needs root or rootful podman; docs/testing.md has the times)
#
#   boot 1: default CMD; builds the venv on the "volume", answers test_input.json in runpod's local mode;
#   boot 2: reuses the venv (no build), serves the API, answers the same job over HTTP; the audio in the
#           JSON answer is decoded and checked;
#   boot 3: as deployed on an endpoint: runpod's worker loop takes the same job from a stand-in for
#           RunPod's job API (tests/runpod_platform.py), posts the result back and sends heartbeats;
#           then SIGTERM, as RunPod scales a worker down, must end it with exit code 0;
#   boot 4: as on a load-balancing endpoint: SERVE=http with PORT and PORT_HEALTH; /ping answers 204 while
#           loading, then 200; POST /v1/audio/speech answers a WAV that is decoded; SIGTERM ends it with 0;
#   boot 5: the baked image as the Hub runs it: no volume and --network none; answers test_input.json from
#           the environment in the image (a venv build at boot fails the test).
#
# Prints each image's build and boot times and size, then "thin image: PASS" or "baked image: PASS" as that
# image's part passes; the last line is PASS or FAILED. Changes: builds the base image
# (scripts/ci/build_base_image.sh, cached in ~/.cache/f5-worker) and the test images (the baked one, 8 GB,
# with the host's uv cache mounted so nothing is downloaded); removes its containers, its images (the baked
# one as soon as boot 5 is done) and its work directory at the end, also when stopped by SIGTERM or SIGINT
# (sent to its process group, so the command in progress stops too). Host workarounds live here, not in the
# Dockerfiles: --runtime runc (crun fails on hybrid cgroups), --ulimit (no CAP_SYS_RESOURCE), the host's CA
# bundle (TLS to PyPI through a proxy).
# Settings: F5_SMOKE_IMAGES=thin|baked|both (default both; both builds the baked image on the thin one's
# layers); F5_SMOKE_KEEP=1 keeps the work dir and images for debugging; F5_SMOKE_CONTEXT=dir builds from
# another checkout; F5_SMOKE_CA_BUNDLE the CA bundle to use.
case "${1:-}" in -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
set -Eeuo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONTEXT="${F5_SMOKE_CONTEXT:-$REPO}"
IMAGES="${F5_SMOKE_IMAGES:-both}"
case "$IMAGES" in thin|baked|both) ;; *) echo "F5_SMOKE_IMAGES=$IMAGES: thin, baked or both" >&2; exit 2 ;; esac
RUN_ID="f5smoke-$$-$(date +%s)"
BASE_TAG="localhost/f5-worker-smoke-base:$RUN_ID"
IMAGE_TAG="localhost/f5-worker-smoke:$RUN_ID"
BAKED_TAG="localhost/f5-worker-smoke-baked:$RUN_ID"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/f5-smoke.XXXXXX")"
VOLUME="$WORK/volume"
mkdir -p "$VOLUME"

say() { printf '[smoke %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

cleanup() {
    local code=$?
    set +e
    [ -n "${PLATFORM_PID:-}" ] && kill "$PLATFORM_PID" 2>/dev/null
    podman ps -a --filter "label=f5-smoke=$RUN_ID" -q | xargs -r podman rm -f >/dev/null 2>&1
    if [ "${F5_SMOKE_KEEP:-0}" = "1" ]; then
        say "kept $WORK and the images labelled f5-smoke=$RUN_ID (F5_SMOKE_KEEP=1)"
    else
        # The builds label every layer's image, so a failed build leaves no untagged ones behind.
        podman images -a --filter "label=f5-smoke=$RUN_ID" -q | xargs -r podman rmi -f >/dev/null 2>&1
        podman rmi -f "$BAKED_TAG" "$IMAGE_TAG" "$BASE_TAG" >/dev/null 2>&1
        # The venv was written by the container's root: rootless podman needs unshare to delete it.
        rm -rf "$WORK" 2>/dev/null || podman unshare rm -rf "$WORK"
    fi
    if [ "$code" -eq 0 ]; then say "PASS"; else say "FAILED (exit $code)"; fi
    exit "$code"
}
trap cleanup EXIT
# Stopped (the test suite sends SIGTERM to this command's process group when it ends early): exit through the
# clean-up with a failing code, once the command in progress has stopped.
trap 'exit 143' TERM
trap 'exit 130' INT

for f in runpod_handler.py test_input.json Dockerfile.runpod .runpod/Dockerfile uv.lock; do
    [ -f "$CONTEXT/$f" ] || fail "$CONTEXT/$f is missing"
done

"$REPO/scripts/ci/install_container_tools.sh" >&2

# ---------------------------------------------------------------- host flags
PODMAN=(podman --runtime runc)
hard_nofile=$(ulimit -Hn)
[ "$hard_nofile" = "unlimited" ] && hard_nofile=1048576
CA_BUNDLE="${F5_SMOKE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
CA_MOUNT=()
CA_ENV=()
if [ -f "$CA_BUNDLE" ]; then
    # pip (certifi) and uv (webpki) ignore the system store unless told; point both at the host's
    # (uv through its system-wide config as well, for the build, where no variable can be set for it).
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$WORK/pip.conf"
    printf 'system-certs = true\n' >"$WORK/uv.toml"
    CA_MOUNT=(-v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" -v "$WORK/pip.conf:/etc/pip.conf:ro"
              -v "$WORK/uv.toml:/etc/uv/uv.toml:ro")
    CA_ENV=(-e SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt)
fi
HOST_UV_CACHE="${UV_CACHE_DIR:-$("${UV:-uv}" cache dir 2>/dev/null || echo "$HOME/.cache/uv")}"
mkdir -p "$HOST_UV_CACHE"
# Every boot: labelled for the clean-up, the tiny model, no download.
BOOT_FLAGS=(
    --label "f5-smoke=$RUN_ID"
    --ulimit "nofile=$hard_nofile:$hard_nofile" --ulimit nproc=4096:4096
    -e DEFAULT_MODEL=tiny -e HF_HUB_OFFLINE=1
)
# The thin image's boots: the volume, and the host's network to build the venv.
RUN_FLAGS=(
    "${BOOT_FLAGS[@]}" --network host
    -v "$VOLUME:/runpod-volume"
    # uv's cache from the host, so the venv build copies wheels instead of downloading 3 GB
    -v "$HOST_UV_CACHE:/uv-cache" -e UV_CACHE_DIR=/uv-cache
    "${CA_MOUNT[@]}" "${CA_ENV[@]}"
)

# ---------------------------------------------------------------- images
t0=$(now)
"$REPO/scripts/ci/build_base_image.sh" "$BASE_TAG" >&2
say "base image ready in $(secs "$t0" "$(now)")s"

build_image() {  # dockerfile (in CONTEXT), tag, log, extra podman build args...: one image on the base image
    local dockerfile=$1 tag=$2 log=$3
    shift 3
    "${PODMAN[@]}" build --network host "${CA_MOUNT[@]}" --label "f5-smoke=$RUN_ID" "$@" \
        -f "$CONTEXT/$dockerfile" --build-arg "BASE_IMAGE=$BASE_TAG" -t "$tag" "$CONTEXT" >"$log" 2>&1 || {
        tail -n 40 "$log" >&2
        fail "podman build of $dockerfile failed"
    }
}

thin_image() {
    t0=$(now)
    say "building Dockerfile.runpod from $CONTEXT"
    build_image Dockerfile.runpod "$IMAGE_TAG" "$WORK/build.log"
    build_s=$(secs "$t0" "$(now)")
    image_bytes=$(podman image inspect --format '{{.Size}}' "$IMAGE_TAG")
    say "image built in ${build_s}s"

    # ---------------------------------------------------------------- boot 1
    say "boot 1: default CMD, empty volume (builds the venv, then runs test_input.json)"
    t0=$(now)
    "${PODMAN[@]}" run --name "$RUN_ID-boot1" "${RUN_FLAGS[@]}" -e RESULT_DUMP_DIR=/runpod-volume/smoke-results \
        "$IMAGE_TAG" >"$WORK/boot1.log" 2>&1 || {
        tail -n 60 "$WORK/boot1.log" | cut -c1-400 >&2
        fail "boot 1 exited non-zero"
    }
    boot1_total=$(secs "$t0" "$(now)")
    grep -q "phase=publish" "$WORK/boot1.log" || fail "boot 1 did not build the venv"
    grep -q "phase=verify imports torch, f5_tts, runpod" "$WORK/boot1.log" || fail "boot 1 did not verify the venv"
    if grep -qE "could not take the use lock|flock \(util-linux\) missing" "$WORK/boot1.log"; then
        fail "boot 1 could not hold the venv's use lock"
    fi
    grep -q "completed successfully" "$WORK/boot1.log" || fail "boot 1 did not complete the job"
    # built without F5_IMAGE_VERSION: the boot log names the project's version (Dockerfile.runpod, start.sh)
    version=$(awk '/^\[/ { p = ($0 == "[project]") } p && /^version *=/ { gsub(/^version *= *"|".*$/, ""); print; exit }' \
        "$CONTEXT/pyproject.toml")
    grep -q ", image $version\$" "$WORK/boot1.log" || fail "boot 1's log does not name the image's version ($version)"
    # runpod's log shows the result with its base64 shortened; the whole result (RESULT_DUMP_DIR) holds a WAV.
    grep "Job result:" "$WORK/boot1.log" | grep -qE "'audio_base64': '<[0-9]+ characters of base64>'" ||
        fail "boot 1's logged job result does not show its audio shortened"
    grep -q '"audio_base64": "UklGR' "$VOLUME"/smoke-results/*.json 2>/dev/null ||
        fail "boot 1's job result has no base64 WAV audio"
    boot1_setup=$(sed -n 's/.*boot took \([0-9.]*\)s.*/\1/p' "$WORK/boot1.log" | tail -n1)
    [ -n "$boot1_setup" ] || fail "boot 1 log lacks start.sh's 'boot took' line"

    venv_dir=$(ls -d "$VOLUME"/f5-worker/venvs/py3* 2>/dev/null | head -n1)
    [ -n "$venv_dir" ] || fail "no venv on the volume after boot 1"
    venv_size=$(du -sh "$venv_dir" | cut -f1)

    # ---------------------------------------------------------------- boot 2
    port=$(free_port)
    say "boot 2: same volume (reuses the venv), API on 127.0.0.1:$port"
    t0=$(now)
    "${PODMAN[@]}" run -d --name "$RUN_ID-boot2" "${RUN_FLAGS[@]}" "$IMAGE_TAG" \
        /app/scripts/boot/start.sh --rp_serve_api --rp_api_host 127.0.0.1 --rp_api_port "$port" >/dev/null
    answered=""
    for _ in $(seq 1 600); do
        if ! podman ps --filter "name=$RUN_ID-boot2" --filter status=running -q | grep -q .; then
            podman logs "$RUN_ID-boot2" 2>&1 | tail -n 60 | cut -c1-400 >&2
            fail "boot 2 exited before answering"
        fi
        if curl -sf -o "$WORK/answer.json" -H 'Content-Type: application/json' \
            --data @"$CONTEXT/test_input.json" "http://127.0.0.1:$port/runsync" 2>/dev/null; then
            answered=1
            break
        fi
        sleep 1
    done
    boot2_total=$(secs "$t0" "$(now)")
    podman logs "$RUN_ID-boot2" >"$WORK/boot2.log" 2>&1 || true
    podman rm -f "$RUN_ID-boot2" >/dev/null
    [ -n "$answered" ] || { tail -n 60 "$WORK/boot2.log" | cut -c1-400 >&2; fail "boot 2 never answered"; }
    grep -q "is ready; reusing it" "$WORK/boot2.log" || fail "boot 2 did not reuse the venv"
    if grep -q "phase=create-venv" "$WORK/boot2.log"; then fail "boot 2 rebuilt the venv"; fi
    boot2_setup=$(sed -n 's/.*boot took \([0-9.]*\)s.*/\1/p' "$WORK/boot2.log" | tail -n1)

    python3 - "$WORK/answer.json" <<'EOF' || fail "boot 2's answer has no valid audio"
import base64, io, json, sys, wave
answer = json.load(open(sys.argv[1]))
assert answer.get("status") == "COMPLETED", f"status {answer.get('status')}: {str(answer)[:300]}"
output = answer["output"]
assert "error" not in output, output.get("error")
audio = base64.b64decode(output["audio_base64"])
with wave.open(io.BytesIO(audio)) as wav:
    seconds = wav.getnframes() / wav.getframerate()
assert seconds > 0.5, f"only {seconds:.2f}s of audio"
print(f"[smoke] boot 2 answer: {seconds:.2f}s of {wav.getframerate()} Hz audio; output keys: "
      f"{', '.join(sorted(output))}", file=sys.stderr)
EOF

    # ---------------------------------------------------------------- boot 3
    port=$(free_port)
    api="http://127.0.0.1:$port"
    say "boot 3: as deployed (runpod's worker loop), jobs from a stand-in for RunPod's job API at $api"
    python3 "$REPO/tests/runpod_platform.py" --port "$port" --job "$CONTEXT/test_input.json" \
        --result "$WORK/boot3.json" --timeout 600 &
    PLATFORM_PID=$!
    t0=$(now)
    # RUNPOD_SKIP_AUTO_SYSTEM_CHECKS: runpod's start-up checks dial 8.8.8.8, which CI cannot reach
    "${PODMAN[@]}" run -d --name "$RUN_ID-boot3" "${RUN_FLAGS[@]}" \
        -e RUNPOD_WEBHOOK_GET_JOB="$api/v2/endpoint/job-take/\$ID?gpu=smoke" \
        -e RUNPOD_WEBHOOK_POST_OUTPUT="$api/v2/endpoint/job-done/\$RUNPOD_POD_ID/\$ID?gpu=smoke" \
        -e RUNPOD_WEBHOOK_PING="$api/ping/\$RUNPOD_POD_ID" -e RUNPOD_PING_INTERVAL=1000 \
        -e RUNPOD_POD_ID="$RUN_ID" -e RUNPOD_AI_API_KEY=smoke -e RUNPOD_SKIP_AUTO_SYSTEM_CHECKS=true \
        "$IMAGE_TAG" >/dev/null
    platform_rc=0
    wait "$PLATFORM_PID" || platform_rc=$?
    PLATFORM_PID=""
    boot3_total=$(secs "$t0" "$(now)")
    podman stop -t 60 "$RUN_ID-boot3" >/dev/null 2>&1  # SIGTERM: the worker loop drains and exits
    boot3_exit=$(podman inspect --format '{{.State.ExitCode}}' "$RUN_ID-boot3")
    podman logs "$RUN_ID-boot3" >"$WORK/boot3.log" 2>&1 || true
    podman rm -f "$RUN_ID-boot3" >/dev/null
    [ "$platform_rc" -eq 0 ] || { tail -n 60 "$WORK/boot3.log" | cut -c1-400 >&2; fail "boot 3 never posted a result"; }
    [ "$boot3_exit" = "0" ] || { tail -n 30 "$WORK/boot3.log" | cut -c1-400 >&2; fail "boot 3 exited $boot3_exit on SIGTERM"; }

    python3 - "$WORK/boot3.json" <<'EOF' || fail "boot 3's posted result has no valid audio"
import base64, io, json, sys, wave
report = json.load(open(sys.argv[1]))
result = report["result"]
assert "error" not in result, result.get("error")
audio = base64.b64decode(result["output"]["audio_base64"])
with wave.open(io.BytesIO(audio)) as wav:
    seconds = wav.getnframes() / wav.getframerate()
assert seconds > 0.5, f"only {seconds:.2f}s of audio"
assert report["pings"], "no heartbeat reached the platform"
print(f"[smoke] boot 3 posted: {seconds:.2f}s of audio; {len(report['pings'])} heartbeats", file=sys.stderr)
EOF

    # ---------------------------------------------------------------- boot 4
    port=$(free_port)
    health_port=$(free_port)
    say "boot 4: SERVE=http as on a load-balancing endpoint, PORT=$port, PORT_HEALTH=$health_port"
    t0=$(now)
    "${PODMAN[@]}" run -d --name "$RUN_ID-boot4" "${RUN_FLAGS[@]}" \
        -e SERVE=http -e PORT="$port" -e PORT_HEALTH="$health_port" "$IMAGE_TAG" >/dev/null
    # RunPod's health contract: 204 while loading, 200 once ready; no answer yet (000) while the boot runs.
    ready="" pings_204=0
    for _ in $(seq 1 1200); do
        if ! podman ps --filter "name=$RUN_ID-boot4" --filter status=running -q | grep -q .; then
            podman logs "$RUN_ID-boot4" 2>&1 | tail -n 60 | cut -c1-400 >&2
            fail "boot 4 exited before /ping answered 200"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$health_port/ping" 2>/dev/null || true)
        case "$code" in
            200) ready=1; break ;;
            204) pings_204=$((pings_204 + 1)) ;;
            000) ;;
            *) podman logs "$RUN_ID-boot4" 2>&1 | tail -n 30 | cut -c1-400 >&2; fail "boot 4's /ping answered $code" ;;
        esac
        sleep 0.5
    done
    boot4_ready=$(secs "$t0" "$(now)")
    spoke=""
    if [ -n "$ready" ]; then
        curl -sf -o "$WORK/speech.wav" -D "$WORK/speech.headers" -H 'Content-Type: application/json' \
            --data '{"model": "tts-1", "voice": "alloy", "input": "Hello there, over HTTP.", "response_format": "wav"}' \
            "http://127.0.0.1:$port/v1/audio/speech" && spoke=1
    fi
    boot4_total=$(secs "$t0" "$(now)")
    podman stop -t 60 "$RUN_ID-boot4" >/dev/null 2>&1  # SIGTERM: uvicorn finishes and the worker exits
    boot4_exit=$(podman inspect --format '{{.State.ExitCode}}' "$RUN_ID-boot4")
    podman logs "$RUN_ID-boot4" >"$WORK/boot4.log" 2>&1 || true
    podman rm -f "$RUN_ID-boot4" >/dev/null
    [ -n "$ready" ] || { tail -n 60 "$WORK/boot4.log" | cut -c1-400 >&2; fail "boot 4's /ping never answered 200"; }
    [ -n "$spoke" ] || { tail -n 60 "$WORK/boot4.log" | cut -c1-400 >&2; fail "boot 4's /v1/audio/speech failed"; }
    [ "$boot4_exit" = "0" ] || { tail -n 30 "$WORK/boot4.log" | cut -c1-400 >&2; fail "boot 4 exited $boot4_exit on SIGTERM"; }
    grep -q "is ready; reusing it" "$WORK/boot4.log" || fail "boot 4 did not reuse the venv"
    grep -qi "^content-type: audio/wav" "$WORK/speech.headers" || fail "boot 4's speech is not audio/wav"

    python3 - "$WORK/speech.wav" "$pings_204" <<'EOF' || fail "boot 4's speech is not valid audio"
import sys, wave
with wave.open(sys.argv[1]) as wav:
    seconds = wav.getnframes() / wav.getframerate()
assert seconds > 0.5, f"only {seconds:.2f}s of audio"
print(f"[smoke] boot 4 spoke: {seconds:.2f}s of {wav.getframerate()} Hz audio from /v1/audio/speech; "
      f"/ping answered 204 {sys.argv[2]} times before 200", file=sys.stderr)
EOF
}

# ---------------------------------------------------------------- baked image
# The Hub's build: .runpod/Dockerfile from the repository root. After the thin build, the layers above the
# venv step are the thin image's; the host's uv cache is mounted for the venv step (BAKE_UV_CACHE), so it
# copies instead of downloading.
baked_image() {
    t0=$(now)
    say "building .runpod/Dockerfile (environment baked in) from $CONTEXT"
    build_image .runpod/Dockerfile "$BAKED_TAG" "$WORK/baked-build.log" \
        -v "$HOST_UV_CACHE:/uv-cache" --build-arg BAKE_UV_CACHE=/uv-cache
    baked_build_s=$(secs "$t0" "$(now)")
    baked_bytes=$(podman image inspect --format '{{.Size}}' "$BAKED_TAG")
    baked_cached=$(grep -c "Using cache" "$WORK/baked-build.log" || true)
    grep -q "phase=publish" "$WORK/baked-build.log" || fail "the baked build did not build the venv"
    say "baked image built in ${baked_build_s}s (${baked_cached} steps from the cache)"

    # ---------------------------------------------------------------- boot 5
    say "boot 5: baked image, no volume, --network none (runs test_input.json from the baked venv)"
    mkdir -p "$WORK/baked-results"
    t0=$(now)
    "${PODMAN[@]}" run --name "$RUN_ID-boot5" "${BOOT_FLAGS[@]}" --network none \
        -v "$WORK/baked-results:/results" -e RESULT_DUMP_DIR=/results \
        "$BAKED_TAG" >"$WORK/boot5.log" 2>&1 || {
        tail -n 60 "$WORK/boot5.log" | cut -c1-400 >&2
        fail "boot 5 exited non-zero"
    }
    boot5_total=$(secs "$t0" "$(now)")
    podman rm -f "$RUN_ID-boot5" >/dev/null
    # The ~8 GB image goes now, not at the end: the host's disk is shared.
    [ "${F5_SMOKE_KEEP:-0}" = "1" ] || podman rmi -f "$BAKED_TAG" >/dev/null
    grep -q "no network volume at '/runpod-volume'" "$WORK/boot5.log" || fail "boot 5 found a volume"
    grep -q "is ready; reusing it" "$WORK/boot5.log" || fail "boot 5 did not use the baked venv"
    if grep -qE "phase=(create-venv|install)" "$WORK/boot5.log"; then fail "boot 5 built a venv at boot"; fi
    grep -q "completed successfully" "$WORK/boot5.log" || fail "boot 5 did not complete the job"
    boot5_setup=$(sed -n 's/.*boot took \([0-9.]*\)s.*/\1/p' "$WORK/boot5.log" | tail -n1)
    [ -n "$boot5_setup" ] || fail "boot 5 log lacks start.sh's 'boot took' line"

    python3 - "$WORK"/baked-results/*.json <<'EOF' || fail "boot 5's job result has no valid audio"
import base64, io, json, sys, wave
output = json.load(open(sys.argv[1]))
assert "error" not in output, output.get("error")
audio = base64.b64decode(output["audio_base64"])
with wave.open(io.BytesIO(audio)) as wav:
    seconds = wav.getnframes() / wav.getframerate()
assert seconds > 0.5, f"only {seconds:.2f}s of audio"
print(f"[smoke] boot 5 answer: {seconds:.2f}s of {wav.getframerate()} Hz audio", file=sys.stderr)
EOF
}

# ---------------------------------------------------------------- run
# Each part prints its report and "<part> image: PASS" when it is done, so a run of both images tells which
# passed even when the other fails (the test suite reads each image's verdict from one shared run).
base_bytes=$(podman image inspect --format '{{.Size}}' "$BASE_TAG")
mb() { awk -v b="$1" 'BEGIN { printf "%.0f MB", b / 1e6 }'; }
report() {
    printf '[smoke] %s\n' "---------------------------------------------------------------" "$@" \
        "---------------------------------------------------------------" >&2
}
if [ "$IMAGES" != baked ]; then
    thin_image
    report \
        "image size:  $(mb "$image_bytes") ($(mb "$((image_bytes - base_bytes))") over the $(mb "$base_bytes") Debian stand-in base)" \
        "image build: ${build_s}s" \
        "venv on the volume: $venv_size at ${venv_dir#"$VOLUME"/}" \
        "boot 1 (cold, builds the venv): ${boot1_setup}s to the handler, ${boot1_total}s to the job's answer" \
        "boot 2 (warm, reuses the venv): ${boot2_setup:-?}s to the handler, ${boot2_total}s to the job's answer" \
        "boot 3 (as deployed, runpod's worker loop): ${boot3_total}s to the posted result; exit 0 on SIGTERM" \
        "boot 4 (SERVE=http, load-balancing): ${boot4_ready}s to /ping 200, ${boot4_total}s to the speech; exit 0 on SIGTERM"
    say "thin image: PASS"
    # The volume's 8 GB venv is done with; the baked build needs the disk (about 30 GB while it commits).
    rm -rf "$VOLUME/f5-worker" 2>/dev/null || podman unshare rm -rf "$VOLUME/f5-worker"
fi
if [ "$IMAGES" != thin ]; then
    baked_image
    report \
        "baked image: $(mb "$baked_bytes") ($(mb "$((baked_bytes - base_bytes))") over the base), built in ${baked_build_s}s (${baked_cached} steps cached)" \
        "boot 5 (baked, no volume, no network): ${boot5_setup}s to the handler, ${boot5_total}s to the job's answer"
    say "baked image: PASS"
fi
