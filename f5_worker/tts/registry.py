"""The models this worker can serve, by name: upstream's released checkpoints, the tiny test model, and the
deployer's own entries (``MODELS``, the registry file on the volume).

F5-TTS's community checkpoints (f5-tts's SHARED.md: French, German, Japanese, ...) each come as a
checkpoint, a ``vocab.txt`` and an architecture; a job names one by its entry's name. Entries are
checked when the worker starts, so a typo is an error naming the setting and the entry, not a job
failing hours later; whether the files exist is learnt when the model is first loaded.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from f5_worker.config import TINY_MODEL, Settings, SettingsError
from f5_worker.errors import JobError
from f5_worker.limits import LANGUAGE_TAG
from f5_worker.logs import hide_credentials, shorten
from f5_worker.tts.tiny_models import ensure_tiny_models
from f5_worker.tts.weights import (
    DEFAULT_VOCODER,
    HF_SCHEME,
    ModelFiles,
    ModelUnavailableError,
    not_a_file,
    resolve_file,
    resolve_vocoder,
    split_hub_location,
)

MODEL_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
YAML_SUFFIXES = (".yaml", ".yml")
TINY_CHECKPOINT = "random weights written into TINY_MODEL_DIR"  # what the tiny entry shows for its files

LanguageTag = Annotated[str, StringConstraints(pattern=rf"^{LANGUAGE_TAG}$", max_length=16)]


def released_config_names() -> list[str]:
    """The architectures f5-tts ships a config for (F5TTS_v1_Base, F5TTS_Base, E2TTS_Base, the Small ones)."""
    return sorted(p.name.removesuffix(".yaml") for p in files("f5_tts").joinpath("configs").iterdir()
                  if p.name.endswith(".yaml"))


class ModelEntry(BaseModel):
    """One servable model: what a ``models.json`` entry or a ``MODELS`` item holds (docs/models.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=rf"^{MODEL_NAME}$")
    architecture: str = Field(min_length=1, max_length=1000)  # a released config's name, or a YAML file's path
    checkpoint: str = Field(min_length=1, max_length=1000)  # hf://owner/repo/file or a path (.safetensors, .pt)
    vocab: str | None = Field(None, min_length=1, max_length=1000)  # None: f5-tts's default vocabulary
    languages: list[LanguageTag] = Field(default_factory=list, max_length=50)
    license: str = Field("unknown", max_length=100)
    vocoder: str = Field(DEFAULT_VOCODER, min_length=1, max_length=1000)  # a Vocos folder or hub repository

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data):
        """A location is shown wherever its file is named (a job's ``model`` error, the log), so one with a user
        name and password in a URL is refused at start, before any field could quote it."""
        if isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, str) and hide_credentials(value) != value:
                    raise ValueError(f"{shorten(str(key))} must not hold a user name or password in a URL "
                                     f"({shorten(value, 200)}); remove the part before '@'")
        return data

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value.lower().endswith(YAML_SUFFIXES) or value in released_config_names():
            return value
        raise ValueError(f"{value!r} is neither one of f5-tts's configs ({', '.join(released_config_names())}) "
                         "nor a .yaml file")

    @field_validator("checkpoint", "vocab")
    @classmethod
    def _file_location(cls, value: str | None) -> str | None:
        """A hub location that names no file is a typo: refused at start, not by the first job."""
        if value is not None and value.startswith(HF_SCHEME):
            try:
                _, filename = split_hub_location(value)
            except ModelUnavailableError as exc:
                raise ValueError(str(exc)) from None
            if not filename:
                raise ValueError(f"{value!r} names a repository, not a file in it; write hf://<owner>/<repo>/<file>")
        return value

    @field_validator("vocoder")
    @classmethod
    def _vocoder_location(cls, value: str) -> str:
        if value.startswith(HF_SCHEME):
            try:
                split_hub_location(value)
            except ModelUnavailableError as exc:
                raise ValueError(str(exc)) from None
        return value

    @property
    def is_tiny(self) -> bool:
        return self.name == TINY_MODEL

    def located_at(self, folder: Path) -> ModelEntry:
        """The entry with its relative file paths (checkpoint, vocab, a ``.yaml`` architecture, a vocoder
        folder) taken from ``folder``: a registry file names files beside it, wherever the worker runs."""
        def placed(location: str | None) -> str | None:
            if location is None or location.startswith(HF_SCHEME) or Path(location).is_absolute():
                return location
            return str(folder / location)

        changes = {"checkpoint": placed(self.checkpoint), "vocab": placed(self.vocab),
                   "vocoder": placed(self.vocoder)}
        if self.architecture.lower().endswith(YAML_SUFFIXES):
            changes["architecture"] = placed(self.architecture)
        return self.model_copy(update=changes)

    def public(self) -> dict:
        """What ``list_models`` shows of the entry (file locations stay internal)."""
        return {"name": self.name, "languages": list(self.languages), "license": self.license,
                "architecture": Path(self.architecture).stem if self.architecture.lower().endswith(YAML_SUFFIXES)
                else self.architecture}


