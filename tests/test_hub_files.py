"""The RunPod Hub's files: .runpod/hub.json and .runpod/tests.json checked against the Hub's documented
format (docs.runpod.io, "Hub publishing guide": its field tables, GPU pools and GPU ids), and against what
this image supports; the Hub's Dockerfile and handler.py where the Hub looks for them. And the library versions
that docs/architecture.md says the worker's reaches into library internals were checked on: those uv.lock
installs in the image."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from f5_worker.config import ALIGNER_KINDS, SERVE_MODES, Settings
from f5_worker.schema import parse_job
from f5_worker.tts.registry import BUILTIN_NAMES

HUB_DIR = REPO_ROOT / ".runpod"
CATEGORIES = {"audio", "embedding", "language", "video", "image"}
INPUT_TYPES = {"string", "number", "boolean", "huggingface"}
# GPU pools for serverless endpoints, and the GPU ids in each (RunPod's "GPU types" reference)
GPU_POOLS = {
    "AMPERE_16": {"NVIDIA RTX A4000", "NVIDIA RTX 4000 Ada Generation", "NVIDIA RTX 2000 Ada Generation"},
    "AMPERE_24": {"NVIDIA RTX A4500", "NVIDIA RTX A5000", "NVIDIA GeForce RTX 3090"},
    "ADA_24": {"NVIDIA L4", "NVIDIA GeForce RTX 4090"},
    "ADA_32_PRO": {"NVIDIA GeForce RTX 5090"},
    "AMPERE_48": {"NVIDIA A40", "NVIDIA RTX A6000"},
    "ADA_48_PRO": {"NVIDIA L40S", "NVIDIA L40", "NVIDIA RTX 6000 Ada Generation"},
    "AMPERE_80": {"NVIDIA A100 80GB PCIe", "NVIDIA A100-SXM4-80GB"},
    "ADA_80_PRO": {"NVIDIA H100 PCIe", "NVIDIA H100 80GB HBM3", "NVIDIA H100 NVL"},
    "HOPPER_141": {"NVIDIA H200"},
}
GPU_IDS = set().union(*GPU_POOLS.values())
# The CUDA versions RunPod accepts: the enum of allowedCudaVersions in its REST API's endpoint schema
# (EndpointCreateInput, docs.runpod.io/api-reference). Matching is exact, so "12" or "12.8.1" would be
# refused or match no host (docs/deployment.md, "RunPod Hub").
RUNPOD_CUDA_VERSIONS = ("13.0", "12.9", "12.8", "12.7", "12.6", "12.5", "12.4", "12.3", "12.2", "12.1", "12.0",
                        "11.8")


def load(name: str) -> dict:
    return json.loads((HUB_DIR / name).read_text())


def image_cuda_version() -> tuple[int, int]:
    """The CUDA version of the image's base, e.g. nvidia/cuda:12.8.1-runtime-... -> (12, 8)."""
    match = re.search(r"^ARG BASE_IMAGE=nvidia/cuda:(\d+)\.(\d+)", (HUB_DIR / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "the Hub's image is built on an nvidia/cuda base"
    return int(match.group(1)), int(match.group(2))


def version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


# --- the Hub's documented format ----------------------------------------------------------------------

def hub_json_problems(hub: dict) -> list[str]:
    """What the Hub's hub.json reference would refuse, as messages; [] when none."""
    problems = []
    required = {"title": str, "description": str, "type": str, "category": str, "config": dict}
    for key, kind in required.items():
        if not isinstance(hub.get(key), kind) or not hub[key]:
            problems.append(f"{key}: required, a non-empty {kind.__name__}")
    problems += [f"{key}: not a hub.json field" for key in set(hub) - set(required) - {"iconUrl"}]
    if "iconUrl" in hub and not re.match(r"^https://\S+$", str(hub["iconUrl"])):
        problems.append("iconUrl: must be a URL")
    if hub.get("type") != "serverless":
        problems.append("type: must be 'serverless'")
    if hub.get("category") not in CATEGORIES:
        problems.append(f"category: one of {sorted(CATEGORIES)}")
    config = hub.get("config") if isinstance(hub.get("config"), dict) else {}
    known = {"runsOn", "containerDiskInGb", "cpuFlavor", "gpuCount", "gpuIds", "allowedCudaVersions", "env", "presets"}
    problems += [f"config.{key}: not a config field" for key in set(config) - known]
    if config.get("runsOn") not in ("GPU", "CPU"):
        problems.append("config.runsOn: 'GPU' or 'CPU'")
    if not isinstance(config.get("containerDiskInGb"), int) or config["containerDiskInGb"] <= 0:
        problems.append("config.containerDiskInGb: a positive whole number of GB")
    if config.get("runsOn") == "GPU":
        if not isinstance(config.get("gpuCount"), int) or config["gpuCount"] < 1:
            problems.append("config.gpuCount: a whole number, at least 1")
        ids = config.get("gpuIds")
        if not isinstance(ids, str) or not ids:
            problems.append("config.gpuIds: comma-separated pool ids")
        else:
            for item in ids.split(","):
                if item not in GPU_POOLS and not (item.startswith("-") and item[1:] in GPU_IDS):
                    problems.append(f"config.gpuIds: {item!r} is neither a GPU pool nor a negated GPU id")
    elif config.get("runsOn") == "CPU" and not isinstance(config.get("cpuFlavor"), str):
        problems.append("config.cpuFlavor: required on CPU")
    problems += cuda_versions_problems("config.allowedCudaVersions", config.get("allowedCudaVersions", []))
    env = config.get("env", [])
    keys = [item.get("key") for item in env if isinstance(item, dict)]
    if len(keys) != len(env) or len(set(keys)) != len(keys) or not all(isinstance(k, str) and k for k in keys):
        problems.append("config.env: items with a unique non-empty key")
    for item in env:
        problems += env_item_problems(item)
    for preset in config.get("presets", []):
        if not isinstance(preset.get("name"), str) or not isinstance(preset.get("defaults"), dict):
            problems.append("config.presets: items with a name and defaults")
            continue
        problems += [f"preset {preset['name']!r}: {key} is not in config.env"
                     for key in set(preset["defaults"]) - set(keys)]
    return problems


def env_item_problems(item: dict) -> list[str]:
    key = item.get("key")
    if set(item) == {"key", "value"}:
        return [] if isinstance(item["value"], str) else [f"env {key}: a static value is a string"]
    if set(item) != {"key", "input"} or not isinstance(item["input"], dict):
        return [f"env {key}: has either a value or an input"]
    spec = item["input"]
    problems = []
    for field in ("name", "type", "description"):
        if not isinstance(spec.get(field), str) or not spec[field]:
            problems.append(f"env {key}: input.{field} required")
    if spec.get("type") not in INPUT_TYPES:
        problems.append(f"env {key}: input.type one of {sorted(INPUT_TYPES)}")
    allowed = {"name", "type", "description", "default", "advanced", "options", "min", "max", "trueValue",
               "falseValue"}
    problems += [f"env {key}: input.{field} is not an input field" for field in set(spec) - allowed]
    default = spec.get("default")
    if spec.get("type") == "number":
        if not all(isinstance(spec.get(f, 0), (int, float)) for f in ("min", "max", "default")):
            problems.append(f"env {key}: numbers for min, max and default")
        elif not spec.get("min", default) <= default <= spec.get("max", default):
            problems.append(f"env {key}: default outside min..max")
    if spec.get("type") == "boolean" and not isinstance(default, bool):
        problems.append(f"env {key}: a boolean default")
    if "options" in spec:
        values = [o.get("value") for o in spec["options"]]
        if not all(set(o) == {"label", "value"} for o in spec["options"]):
            problems.append(f"env {key}: options are label and value")
        if default not in values:
            problems.append(f"env {key}: default {default!r} is not one of the options")
    return problems


def cuda_versions_problems(where: str, versions) -> list[str]:
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
        return [f"{where}: a list of versions such as \"12.8\""]
    return [f"{where}: {v!r} is not a CUDA version RunPod offers" for v in versions if v not in RUNPOD_CUDA_VERSIONS]


def problems_in_tests_json(tests: dict) -> list[str]:
    """What the Hub's tests.json reference would refuse; [] when none."""
    problems = [f"{key}: not a tests.json field" for key in set(tests) - {"tests", "config"}]
    cases = tests.get("tests")
    if not isinstance(cases, list) or not cases:
        return problems + ["tests: a non-empty list"]
    names = [case.get("name") for case in cases]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        problems.append("tests: each with a unique name")
    for case in cases:
        problems += [f"test {case.get('name')}: {key} is not a test field" for key in set(case) - {"name", "input", "timeout"}]
        if not isinstance(case.get("input"), dict):
            problems.append(f"test {case.get('name')}: input is an object")
        if "timeout" in case and (not isinstance(case["timeout"], int) or case["timeout"] <= 0):
            problems.append(f"test {case.get('name')}: timeout is a positive whole number of milliseconds")
    config = tests.get("config", {})
    known = {"gpuTypeId", "gpuCount", "cpuFlavor", "env", "allowedCudaVersions"}
    problems += [f"config.{key}: not a test config field" for key in set(config) - known]
    if "gpuTypeId" in config:
        if config["gpuTypeId"] not in GPU_IDS:
            problems.append(f"config.gpuTypeId: {config['gpuTypeId']!r} is not a GPU id")
        if not isinstance(config.get("gpuCount"), int) or config["gpuCount"] < 1:
            problems.append("config.gpuCount: required with gpuTypeId")
    elif not isinstance(config.get("cpuFlavor"), str):
        problems.append("config: gpuTypeId and gpuCount, or cpuFlavor")
    for item in config.get("env", []):
        if set(item) != {"key", "value"} or not all(isinstance(v, str) for v in item.values()):
            problems.append(f"config.env: {item} is not a key and a string value")
    problems += cuda_versions_problems("config.allowedCudaVersions", config.get("allowedCudaVersions", []))
    return problems


def test_hub_json_has_the_documented_format():
    assert hub_json_problems(load("hub.json")) == []


def test_tests_json_has_the_documented_format():
    assert problems_in_tests_json(load("tests.json")) == []


@pytest.mark.parametrize("change, problem", [
    (lambda h: h.pop("title"), "title: required"),
    (lambda h: h.update(category="speech"), "category:"),
    (lambda h: h["config"].update(gpuIds="ADA_24,H200"), "'H200' is neither"),
    (lambda h: h["config"].update(allowedCudaVersions=["12"]), "allowedCudaVersions"),
    (lambda h: h["config"].update(allowedCudaVersions=["13.1", "12.8"]), "'13.1' is not a CUDA version RunPod"),
    (lambda h: h["config"]["env"][0]["input"].update(default="nope"), "is not one of the options"),
    (lambda h: h["config"]["presets"][0]["defaults"].update(NOT_OFFERED="1"), "NOT_OFFERED is not in config.env"),
])
def test_the_hub_json_check_refuses_what_the_hub_would(change, problem):
    hub = load("hub.json")
    change(hub)
    assert any(problem in p for p in hub_json_problems(hub)), hub_json_problems(hub)


@pytest.mark.parametrize("change, problem", [
    (lambda t: t["tests"].append(dict(t["tests"][0])), "unique name"),
    (lambda t: t["tests"][0].update(timeout="10m"), "timeout"),
    (lambda t: t["config"].update(gpuTypeId="RTX 4090"), "is not a GPU id"),
    (lambda t: t["config"]["env"].append({"key": "X", "value": 1}), "string value"),
    (lambda t: t["config"].update(allowedCudaVersions=[12.8]), "allowedCudaVersions"),
])
def test_the_tests_json_check_refuses_what_the_hub_would(change, problem):
    tests = load("tests.json")
    change(tests)
    assert any(problem in p for p in problems_in_tests_json(tests)), problems_in_tests_json(tests)


# --- what this worker and its image support -------------------------------------------------------------

def test_the_gpus_offered_include_the_measured_class_and_small_cards():
    """F5-TTS needs about 2 GB of GPU memory: every pool fits it; the H200 is the one measured, the H100 its
    class, and the 16 GB pool the cheapest."""
    pools = load("hub.json")["config"]["gpuIds"].split(",")
    assert {"HOPPER_141", "ADA_80_PRO", "AMPERE_16", "ADA_24"} <= set(pools)
    test_gpu = load("tests.json")["config"]["gpuTypeId"]
    assert any(test_gpu in GPU_POOLS[pool] for pool in pools), "the Hub tests on a GPU the listing offers"


def test_cuda_versions_are_those_the_image_runs_on():
    """The image's torch is built for its base's CUDA version; a host driver older than that cannot run it."""
    needed = image_cuda_version()
    for name in ("hub.json", "tests.json"):
        versions = [version(v) for v in load(name)["config"]["allowedCudaVersions"]]
        assert needed in versions and min(versions) == needed, name
    assert set(load("tests.json")["config"]["allowedCudaVersions"]) <= set(load("hub.json")["config"]["allowedCudaVersions"])


def test_the_env_offered_is_what_the_worker_reads():
    config_source = (REPO_ROOT / "f5_worker" / "config.py").read_text()
    env = {item["key"]: item for item in load("hub.json")["config"]["env"]}
    assert {key for key in env if f'"{key}"' not in config_source} == set()
    options = {key: [o["value"] for o in item["input"].get("options", [])] for key, item in env.items()}
    assert options["DEFAULT_MODEL"] == list(BUILTIN_NAMES), "the registry's built-in models, in its order"
    assert options["ALIGNER"] == list(ALIGNER_KINDS)
    assert env["DEFAULT_MODEL"]["input"]["default"] == "F5TTS_v1_Base"
    defaults = {key: item["input"].get("default") for key, item in env.items()}
    assert options["SERVE"] == list(SERVE_MODES) and defaults["SERVE"] == Settings().serve
    assert defaults["CACHED_MODELS_DIR"] == str(Settings().cached_models_dir)
    # PORT_HEALTH as RunPod defaults it, PORT's value: the worker's own 0 ("PORT's") is no port to RunPod
    assert defaults["PORT"] == defaults["PORT_HEALTH"] == Settings().port
    for key in ("PORT", "PORT_HEALTH"):
        assert (env[key]["input"]["min"], env[key]["input"]["max"]) == (1, 65535), key


def test_the_hub_tests_are_valid_jobs_on_the_default_model_without_a_volume():
    tests = load("tests.json")
    env = {item["key"]: item["value"] for item in tests["config"]["env"]}
    assert env.get("DEFAULT_MODEL", "F5TTS_v1_Base") == "F5TTS_v1_Base", "the Hub tests the real model"
    assert "NETWORK_VOLUME_PATH" not in env
    assert env.get("SERVE", "queue") == "queue", "the Hub's tests are queue jobs"
    for case in tests["tests"]:
        parse_job(case["input"])  # raises on a job the worker would refuse
    actions = {case["input"].get("action", "synthesize") for case in tests["tests"]}
    assert {"synthesize", "health"} <= actions
    models = {case["input"].get("model", "default") for case in tests["tests"]}
    assert {"default", "tiny"} <= models, "the real model, and the tiny one that needs no download"
    # the first job waits for a cold worker: the weights' download (about 1.4 GB) and the warm-up
    assert tests["tests"][0]["timeout"] >= 600_000


def test_the_hub_builds_the_baked_image_and_finds_a_handler():
    """The Hub builds .runpod/Dockerfile (it takes precedence over the root) and looks for handler.py."""
    hub_file = (HUB_DIR / "Dockerfile").read_text()
    main_file = (REPO_ROOT / "Dockerfile.runpod").read_text()

    def body(text: str) -> str:
        return text[text.index("ARG BASE_IMAGE"):]

    assert "ARG BAKE_VENV=1" in body(hub_file) and "ARG BAKE_VENV=0" in body(main_file)
    assert body(hub_file).replace("ARG BAKE_VENV=1", "ARG BAKE_VENV=0") == body(main_file)
    # the boot log's image label: a build argument, else pyproject's version (scripts/boot/start.sh)
    assert "ARG F5_IMAGE_VERSION=\nENV F5_IMAGE_VERSION=${F5_IMAGE_VERSION}\n" in main_file
    assert (HUB_DIR / "handler.py").is_file() and (REPO_ROOT / "README.md").is_file()


def test_the_hubs_handler_runs_the_worker(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(HUB_DIR / "handler.py"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "runpod_handler.py" in proc.stdout and list(Path(tmp_path).iterdir()) == []
    assert "sys.path." not in (HUB_DIR / "handler.py").read_text()  # it runs the handler; it does not patch the path


INTERNALS_SECTION = "## Where the worker depends on a library's internals"


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    return {package["name"]: package["version"] for package in lock["package"] if "version" in package}


def checked_versions() -> dict[str, str]:
    """The "Checked on:" line of docs/architecture.md's section on library internals, as {name: version}."""
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    section = text.split(INTERNALS_SECTION, 1)[1].split("\n## ", 1)[0]
    line = re.search(r"^Checked on: (.+)\.$", section, re.MULTILINE).group(1)
    return dict(item.split(" ") for item in line.split(", "))


def test_the_libraries_whose_internals_the_worker_uses_are_at_the_versions_checked():
    """An upgrade in uv.lock must come with a new look at what each patch touches (docs/architecture.md)."""
    checked, locked = checked_versions(), locked_versions()
    assert {"runpod", "f5-tts", "torch", "torchaudio", "uvicorn", "espeakng-loader"} <= checked.keys()
    assert {name: locked.get(name) for name in checked} == checked


def hub_value(spec: dict, value) -> str:
    """An input's value as it reaches the worker's environment: text; a boolean as its trueValue or falseValue."""
    if spec["type"] == "boolean":
        return spec.get("trueValue", "true") if value else spec.get("falseValue", "false")
    return str(value)


def test_the_hub_defaults_are_the_workers_and_every_value_it_offers_is_taken(monkeypatch):
    """Deployed from the Hub with nothing changed, a worker reads each variable as its own default (PORT_HEALTH
    apart: RunPod's 80, PORT's, where the worker's own 0 means "PORT's"); and every option and bound the Hub
    offers starts the worker, a bucket's link life included (S3 signs links for at most 7 days)."""
    import dataclasses

    from f5_worker.config import MAX_URL_EXPIRY_S, StorageSettings, get_settings
    from f5_worker.tts.loading import pick_dtype

    env = {item["key"]: item["input"] for item in load("hub.json")["config"]["env"]}
    for key in set(env) | {"WORKER_MODEL", "NETWORK_VOLUME_PATH"}:
        monkeypatch.delenv(key, raising=False)
    for key, spec in env.items():
        monkeypatch.setenv(key, hub_value(spec, spec["default"]))
    assert dataclasses.replace(get_settings(), port_health=Settings().port_health) == Settings()
    assert StorageSettings.from_env().bucket is None  # the bucket's variables are left empty
    base = {key: hub_value(spec, spec["default"]) for key, spec in env.items()}
    base.update(BUCKET_ENDPOINT_URL="http://127.0.0.1:9/voices", BUCKET_ACCESS_KEY_ID="key-id",
                BUCKET_SECRET_ACCESS_KEY="key-secret")
    for key, value in base.items():
        monkeypatch.setenv(key, value)
    assert StorageSettings.from_env().url_expiry_s == 3600 == env["URL_EXPIRY_S"]["default"]
    assert env["URL_EXPIRY_S"]["max"] == MAX_URL_EXPIRY_S
    for key, spec in env.items():
        offered = [o["value"] for o in spec.get("options", [])] + [spec[b] for b in ("min", "max") if b in spec]
        for value in offered + ([True, False] if spec["type"] == "boolean" else []):
            monkeypatch.setenv(key, hub_value(spec, value))
            settings = get_settings()
            assert StorageSettings.from_env().bucket is not None, (key, value)
            pick_dtype(settings.dtype, "cuda")
        monkeypatch.setenv(key, base[key])
