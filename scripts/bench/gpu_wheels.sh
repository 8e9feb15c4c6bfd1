#!/usr/bin/env bash
# For developers: write .whl/, the wheels scripts/bench/gpu_checks.sh installs on a GPU machine without a
# package index.
#
# Usage: bash scripts/bench/gpu_wheels.sh   (needs PyPI; then copy .whl/ with the source)
#
# Such a machine has Python 3.12 with torch, torchaudio, numpy, transformers, ... already (its own
# versions); these are the packages the worker and upstream's F5TTS import beyond those, at the versions
# of uv.lock. Three have no wheel on PyPI and are built here (pure Python). Three big ones are slimmed so
# that the whole set stays under 64 MiB, without touching what is imported: pocketsphinx without its
# language model, wandb without its service binaries, botocore with only the s3 and sts models.
# Changes: replaces .whl/ in the repository root and adds it to .git/info/exclude.
case "${1:-}" in -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir .whl

WHEELS=(
    aiodns==4.0.4 aiohttp-retry==2.9.1 annotated-types==0.8.0 backoff==2.2.1 backports-zstd==1.8.0 bcrypt==5.0.0
    boto3==1.44.8 botocore==1.44.8 brotli==1.2.1 cached-path==1.8.10 cffi==2.1.1 cryptography==50.0.2
    datasets==5.2.0 decorator==5.3.1 dill==0.4.1 einx==0.4.3 ema-pytorch==0.8.3 f5-tts==1.1.22 frozendict==2.5.1
    google-api-core==2.44.0 google-auth==2.63.0 google-cloud-core==2.8.0 google-cloud-storage==3.17.1
    google-resumable-media==2.11.0 googleapis-common-protos==1.76.0 hydra-core==1.3.8 invoke==3.0.3
    jmespath==1.1.0 librosa==0.11.0 loguru==0.7.3 multiprocess==0.70.19 num2words==0.5.14 omegaconf==2.3.1
    opentelemetry-api==1.45.2 opentelemetry-exporter-http-transport==0.66b2
    opentelemetry-exporter-otlp-common==0.66b2 opentelemetry-exporter-otlp-proto-common==1.45.2
    opentelemetry-exporter-otlp-proto-http==1.45.2 opentelemetry-proto==1.45.2 opentelemetry-sdk==1.45.2
    opentelemetry-semantic-conventions==0.66b2 orjson==3.13.0 paramiko==5.1.0 platformdirs==4.14.8
    pocketsphinx==5.0.4 pooch==1.9.0 pycares==5.2.1 pydantic==2.14.4 pydantic-core==2.50.5 pydub==0.25.1
    pynacl==1.6.2 pypinyin==0.55.0 pysubs2==1.8.1 pytz==2026.6 rjieba==0.2.2 runpod==1.10.0 s3transfer==0.19.3
    soundfile==0.14.0 soxr==1.1.0 tomli==2.5.0 tomlkit==0.14.0 torch-einops-utils==0.2.0 tqdm-loggable==0.4.1
    typing-inspection==0.4.5 unidecode==1.4.0 vocos==0.1.0 wandb==0.31.0 x-transformers==2.31.10
)
# pocketsphinx 5.0.4: the newest release with a cp312 wheel (uv.lock has 5.1.1 for Python 3.11)
PLATFORMS=()
for p in manylinux1 manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_27 manylinux_2_28 manylinux_2_31 \
         manylinux_2_34 manylinux_2_35; do
    PLATFORMS+=(--platform "${p}_x86_64")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d .whl "${WHEELS[@]}"
python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3 docopt==0.6.2 encodec==0.1.1

python3 - <<'EOF'
import glob, os, re, zipfile

def slim(pattern, drop):
    src = glob.glob(f".whl/{pattern}")[0]
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(src + ".tmp", "w", zipfile.ZIP_DEFLATED) as zo:
        for item in zi.infolist():
            if not drop(item.filename):
                zo.writestr(item, zi.read(item.filename))
    os.replace(src + ".tmp", src)

slim("pocketsphinx-*.whl", lambda n: n.endswith("en-us.lm.bin"))
slim("wandb-*.whl", lambda n: n.startswith("wandb/bin/"))
slim("botocore-*.whl", lambda n: bool(re.match(r"botocore/data/(?!s3/|sts/)[^/]+/", n)))
EOF
du -sh .whl