def _released(name: str, repo: str, step: int, languages: list[str]) -> ModelEntry:
    return ModelEntry(name=name, architecture=name, checkpoint=f"{HF_SCHEME}{repo}/{name}/model_{step}.safetensors",
                      languages=languages, license="cc-by-nc-4.0")


# Upstream's released models, at the hub paths f5-tts's own inference code loads (f5_tts/api.py, infer_cli.py).
# Their vocabulary is f5-tts's default (None), which is the vocab.txt published next to each checkpoint.
BUILTIN_ENTRIES: tuple[ModelEntry, ...] = (
    _released("F5TTS_v1_Base", "SWivid/F5-TTS", 1250000, ["en", "zh"]),
    _released("F5TTS_Base", "SWivid/F5-TTS", 1200000, ["en", "zh"]),
    _released("E2TTS_Base", "SWivid/E2-TTS", 1200000, ["en", "zh"]),
    ModelEntry(name=TINY_MODEL, architecture="F5TTS_v1_Tiny.yaml", checkpoint=TINY_CHECKPOINT, license="none",
               vocoder=TINY_CHECKPOINT),  # random: speaks noise; for tests and smoke tests
)
BUILTIN_NAMES: tuple[str, ...] = tuple(e.name for e in BUILTIN_ENTRIES)


