"""config.py, the worker's one reader of the environment, and setup_network_venv.py, the boot's: they
must read the same names the same way, and docs/configuration.md must list every name either reads."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from f5_worker import config

NAME = re.compile(r"""["']([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)["']""")  # quoted names like NETWORK_VOLUME_PATH


def variables_read(path: Path) -> set[str]:
    return set(NAME.findall(path.read_text()))


@pytest.fixture
def boot(monkeypatch):
    name = "setup_venv_for_config_test"
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "setup_network_venv.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def clean_env(monkeypatch):
    for name in variables_read(REPO_ROOT / "f5_worker" / "config.py") | variables_read(REPO_ROOT / "setup_network_venv.py"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_pause_setting_must_be_seconds(clean_env):
    clean_env.setenv("MAX_PAUSE_S", "-1")
    with pytest.raises(config.SettingsError, match="MAX_PAUSE_S must be a number of seconds, 0 or more"):
        config.get_settings()


def test_unset_variables_give_the_written_defaults(clean_env):
    """Each default is written once: reading an empty environment gives exactly Settings()'s field defaults."""
    assert config.get_settings() == config.Settings()
    storage = config.StorageSettings.from_env()
    assert storage.bucket is None and storage.bucket_error is None
    assert storage.url_expiry_s == config.DEFAULT_URL_EXPIRY_S


def test_each_default_is_written_once_as_the_fields_default(clean_env):
    """Every field of Settings is read through one row of config.VARIABLES, whose reader gets the field's own
    default: with each default moved, an empty environment reads the moved ones, so get_settings keeps no copy
    of any default (a copy would still give the old value here)."""
    names = [f.name for f in dataclasses.fields(config.Settings)]
    assert list(config.VARIABLES) == names
    settings = config.get_settings()
    for name in names:
        assert getattr(settings, name) == getattr(config.Settings(), name), name

    def moved(f: dataclasses.Field):
        d = f.default
        if isinstance(d, bool):
            return not d
        if isinstance(d, int | float):
            return d + 1
        if isinstance(d, Path) or "Path" in str(f.type):
            return Path("/moved") / f.name
        return {"device": "cpu", "aligner": "ctc", "serve": "http"}.get(f.name, f"moved-{f.name}")

    original = config.Settings
    other = dataclasses.make_dataclass(
        "MovedSettings", [(f.name, f.type, dataclasses.field(default=moved(f))) for f in dataclasses.fields(original)],
        bases=(original,), frozen=True)
    clean_env.setattr(config, "Settings", other)
    read = config.get_settings()
    assert {n: getattr(read, n) for n in names} == {n: getattr(other(), n) for n in names}
    assert all(getattr(read, n) != getattr(original(), n) for n in names)  # every default was moved


def test_the_configuration_table_has_a_row_for_every_variable_the_settings_read():
    rows = {line.split("|")[1].strip() for line in (REPO_ROOT / "docs" / "configuration.md").read_text().splitlines()
            if line.startswith("| `")}
    read = {name for name, _ in config.VARIABLES.values()} | set(config.OLDER_NAMES.values())
    assert sorted(f"`{name}`" for name in read if f"`{name}`" not in rows) == []


def test_the_reference_keep_seconds_are_read_and_bounded(clean_env):
    assert config.get_settings().ref_audio_keep_seconds == config.DEFAULT_REF_AUDIO_KEEP_SECONDS == 12.0
    clean_env.setenv("REF_AUDIO_KEEP_SECONDS", "8.5")
    assert config.get_settings().ref_audio_keep_seconds == 8.5
    for bad in ("0", "-3", "inf", "nan"):
        clean_env.setenv("REF_AUDIO_KEEP_SECONDS", bad)
        with pytest.raises(config.SettingsError, match=f"REF_AUDIO_KEEP_SECONDS must be a positive number of "
                                                       f"seconds \\(got '{bad}'\\)"):
            config.get_settings()
    clean_env.setenv("REF_AUDIO_KEEP_SECONDS", "twelve")
    with pytest.raises(config.SettingsError, match="REF_AUDIO_KEEP_SECONDS must be a number"):
        config.get_settings()
    clean_env.setenv("REF_AUDIO_KEEP_SECONDS", "30")
    clean_env.setenv("MAX_REF_AUDIO_SECONDS", "20")
    with pytest.raises(config.SettingsError, match=r"REF_AUDIO_KEEP_SECONDS \(30\) must be at most "
                                                   r"MAX_REF_AUDIO_SECONDS \(20\)"):
        config.get_settings()
    clean_env.setenv("REF_AUDIO_KEEP_SECONDS", "20")
    assert config.get_settings().ref_audio_keep_seconds == 20.0
    clean_env.delenv("REF_AUDIO_KEEP_SECONDS")  # unset, the default is not held to a lower MAX_REF_AUDIO_SECONDS
    clean_env.setenv("MAX_REF_AUDIO_SECONDS", "10")
    assert config.get_settings().ref_audio_keep_seconds == 12.0


@pytest.mark.parametrize("field, variable, value, expected", [
    ("max_concurrency", "MAX_CONCURRENCY", "7", 7),
    ("download_timeout_s", "DOWNLOAD_TIMEOUT_S", "2.5", 2.5),
    ("cuda_graphs", "CUDA_GRAPHS", "0", False),
    ("asr_model", "ASR_MODEL", "openai/whisper-tiny", "openai/whisper-tiny"),
    ("result_dump_dir", "RESULT_DUMP_DIR", "out/results", Path("out/results")),
    ("hf_home", "HF_HOME", " /cache/hf\n", Path("/cache/hf")),  # as pasted; the boot exports it without them
    ("caption_speaker_prefix", "CAPTION_SPEAKER_PREFIX", "0", False),
    ("max_pause_s", "MAX_PAUSE_S", "30", 30.0),
    ("paragraph_pause_s", "PARAGRAPH_PAUSE_S", "0", 0.0),
    ("max_segments", "MAX_SEGMENTS", "8", 8),
])
def test_a_set_variable_changes_its_setting_only(clean_env, field, variable, value, expected):
    clean_env.setenv(variable, value)
    settings = config.get_settings()
    assert getattr(settings, field) == expected
    assert dataclasses.replace(settings, **{field: getattr(config.Settings(), field)}) == config.Settings()


@pytest.mark.parametrize("value", [None, "", "  "])
def test_boot_and_worker_keep_their_files_in_the_same_places(value, clean_env, boot, tmp_path):
    """The boot exports HF_HOME into the volume's f5-worker/ directory; the worker must look there on its own
    too (a worker started without start.sh), and keep voices and results beside it."""
    volume = tmp_path / "volume"
    volume.mkdir()
    clean_env.setenv("NETWORK_VOLUME_PATH", str(volume))
    cfg = boot.Config.from_env()
    settings = config.get_settings()
    assert cfg.volume == settings.network_volume_path == volume
    layout = boot.Layout(cfg.volume / "f5-worker", on_volume=True)
    assert settings.data_dir == layout.root == config.StorageSettings.from_env().local_root
    exports = boot.env_exports(layout.venv("k"), layout, cfg, "k", layout)
    assert Path(exports["HF_HOME"]) == settings.model_cache_dir
    assert str(cfg.app_dir) in exports["PYTHONPATH"].split(":")  # the venv's python finds f5_worker in the image

    if value is not None:  # no volume: neither looks at /runpod-volume
        clean_env.setenv("NETWORK_VOLUME_PATH", value)
        assert boot.Config.from_env().volume is None is config.get_settings().network_volume_path


def test_the_configuration_docs_list_every_variable():
    docs = (REPO_ROOT / "docs" / "configuration.md").read_text()
    read = variables_read(REPO_ROOT / "f5_worker" / "config.py") | variables_read(REPO_ROOT / "setup_network_venv.py")
    read -= {"CUDA_VERSION", "UV_NO_PROGRESS", "UV_PYTHON_DOWNLOADS"}  # set by the base image, or by the boot for uv
    missing = sorted(name for name in read if f"`{name}`" not in docs)
    assert missing == []


@pytest.mark.parametrize("value", ["0", "-3"])
def test_max_concurrency_must_be_at_least_one(clean_env, value):
    """MAX_CONCURRENCY=0 made a queue worker that took no job, ever, and an HTTP server that refused every one
    with 429 (and failed the first with a 500 where it makes its jobs' threads): a worker that looks up but
    serves nothing. It stops the boot instead, naming the variable."""
    clean_env.setenv("MAX_CONCURRENCY", value)
    with pytest.raises(config.SettingsError, match=f"^MAX_CONCURRENCY must be at least 1 \\(got {value}\\)$"):
        config.get_settings()
    clean_env.setenv("MAX_CONCURRENCY", "1")
    assert config.get_settings().max_concurrency == 1


def test_max_script_parts_is_read_from_its_variable(clean_env):
    clean_env.setenv("MAX_SCRIPT_PARTS", "12")
    assert config.get_settings().max_script_parts == 12


@pytest.mark.parametrize("name, value, message", [
    ("BUCKET_ENDPOINT_URL", "http://AKIAUSER:s3cretPASS@127.0.0.1:9/voices",
     "BUCKET_ENDPOINT_URL must not hold a user name or password in a URL (http://***@127.0.0.1:9/voices); give the "
     "bucket's keys in BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY"),
    ("MODELS", "[" * 50_000 + "]" * 50_000, "MODELS: not valid model entries (JSON nested too deeply to read)"),
    ("RUNPOD_LOG_LEVEL", "verbose", "RUNPOD_LOG_LEVEL must be one of DEBUG, INFO, WARN, ERROR (got 'verbose')"),
], ids=["a password in the bucket's URL", "MODELS nested 50,000 deep", "a log level runpod refuses"])
def test_an_operators_hostile_setting_stops_the_worker_with_one_line(worker_env, tmp_path, name, value, message):
    """As every bad setting does: exit status 2 and one ``cannot start:`` line, no traceback. The bucket's URL used
    to start the worker and show its password in ``health``; the nested MODELS, a RecursionError's traceback."""
    import json
    import subprocess

    env = {**worker_env, "BUCKET_ACCESS_KEY_ID": "key-id", "BUCKET_SECRET_ACCESS_KEY": "key-secret", name: value}
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "runpod_handler.py"), "--test_input",
                           json.dumps({"input": {"action": "health"}})],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "cannot start" in line]
    assert len(lines) == 1 and lines[0].endswith(f"cannot start: {message}"), proc.stderr[-2000:]
    assert "s3cretPASS" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


