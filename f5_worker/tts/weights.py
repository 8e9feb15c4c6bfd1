"""Where a model's files are: a path, RunPod's cached models, the Hugging Face cache, or a hub download.

A location is a path (on the volume, in the image) or ``hf://<owner>/<repo>/<file>``,
the notation of f5-tts's own inference code and of its community model cards
(SHARED.md). A hub file is looked up first among RunPod's cached models (the one
repository an endpoint's "Model" field puts on the host before the worker starts:
local disk, and no download billed), then in the Hugging Face cache (on the network
volume when mounted), and downloaded into that cache when allowed; offline with
nothing cached is an error that says what to provide.
"""

from __future__ import annotations

import logging
import stat
from dataclasses import dataclass
from pathlib import Path

from f5_worker.config import Settings
from f5_worker.logs import hide_credentials

log = logging.getLogger(__name__)

HF_SCHEME = "hf://"
VOCOS_REPO = "charactr/vocos-mel-24khz"
DEFAULT_VOCODER = f"{HF_SCHEME}{VOCOS_REPO}"  # a folder: config.yaml + pytorch_model.bin
VOCOS_FILES = ("config.yaml", "pytorch_model.bin")
WHAT_TO_DO = ("Run scripts/ops/prefetch_models.py with network access, give the entry a path on the volume "
              "(docs/models.md), or use DEFAULT_MODEL=tiny for a random test model.")


class ModelUnavailableError(RuntimeError):
    """The models cannot be set up as configured (weights missing, a bad setting); the message says what to do.

    It reaches the log and a job's ``model`` error: a URL it quotes (a hub's, in a download's error) has its
    user name and password hidden (logs.hide_credentials)."""

    def __init__(self, message: str):
        super().__init__(hide_credentials(message))


@dataclass(frozen=True)
class ModelFiles:
    name: str
    config_path: Path
    ckpt_path: Path
    vocab_path: Path
    vocoder_dir: Path


def split_hub_location(location: str) -> tuple[str, str]:
    """``hf://owner/repo/dir/file`` -> (``owner/repo``, ``dir/file``); the file part may be empty (a folder)."""
    parts = location.removeprefix(HF_SCHEME).strip("/").split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise ModelUnavailableError(f"{location!r} is not a hub location; write hf://<owner>/<repo>/<file>")
    return "/".join(parts[:2]), "/".join(parts[2:])


def cached_model_file(root: Path, repo: str, filename: str) -> Path | None:
    """``filename`` of ``repo`` among RunPod's cached models under ``root``, or None.

    RunPod's docs promise the hub's cache layout down to ``models--<org>--<name>/snapshots/<hash>/``, not the
    ``refs/main`` beside it that the hub's own lookup needs: so the snapshot ``refs/main`` names is tried
    first, then every snapshot there, the newest first."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.file_download import repo_folder_name

    try:
        snapshots = root / repo_folder_name(repo_id=repo, repo_type="model") / "snapshots"
        hashes = [p.name for p in sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)]
        for revision in (None, *hashes):
            found = try_to_load_from_cache(repo, filename, cache_dir=root, revision=revision)
            if isinstance(found, str):  # a regular file (links followed); not a cached "does not exist"
                return Path(found)
    except (OSError, ValueError):  # no such folder; a repository name the hub refuses
        pass
    return None


def hub_file(repo: str, filename: str, settings: Settings, what: str) -> Path:
    """A file of a hub repository: from RunPod's cached models, the model cache, or downloaded (unless offline)."""
    from huggingface_hub import hf_hub_download

    found = cached_model_file(settings.cached_models_dir, repo, filename)
    if found is not None:
        log.info("%s: %s/%s from the endpoint's cached models (%s)", what, repo, filename, found)
        return found
    cache = settings.model_cache_dir / "hub"
    try:
        return Path(hf_hub_download(repo, filename, cache_dir=cache, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or a broken cache entry): fall through to the download
        pass
    if settings.hf_offline:
        also = (f" nor in the endpoint's cached models {settings.cached_models_dir}"
                if settings.cached_models_dir.is_dir() else "")
        raise ModelUnavailableError(
            f"{what} ({repo}/{filename}) is not in the model cache {cache}{also} and HF_HUB_OFFLINE is set. "
            f"{WHAT_TO_DO}")
    try:
        log.info("downloading %s from %s/%s into %s", what, repo, filename, cache)
        return Path(hf_hub_download(repo, filename, cache_dir=cache))
    except Exception as exc:  # noqa: BLE001 - offline, refused, not found...: all say what to do instead
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelUnavailableError(
            f"{what} ({repo}/{filename}) is not cached in {cache} and could not be downloaded "
            f"({type(exc).__name__}: {first}). {WHAT_TO_DO}") from None


def resolve_file(location: str, settings: Settings, what: str) -> Path:
    """A file named by a path or an ``hf://`` location, present on this machine."""
    if location.startswith(HF_SCHEME):
        repo, filename = split_hub_location(location)
        if not filename:
            raise ModelUnavailableError(f"{what}: {location!r} names a repository, not a file in it")
        return hub_file(repo, filename, settings, what)
    path = Path(location)
    problem = not_a_file(path)
    if problem:
        raise ModelUnavailableError(f"{what}: {path} {problem}")
    return path


def not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a model's file, or None when it is a regular file.

    Reading a device (``/dev/zero``) or a FIFO would never end, so anything but a regular file is
    refused before it is opened, and the message says what is there instead of "does not exist".
    """
    try:
        mode = path.stat().st_mode  # follows links: what a read would open
    except FileNotFoundError:
        return "is a link to a file that does not exist" if path.is_symlink() else "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or type(exc).__name__})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (a named pipe), not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file"
    return "is a socket or other special file, not a file"


def resolve_vocoder(location: str, settings: Settings) -> Path:
    """The folder of a Vocos vocoder (config.yaml + pytorch_model.bin): a path, or a hub repository."""
    if location.startswith(HF_SCHEME):
        repo, sub = split_hub_location(location)
        prefix = f"{sub}/" if sub else ""
        found = [hub_file(repo, prefix + name, settings, f"Vocos vocoder {name}") for name in VOCOS_FILES]
        return found[0].parent
    folder = Path(location)
    if not folder.is_dir():
        problem = not_a_file(folder) or f"is a file, not a folder of {' and '.join(VOCOS_FILES)}"
        raise ModelUnavailableError(f"vocoder {folder} {problem}")
    problems = {name: not_a_file(folder / name) for name in VOCOS_FILES}
    missing = [name for name, problem in problems.items() if problem == "does not exist"]
    if missing:
        raise ModelUnavailableError(f"vocoder {folder} lacks {', '.join(missing)}")
    for name, problem in problems.items():
        if problem:
            raise ModelUnavailableError(f"vocoder {folder / name} {problem}")
    return folder