def parse_entries(text: str, source: str) -> list[ModelEntry]:
    """Entries from JSON: a list of entries, or an object of name -> entry. ``source`` names the setting or file
    in every error, with the entry (its position and name)."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"{source}: not valid JSON ({exc})") from None
    except RecursionError:  # the decoder recurses per level: no entry nests that deep
        raise SettingsError(f"{source}: not valid model entries (JSON nested too deeply to read)") from None
    if isinstance(raw, dict):
        items = []
        for index, (name, value) in enumerate(raw.items(), 1):
            if isinstance(value, dict) and value.get("name", name) != name:
                raise SettingsError(f"{source}: entry {index} ({name!r}): its name says {value['name']!r}")
            items.append((f"entry {index} ({name!r})", {"name": name, **value} if isinstance(value, dict) else value))
    elif isinstance(raw, list):
        items = [(f"entry {index}" + (f" ({item['name']!r})" if isinstance(item, dict) and "name" in item else ""),
                  item) for index, item in enumerate(raw, 1)]
    else:
        raise SettingsError(f"{source}: must be a JSON list of model entries, or an object of name -> entry")
    entries = []
    for label, item in items:
        if not isinstance(item, dict):
            raise SettingsError(f"{source}: {label}: must be a JSON object")
        try:
            entries.append(ModelEntry.model_validate(item))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])  # none: the entry as a whole (_no_credentials)
            problem = first["msg"].removeprefix("Value error, ").replace("Input should be ", "must be ")
            problem = problem.replace("Extra inputs are not permitted", "unknown field")
            raise SettingsError(f"{source}: {label}: {f'{where}: ' if where else ''}{problem}") from None
    return entries


class ModelRegistry:
    """Every model a job may name, and which one is the default."""

    def __init__(self, entries: list[ModelEntry], default: str):
        self.entries: dict[str, ModelEntry] = {}
        for entry in entries:
            if entry.name in self.entries:
                raise SettingsError(f"model {entry.name!r} is registered twice"
                                    + (" (it is a built-in model)" if entry.name in BUILTIN_NAMES else ""))
            self.entries[entry.name] = entry
        if default not in self.entries:
            raise SettingsError(f"DEFAULT_MODEL={default!r} is not a registered model; use one of "
                                f"{', '.join(self.entries)}, or register it (MODELS, docs/models.md)")
        self.default = default

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        """The built-in entries, then ``MODELS``, then the registry file; the default model's files may be
        replaced by ``MODEL_CKPT_PATH`` / ``MODEL_VOCAB_PATH``, and the default vocoder by ``VOCODER_PATH``."""
        entries = list(BUILTIN_ENTRIES)
        registered_by = {e.name: "it is a built-in model" for e in entries}

        def add(text: str, source: str, folder: Path | None = None) -> None:
            for index, entry in enumerate(parse_entries(text, source), 1):
                if folder is not None:
                    entry = entry.located_at(folder)
                if entry.name in registered_by:  # named where it is, like every other bad entry
                    raise SettingsError(f"{source}: entry {index} ({entry.name!r}): model {entry.name!r} is "
                                        f"registered twice ({registered_by[entry.name]})")
                registered_by[entry.name] = f"first in {source}, entry {index}"
                entries.append(entry)

        if settings.models_json:
            add(settings.models_json, "MODELS")
        path = settings.registry_file
        if path is not None and (path.is_file() or settings.model_registry_file is not None):
            problem = not_a_file(path)  # reading a device (/dev/zero) or a FIFO would never end
            if problem:
                raise SettingsError(f"MODEL_REGISTRY_FILE {path} {problem}")
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SettingsError(f"MODEL_REGISTRY_FILE {path}: cannot be read ({exc})") from None
            add(text, f"MODEL_REGISTRY_FILE {path}", path.parent)
        default = settings.default_model
        names = {e.name for e in entries}
        if default not in names and default in released_config_names() and settings.model_ckpt_path:
            # an f5-tts config given only by its checkpoint's path (benchmarks with random full-size weights)
            entries.append(ModelEntry(name=default, architecture=default, checkpoint=settings.model_ckpt_path))
        overridden = []
        for entry in entries:
            changes = {}
            if entry.name == default and settings.model_ckpt_path:
                changes["checkpoint"] = settings.model_ckpt_path
            if entry.name == default and settings.model_vocab_path:
                changes["vocab"] = settings.model_vocab_path
            if settings.vocoder_path and entry.vocoder == DEFAULT_VOCODER:
                changes["vocoder"] = settings.vocoder_path
            overridden.append(entry.model_copy(update=changes) if changes else entry)
        return cls(overridden, default)

    def names(self) -> list[str]:
        return list(self.entries)

    def entry(self, name: str, field: str = "model") -> ModelEntry:
        """The entry a job names; JobError listing the names when there is none."""
        found = self.entries.get(name)
        if found is None:
            raise JobError(field, f"unknown model {json.dumps(name[:64])}; use one of {', '.join(self.entries)}")
        return found

    def model_files(self, name: str, settings: Settings) -> ModelFiles:
        """The files of model ``name`` on this machine: found, or downloaded when allowed."""
        entry = self.entries[name]
        if entry.is_tiny:
            try:  # written on first use: on a read-only volume it cannot be
                return ensure_tiny_models(settings.tiny_models_path)
            except OSError as exc:
                raise ModelUnavailableError(f"{name}: its random weights cannot be written to "
                                            f"{settings.tiny_models_path} ({exc.strerror or exc}); set TINY_MODEL_DIR "
                                            "to a folder it may write") from None
        architecture = entry.architecture
        if architecture.lower().endswith(YAML_SUFFIXES):
            config_path = Path(architecture)
            problem = not_a_file(config_path)
            if problem:
                raise ModelUnavailableError(f"{name}: architecture {config_path} {problem}")
        else:
            config_path = Path(str(files("f5_tts").joinpath(f"configs/{architecture}.yaml")))
        checkpoint = resolve_file(entry.checkpoint, settings, f"{name} checkpoint")
        vocab = (resolve_file(entry.vocab, settings, f"{name} vocabulary") if entry.vocab is not None
                 else Path(str(files("f5_tts").joinpath("infer/examples/vocab.txt"))))
        vocoder = resolve_vocoder(entry.vocoder, settings)
        return ModelFiles(name=name, config_path=config_path, ckpt_path=checkpoint, vocab_path=vocab,
                          vocoder_dir=vocoder)


def resolve_model_files(settings: Settings, name: str | None = None) -> ModelFiles:
    """The files of model ``name`` (default: the default model) as the settings register it."""
    registry = ModelRegistry.from_settings(settings)
    return registry.model_files(name or registry.default, settings)