def test_the_default_model_is_named_default_model_wherever_a_user_reads():
    """``WORKER_MODEL`` is only the older name of ``DEFAULT_MODEL``, still read (tests/test_models.py): the
    settings reader and the configuration table name it; everything else a user reads or runs says
    DEFAULT_MODEL, so nobody has to wonder which of the two to set."""
    read = [REPO_ROOT / name for name in ("README.md", "Makefile", "runpod_handler.py", "Dockerfile.runpod",
                                          "setup_network_venv.py", "test_input.json")]
    for folder, pattern in (("docs", "*.md"), ("scripts", "*"), (".runpod", "*"), ("f5_worker", "*.py")):
        read += [p for p in (REPO_ROOT / folder).rglob(pattern) if p.is_file() and "__pycache__" not in p.parts]
    allowed = {REPO_ROOT / "f5_worker" / "config.py", REPO_ROOT / "docs" / "configuration.md"}
    mentions = sorted(str(p.relative_to(REPO_ROOT)) for p in read
                      if p not in allowed and "WORKER_MODEL" in p.read_text(errors="replace"))
    assert mentions == []
    table_row = next(line for line in (REPO_ROOT / "docs" / "configuration.md").read_text().splitlines()
                     if line.startswith("| `WORKER_MODEL`"))
    assert "older name of `DEFAULT_MODEL`" in table_row


