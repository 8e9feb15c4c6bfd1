#!/usr/bin/env python3
"""Download the files of registered F5-TTS models (checkpoint, vocabulary, Vocos vocoder), and on request
the CTC aligners' weights, into the model cache on the network volume, ahead of the first job.

Workers then load from the volume instead of each downloading ~1.4 GB at first
use (and may run with HF_HUB_OFFLINE=1). Run it once per volume, e.g. from a
pod with the volume mounted:

    NETWORK_VOLUME_PATH=/workspace python3 scripts/ops/prefetch_models.py [MODEL ...]

MODEL is a registered model's name (docs/models.md: the built-in ones, MODELS, the volume's
models.json); the default is the default model (DEFAULT_MODEL). The tiny test model is written
locally and has nothing to fetch; files an entry names by a path are checked, not fetched.

Started with a python lacking the dependencies, it first sets up the venv with
setup_network_venv.py (the same one the workers use) and re-runs itself there.
The caches are those the worker reads: ``HF_HOME`` (default
``<volume>/f5-worker/cache/huggingface``) and ``TORCH_HOME`` (default
``<volume>/f5-worker/cache/torch``).

Changes: downloads into those caches (nothing with --dry-run); without the dependencies, may build the
worker venv first, as the workers do.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parents[2]
MARK = "F5_PREFETCH_REEXEC"


def reexec_in_venv() -> None:
    """Set up (or reuse) the worker venv, then run this command again with its python."""
    if os.environ.get(MARK):
        sys.exit("prefetch: the worker venv still lacks huggingface_hub/torch or f5_worker; see the setup log above")
    setup = subprocess.run([sys.executable, str(APP_DIR / "setup_network_venv.py")], stdout=subprocess.PIPE,
                           text=True)
    if setup.returncode != 0:
        sys.exit(setup.returncode)
    env = dict(os.environ, **{MARK: "1"})
    for line in setup.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    python = env["F5_VENV_PYTHON"]
    os.execve(python, [python, __file__, *sys.argv[1:]], env)


def volume_cache_defaults() -> None:
    """HF_HOME and TORCH_HOME on the volume when mounted, as setup_network_venv.py exports them."""
    volume = os.environ.get("NETWORK_VOLUME_PATH", "/runpod-volume").strip()
    if volume and Path(volume).is_dir():
        root = Path(volume) / "f5-worker" / "cache"
        os.environ.setdefault("HF_HOME", str(root / "huggingface"))
        os.environ.setdefault("TORCH_HOME", str(root / "torch"))


def model_items(models: list[str], hub_cache: str) -> list[tuple[str, str, str]]:
    """(what, source, destination) for the files of the registered models named, each file once."""
    from f5_worker.config import SettingsError, get_settings
    from f5_worker.tts.registry import ModelRegistry
    from f5_worker.tts.weights import HF_SCHEME, VOCOS_FILES

    try:
        registry = ModelRegistry.from_settings(get_settings())
    except SettingsError as exc:
        raise SystemExit(f"prefetch: {exc}") from None
    items: list[tuple[str, str, str]] = []
    for name in models or [registry.default]:
        if name not in registry.entries:
            raise SystemExit(f"prefetch: {name!r} is not a registered model; known: {', '.join(registry.names())}")
        entry = registry.entries[name]
        if entry.is_tiny:
            print(f"prefetch: {name} is written locally (random weights); nothing to fetch", file=sys.stderr)
            continue
        files = [(f"{name} checkpoint", entry.checkpoint)]
        if entry.vocab is not None:
            files.append((f"{name} vocabulary", entry.vocab))
        vocoder = entry.vocoder.rstrip("/")
        files += [(f"Vocos {file}", f"{vocoder}/{file}") for file in VOCOS_FILES]
        for what, source in files:
            if all(source != known for _, known, _ in items):
                items.append((what, source, hub_cache if source.startswith(HF_SCHEME) else "(a path: checked)"))
    return items


def plan(models: list[str], multilingual: bool, aligner: bool = True, english_ctc: bool = False
         ) -> list[tuple[str, str, str]]:
    """(what, source, destination) for every file to fetch.

    English CTC weights only when asked (``--english-ctc``): ``ALIGNER=auto`` aligns English with sphinx,
    the backend whose accuracy is measured (docs/timings.md), so they would only serve ``ALIGNER=ctc``.
    """
    from f5_worker.config import get_settings

    settings = get_settings()
    items = model_items(models, str(settings.model_cache_dir / "hub"))
    if not aligner or not (english_ctc or multilingual):
        return items
    import torch

    torch_cache = str(Path(torch.hub.get_dir()) / "checkpoints")
    if english_ctc:
        items.append(("CTC aligner (English, WAV2VEC2_ASR_BASE_960H)", "torchaudio://en", torch_cache))
    if multilingual:
        items.append(("CTC aligner (multilingual, MMS_FA, CC-BY-NC weights)", "torchaudio://mul", torch_cache))
    return items


def fetch(source: str, destination: str) -> Path:
    if not source.startswith(("hf://", "torchaudio://")):  # a path an entry names: present or not
        if not Path(source).is_file():
            raise FileNotFoundError(f"{source} does not exist")
        return Path(source)
    if source.startswith("hf://"):
        from huggingface_hub import hf_hub_download

        repo_and_file = source.removeprefix("hf://").split("/")
        repo, filename = "/".join(repo_and_file[:2]), "/".join(repo_and_file[2:])
        return Path(hf_hub_download(repo, filename, cache_dir=destination))
    language = source.removeprefix("torchaudio://")
    from f5_worker.alignment import ctc

    ctc._bundle(language).get_model()  # torchaudio downloads into $TORCH_HOME/hub/checkpoints
    found = ctc.find_weights(None, language)
    if found is None:
        raise RuntimeError(f"torchaudio downloaded the {language} aligner, but not into {destination}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help="registered models to fetch (default: the default model, DEFAULT_MODEL)")
    parser.add_argument("--model", action="append", default=[], help="the same as a MODEL argument")
    parser.add_argument("--multilingual", action="store_true",
                        help="also fetch the MMS_FA aligner for non-English text (CC-BY-NC weights)")
    parser.add_argument("--english-ctc", action="store_true",
                        help="also fetch the English CTC aligner (only ALIGNER=ctc uses it; auto aligns English "
                             "with sphinx)")
    parser.add_argument("--no-aligner", action="store_true",
                        help="no aligner weights at all, whatever else is asked")
    parser.add_argument("--dry-run", action="store_true", help="print what would be fetched and where")
    args = parser.parse_args(argv)

    try:  # the worker's venv holds the dependencies; setup_network_venv.py exports PYTHONPATH for the code
        import huggingface_hub  # noqa: F401

        import f5_worker  # noqa: F401
    except ImportError:
        reexec_in_venv()
    volume_cache_defaults()

    failures = 0
    for what, source, destination in plan(args.models + args.model, args.multilingual, aligner=not args.no_aligner,
                                               english_ctc=args.english_ctc):
        if args.dry_run:
            print(f"would fetch {what}: {source} -> {destination}")
            continue
        print(f"fetching {what}: {source} -> {destination}", file=sys.stderr, flush=True)
        try:
            path = fetch(source, destination)
        except Exception as exc:  # noqa: BLE001 - report every failure, then exit non-zero
            failures += 1
            first = str(exc).splitlines()[0] if str(exc) else ""
            print(f"prefetch: FAILED {what} from {source}: {type(exc).__name__}: {first}", file=sys.stderr)
            continue
        print(f"  ok: {path} ({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    if failures:
        print(f"prefetch: {failures} download(s) failed; check network access to huggingface.co and "
              "download.pytorch.org, and unset HF_HUB_OFFLINE", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