def test_serve_and_ports(clean_env):
    """SERVE picks the front door; PORT and PORT_HEALTH are ports (PORT_HEALTH 0: PORT alone)."""
    settings = config.get_settings()
    assert (settings.serve, settings.port, settings.port_health) == ("queue", 80, 0)
    clean_env.setenv("SERVE", "HTTP")
    clean_env.setenv("PORT", "8123")
    clean_env.setenv("PORT_HEALTH", "8124")
    settings = config.get_settings()
    assert (settings.serve, settings.port, settings.port_health) == ("http", 8123, 8124)
    for name, value in (("SERVE", "grpc"), ("PORT", "0"), ("PORT", "70000"), ("PORT_HEALTH", "-1")):
        clean_env.setenv(name, value)
        with pytest.raises(config.SettingsError, match=name):
            config.get_settings()
        clean_env.delenv(name)


def test_a_variable_of_spaces_alone_reads_as_unset(clean_env):
    """An endpoint's field left blank, or a space typed into it: every setting takes its default, as for an
    empty value. Spaces used to be a value: a path named ' ' (HF_HOME, RESULT_DUMP_DIR), Whisper asked for
    language ' ' (ASR_LANGUAGE), CUDA_GRAPHS and ALIGN_ONSETS turned off, DEFAULT_MODEL ' ' refused.
    NETWORK_VOLUME_PATH is the one exception: empty or spaces turn the volume off (documented)."""
    names = [name for name, _ in config.VARIABLES.values() if name != "NETWORK_VOLUME_PATH"]
    for name in names:
        clean_env.setenv(name, " \t ")
    clean_env.setenv("WORKER_MODEL", "  ")
    assert config.get_settings() == config.Settings()


@pytest.mark.parametrize("name, value, message", [
    ("DOWNLOAD_TIMEOUT_S", "inf", "DOWNLOAD_TIMEOUT_S must be a positive number of seconds, at most 86400 (got 'inf')"),
    ("DOWNLOAD_TIMEOUT_S", "1e20", "DOWNLOAD_TIMEOUT_S must be a positive number of seconds, at most 86400"),
    ("DOWNLOAD_TIMEOUT_S", "nan", "DOWNLOAD_TIMEOUT_S must be a positive number of seconds"),
    ("DOWNLOAD_TIMEOUT_S", "0", "DOWNLOAD_TIMEOUT_S must be a positive number of seconds"),
    ("BATCH_WAIT_MS", "inf", "BATCH_WAIT_MS must be a number of milliseconds from 0 to 86400000 (got 'inf')"),
    ("BATCH_WAIT_MS", "nan", "BATCH_WAIT_MS must be a number of milliseconds from 0 to 86400000"),
    ("BATCH_WAIT_MS", "1e20", "BATCH_WAIT_MS must be a number of milliseconds from 0 to 86400000"),
    ("BATCH_WAIT_MS", "-1", "BATCH_WAIT_MS must be a number of milliseconds from 0 to 86400000"),
    ("MAX_REF_AUDIO_SECONDS", "-1", "MAX_REF_AUDIO_SECONDS must be a positive number of seconds (got '-1')"),
    ("MAX_REF_AUDIO_SECONDS", "nan", "MAX_REF_AUDIO_SECONDS must be a positive number of seconds"),
    ("MAX_REF_AUDIO_SECONDS", "0", "MAX_REF_AUDIO_SECONDS must be a positive number of seconds"),
    ("MAX_DOWNLOAD_BYTES", "0", "MAX_DOWNLOAD_BYTES must be at least 1 (got 0)"),
    ("MAX_INLINE_BYTES", "-1", "MAX_INLINE_BYTES must be at least 1 (got -1)"),
    ("MAX_SEGMENTS", "0", "MAX_SEGMENTS must be at least 1 (got 0)"),
    ("MAX_SCRIPT_PARTS", "-1", "MAX_SCRIPT_PARTS must be at least 1 (got -1)"),
    ("MAX_BATCH_JOBS", "0", "MAX_BATCH_JOBS must be at least 1 (got 0)"),
    ("ALIGN_PROCESSES", "-2", "ALIGN_PROCESSES must be 0 or more (got -2)"),
])
def test_a_bound_that_no_job_could_meet_stops_the_worker_naming_it(clean_env, name, value, message):
    """Each was taken, and then failed every job it touched, or hung it: a download timeout of inf or 1e20 s
    failed every URL job with ``internal: OverflowError`` (the platform's timers end near 10^9 s), nan or 0 as
    "download took longer than nan s"; BATCH_WAIT_MS of inf or 1e20 killed the sampler thread (OverflowError)
    and nan left it waiting, so with MAX_BATCH_JOBS above 1 every job hung for ever; MAX_REF_AUDIO_SECONDS of -1
    or nan failed every job on the default voice ("could not decode audio (negative dimensions are not
    allowed)"); byte and count limits under 1 refused every job that downloads, returns a result or has a
    part. A negative ALIGN_PROCESSES quietly meant "automatic", which the docs never said."""
    clean_env.setenv(name, value)
    with pytest.raises(config.SettingsError) as err:
        config.get_settings()
    assert str(err.value).startswith(message), str(err.value)


def test_the_bounded_settings_still_take_their_documented_range(clean_env):
    values = {"DOWNLOAD_TIMEOUT_S": "86400", "BATCH_WAIT_MS": "0", "MAX_REF_AUDIO_SECONDS": "0.5",
              "MAX_DOWNLOAD_BYTES": "1", "MAX_INLINE_BYTES": "1", "MAX_SEGMENTS": "1", "MAX_SCRIPT_PARTS": "1",
              "MAX_BATCH_JOBS": "1", "ALIGN_PROCESSES": "0", "REF_AUDIO_KEEP_SECONDS": "0.5"}
    for name, value in values.items():
        clean_env.setenv(name, value)
    settings = config.get_settings()
    assert (settings.download_timeout_s, settings.batch_wait_ms, settings.max_ref_audio_seconds) == (86400, 0, 0.5)
    assert settings.align_processes == 0 and settings.max_script_parts == 1
    clean_env.delenv("ALIGN_PROCESSES")
    assert config.get_settings().align_processes == -1  # unset: chosen for the device at start


@pytest.mark.parametrize("value, level", [(None, "INFO"), ("", "INFO"), ("  ", "INFO"), ("debug", "DEBUG"),
                                          (" Warning ", "WARN"), ("WARN", "WARN"), ("error", "ERROR")])
def test_the_runpod_log_level_is_read_in_any_case_and_written_back_for_runpod(clean_env, value, level):
    """runpod reads RUNPOD_LOG_LEVEL itself when imported, and knows only upper-case DEBUG, INFO, WARN and ERROR
    (among others Python's logging does not know): so the value it will read is the one the worker uses."""
    import os

    clean_env.setenv("RUNPOD_LOG_LEVEL", "" if value is None else value)  # restored after the test: it is written
    if value is None:
        clean_env.delenv("RUNPOD_LOG_LEVEL")
    assert config.runpod_log_level() == level
    assert os.environ["RUNPOD_LOG_LEVEL"] == level


@pytest.mark.parametrize("value", ["abc", "TRACE", "2"])
def test_a_runpod_log_level_neither_runpod_nor_logging_knows_is_a_settings_error(clean_env, value):
    clean_env.setenv("RUNPOD_LOG_LEVEL", value)
    with pytest.raises(config.SettingsError, match=f"^RUNPOD_LOG_LEVEL must be one of DEBUG, INFO, WARN, ERROR "
                                                   f"\\(got '{value}'\\)$"):
        config.runpod_log_level()


def test_an_empty_runpod_log_level_boots_the_worker(worker_env, tmp_path):
    """An endpoint with RUNPOD_LOG_LEVEL added and left blank: runpod's import refused it with a traceback
    (``ValueError: Invalid debug level:``), so the worker never started; it now logs at INFO, the default."""
    import json
    import subprocess

    proc = subprocess.run([sys.executable, str(REPO_ROOT / "runpod_handler.py"), "--test_input",
                           json.dumps({"input": {"action": "health"}})],
                          cwd=tmp_path, env={**worker_env, "RUNPOD_LOG_LEVEL": ""}, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "completed successfully" in proc.stdout + proc.stderr


@pytest.mark.parametrize("name, value, message", [
    ("PAUSE_S", "1e20", r"PAUSE_S \(1e\+20\) must be at most MAX_PAUSE_S \(10\)"),
    ("PARAGRAPH_PAUSE_S", "61", r"PARAGRAPH_PAUSE_S \(61\) must be at most MAX_TOTAL_PAUSE_S \(60\)"),
])
def test_a_pause_setting_past_its_bound_stops_the_worker(clean_env, name, value, message):
    """Such a worker refused every job with a ``[pause]`` (or a blank line) as the job's own fault: ``text: pause
    of 1e+20 s at character 13 is longer than 10 s``, a pause its client never wrote a length for."""
    clean_env.setenv(name, value)
    with pytest.raises(config.SettingsError, match=f"^{message}$"):
        config.get_settings()
    clean_env.setenv("MAX_PAUSE_S" if name == "PAUSE_S" else "MAX_TOTAL_PAUSE_S", "1e20")
    assert getattr(config.get_settings(), name.lower()) == float(value)


def test_pauses_may_be_turned_off_with_their_defaults_unset(clean_env):
    clean_env.setenv("MAX_PAUSE_S", "0")
    clean_env.setenv("MAX_TOTAL_PAUSE_S", "0")
    settings = config.get_settings()
    assert (settings.max_pause_s, settings.pause_s, settings.paragraph_pause_s) == (0, 0.5, 0.6)


@pytest.mark.parametrize("name", ["HF_HOME", "TORCH_HOME", "TORCHINDUCTOR_CACHE_DIR"])
def test_a_blank_cache_setting_gets_the_volumes_cache_from_the_boot_too(clean_env, boot, tmp_path, name):
    """The boot passed a cache variable of spaces on as it was, so the libraries that read it themselves
    (huggingface_hub, torch) kept their caches in a folder named ' ' in /app, off the volume, while the worker's
    own model lookups read it as unset."""
    volume = tmp_path / "volume"
    volume.mkdir()
    clean_env.setenv("NETWORK_VOLUME_PATH", str(volume))
    clean_env.setenv(name, "  ")
    cfg = boot.Config.from_env()
    layout = boot.Layout(volume / "f5-worker", on_volume=True)
    exported = Path(boot.env_exports(layout.venv("k"), layout, cfg, "k", layout)[name])
    assert exported.is_relative_to(layout.root)
    if name == "HF_HOME":
        assert exported == config.get_settings().model_cache_dir
