"""Several models in one worker: the registry, a model per request, the pool of loaded models (LRU, single
flight, a shared vocoder), the errors for models that do not fit or cannot be found, and voices that
remember their model and language. Two tiny models with different vocabularies, in the real on-disk
format, load through the production loader."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import shutil
import threading
import time
import weakref

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV, decode_b64_audio
from f5_worker.config import SettingsError, get_settings
from f5_worker.errors import JobError
from f5_worker.tts.model_pool import ModelPool
from f5_worker.tts.registry import BUILTIN_NAMES, ModelRegistry, parse_entries
from f5_worker.tts.sampler import SynthesisEngine
from f5_worker.tts.tiny_models import TINY_FR_VOCAB, tiny_fr_model_files, tiny_model_files
from f5_worker.tts.weight_init import skipped_weight_init
from f5_worker.worker import Worker

REF_B64 = base64.b64encode(DEFAULT_VOICE_WAV.read_bytes()).decode()
FAST = {"nfe_step": 4, "seed": 1, "max_retries": 0, "word_timings": False, "caption_formats": []}


def fr_entry(tiny_model_dir, name: str = "tiny-fr", **changes) -> dict:
    fr = tiny_fr_model_files(tiny_model_dir)
    entry = {"name": name, "architecture": str(fr.config_path), "checkpoint": str(fr.ckpt_path),
             "vocab": str(fr.vocab_path), "vocoder": str(fr.vocoder_dir), "languages": ["fr"], "license": "none"}
    return entry | changes


@pytest.fixture(scope="module")
def entries(tiny_model_dir, tmp_path_factory) -> list[dict]:
    tiny = tiny_model_files(tiny_model_dir)
    wider = tmp_path_factory.mktemp("arch") / "F5TTS_v1_Tiny_wide.yaml"
    wider.write_text(tiny.config_path.read_text().replace("dim: 64", "dim: 96"))
    absent = tmp_path_factory.mktemp("later") / "model.safetensors"
    return [
        fr_entry(tiny_model_dir),
        fr_entry(tiny_model_dir, "tiny-fr-copy"),
        fr_entry(tiny_model_dir, "vocab-too-long", vocab=str(tiny.vocab_path)),
        fr_entry(tiny_model_dir, "vocab-too-short", checkpoint=str(tiny.ckpt_path)),
        fr_entry(tiny_model_dir, "wrong-architecture", architecture=str(wider)),
        fr_entry(tiny_model_dir, "arrives-later", checkpoint=str(absent)),
        fr_entry(tiny_model_dir, "not-on-this-machine", checkpoint="hf://nobody/no-such-repo/model.safetensors"),
    ]


@pytest.fixture(scope="module")
def models_settings(tiny_settings, entries, tmp_path_factory):
    return dataclasses.replace(tiny_settings, models_json=json.dumps(entries), max_loaded_models=2,
                               hf_home=tmp_path_factory.mktemp("hf"), streaming=True)


@pytest.fixture(scope="module")
def multi_worker(models_settings, worker):
    """A worker serving the tiny model by default and the entries above on request (the default model is the
    session worker's, already loaded)."""
    return Worker(models_settings, worker.models)


def fresh_pool(settings, default_models) -> ModelPool:
    registry = ModelRegistry.from_settings(settings)
    return ModelPool(settings, registry, default_models, lambda m: SynthesisEngine(m))


# --- a model per request ---------------------------------------------------------------------------------

def test_two_models_with_different_vocabularies_serve_jobs_in_one_worker(multi_worker):
    english = multi_worker.handle({"text": "Hello there.", **FAST})
    french = multi_worker.handle({"text": "Ça va très bien, merci.", "model": "tiny-fr", **FAST})
    assert english["model"] == "tiny" and french["model"] == "tiny-fr", (english, french)
    for out in (english, french):
        wave, rate = decode_b64_audio(out["audio_base64"])
        assert rate == 24000 and len(wave) > 0 and float(abs(wave).max()) > 0
    fr_models = multi_worker.pool.engine("tiny-fr").models
    assert len(fr_models.vocab_char_map) == len(TINY_FR_VOCAB) != len(multi_worker.models.vocab_char_map)
    assert fr_models.vocoder is multi_worker.models.vocoder  # one Vocos for both
    streamed = list(multi_worker.items({"text": "Bonjour, ça va?", "model": "tiny-fr", "stream": True, **FAST}))
    assert streamed[-1]["done"] and streamed[-1]["model"] == "tiny-fr" and streamed[0]["audio_base64"]


def test_list_models_and_health_show_the_registry(multi_worker):
    multi_worker.pool.engine("tiny-fr")
    listed = multi_worker.handle({"action": "list_models"})
    by_name = {m["name"]: m for m in listed["models"]}
    assert list(by_name)[:len(BUILTIN_NAMES)] == list(BUILTIN_NAMES) and "tiny-fr" in by_name
    assert by_name["tiny"] == {"name": "tiny", "languages": [], "license": "none", "architecture": "F5TTS_v1_Tiny",
                               "loaded": True, "default": True}
    assert by_name["tiny-fr"]["loaded"] and not by_name["tiny-fr"]["default"]
    assert by_name["tiny-fr"]["languages"] == ["fr"]
    assert by_name["F5TTS_v1_Base"]["loaded"] is False and by_name["F5TTS_v1_Base"]["license"] == "cc-by-nc-4.0"
    assert listed["default"] == "tiny" and listed["max_loaded"] == 2
    assert multi_worker.handle({"action": "health"})["models"] == listed["models"]


def test_a_reference_gives_each_model_the_mel_of_its_own_mel_settings(tiny_settings, tiny_model_dir, worker, tmp_path):
    """Prepared references serve every model, but a reference's mel spectrogram depends on the model's mel
    settings (here the STFT's window length): a model must sample with its own, whichever model used the
    reference first. The same job gives the same audio on a fresh worker and after another model's job."""
    tiny = tiny_model_files(tiny_model_dir)
    architecture = tmp_path / "F5TTS_v1_Tiny_win768.yaml"
    architecture.write_text(tiny.config_path.read_text().replace("win_length: 1024", "win_length: 768"))
    entry = {"name": "tiny-win768", "architecture": str(architecture), "checkpoint": str(tiny.ckpt_path),
             "vocab": str(tiny.vocab_path), "vocoder": str(tiny.vocoder_dir), "license": "none"}
    settings = dataclasses.replace(tiny_settings, models_json=json.dumps([entry]), hf_home=tmp_path / "hf")
    job = {"text": "One reference, two mels.", "model": "tiny-win768", "ref_audio_base64": REF_B64,
           "ref_text": DEFAULT_VOICE_TEXT, **FAST}
    alone = Worker(settings, worker.models).handle(job)
    shared = Worker(settings, worker.models)
    assert "error" not in shared.handle({**job, "model": "tiny"})  # the tiny model prepares the reference first
    after = shared.handle(job)
    assert "error" not in alone and after["audio_base64"] == alone["audio_base64"]


# --- clear errors; the worker serves on ---------------------------------------------------------------------

@pytest.mark.parametrize("model, expected", [
    ("nope", 'model: unknown model "nope"; use one of F5TTS_v1_Base, F5TTS_Base, E2TTS_Base, tiny, tiny-fr,'),
    ("vocab-too-long", f'model: "vocab-too-long": vocab has 2545 symbols, the checkpoint\'s text embedding '
                       f"{len(TINY_FR_VOCAB)}; use the vocab.txt published with the checkpoint"),
    ("vocab-too-short", f'model: "vocab-too-short": vocab has {len(TINY_FR_VOCAB)} symbols, the checkpoint\'s '
                        "text embedding 2545"),
    ("wrong-architecture", 'model: "wrong-architecture": the checkpoint does not fit architecture '
                           "F5TTS_v1_Tiny_wide (transformer.time_embed.time_mlp.0.weight is (64, 256) in the "
                           "checkpoint, (96, 256) in F5TTS_v1_Tiny_wide;"),
    ("not-on-this-machine", 'model: "not-on-this-machine": not-on-this-machine checkpoint '
                            "(nobody/no-such-repo/model.safetensors) is not in the model cache"),
])
def test_a_model_that_cannot_serve_fails_the_job_not_the_worker(multi_worker, model, expected):
    out = multi_worker.handle({"text": "Bonjour.", "model": model, **FAST})
    assert out["error"].startswith(expected), out
    assert model not in multi_worker.pool.loaded()
    assert multi_worker.handle({"text": "Still here.", **FAST})["model"] == "tiny"


def test_weights_that_arrive_later_are_loaded_by_a_later_job(multi_worker, entries, tiny_model_dir):
    later = next(e for e in entries if e["name"] == "arrives-later")
    first = multi_worker.handle({"text": "Bonjour.", "model": "arrives-later", **FAST})
    assert first["error"].startswith('model: "arrives-later": arrives-later checkpoint: ') and \
        first["error"].endswith("does not exist"), first
    shutil.copyfile(tiny_fr_model_files(tiny_model_dir).ckpt_path, later["checkpoint"])
    assert multi_worker.handle({"text": "Bonjour.", "model": "arrives-later", **FAST})["model"] == "arrives-later"


@pytest.fixture(scope="module")
def rate_worker(tiny_settings, tiny_44k_entry, worker):
    """A worker whose second model speaks at 44.1 kHz."""
    return Worker(dataclasses.replace(tiny_settings, models_json=json.dumps([tiny_44k_entry]), streaming=True),
                  worker.models)


def test_a_format_that_cannot_be_written_at_the_models_rate_is_refused_before_any_sampling(rate_worker):
    """Opus takes 8, 12, 16, 24 and 48 kHz only: a job asking a 44.1 kHz model for it was sampled whole, then
    failed as internal: LibsndfileError, with a traceback."""
    engine = rate_worker.pool.engine("tiny-44k")
    queued = []
    engine.on_queued = queued.append
    try:
        for stream in (False, True):
            out = rate_worker.handle({"text": "Hello there.", "model": "tiny-44k", "output_format": "opus",
                                      "stream": stream, **FAST})
            assert out["error"].startswith("output_format: opus cannot be written at 44100 Hz, the rate model "
                                           "'tiny-44k' speaks at (opus takes 8000, 12000, 16000, 24000, 48000 Hz); "
                                           "use wav, flac, mp3, pcm"), out
        assert queued == []
    finally:
        engine.on_queued = None
    for fmt in ("mp3", "wav"):
        out = rate_worker.handle({"text": "Hello there.", "model": "tiny-44k", "output_format": fmt, **FAST})
        wave, rate = decode_b64_audio(out["audio_base64"])
        assert rate == out["sample_rate"] == 44100 and len(wave) > 0, out.get("error")
    assert rate_worker.handle({"text": "Hello there.", "output_format": "opus", **FAST})["sample_rate"] == 24000


def test_a_stream_at_44_1_khz_is_in_whole_milliseconds_as_at_24_khz(rate_worker):
    """A streamed piece was padded to a multiple of rate // 1000 samples (44 at 44.1 kHz, not a millisecond),
    and a pause made of as many per millisecond: "[pause:1s]" was 0.998 s, and an offset was not always the
    one before plus its duration. Each item now ends on a whole millisecond of the stream at any rate (at
    44.1 kHz, whole 10 ms: a pause is rounded up to them)."""
    items = rate_worker.handle({"text": "Hello there, my friend. [pause:1s] This is [pause:505ms] the end of it.",
                                "model": "tiny-44k", "stream": True, "output_format": "pcm", **FAST})
    assert isinstance(items, list), items
    *pieces, done = items
    assert [p["pause"] for p in pieces if "pause" in p] == [1.0, 0.51]  # in whole 10 ms at 44.1 kHz
    at = 0
    for piece in pieces:
        samples = len(base64.b64decode(piece["audio_base64"])) // 2
        assert piece["offset"] == round(at / 44100, 3) and piece["duration"] == round(samples / 44100, 3)
        at += samples
        assert at * 1000 % 44100 == 0  # the stream so far is a whole number of milliseconds
    assert done["duration"] == round(at / 44100, 3) == round(pieces[-1]["offset"] + pieces[-1]["duration"], 3)


# --- the pool: LRU with a pinned default, single flight ------------------------------------------------------

def test_least_recently_used_model_is_evicted_and_the_default_stays(models_settings, worker):
    pool = fresh_pool(dataclasses.replace(models_settings, max_loaded_models=1), worker.models)
    fr = pool.engine("tiny-fr")
    assert pool.loaded() == ["tiny", "tiny-fr"]  # the default is pinned; the one just loaded stays too
    fr_thread, fr_models = fr._thread, weakref.ref(fr.models)
    del fr
    copy = pool.engine("tiny-fr-copy")
    assert pool.loaded() == ["tiny", "tiny-fr-copy"] and pool.evictions == 1
    assert copy is pool.engine("tiny-fr-copy")
    assert not fr_thread.is_alive()  # it was idle: its thread ended at once
    assert fr_models() is None, "the evicted model's memory is freed"
    pool.engine("tiny-fr")  # asked for again: loaded again, the other one goes
    assert pool.loads == 3 and pool.loaded() == ["tiny", "tiny-fr"]
    pool.engine(None)  # the default, used: no load
    assert pool.loads == 3


def test_a_model_used_since_a_later_one_was_loaded_outlives_it(models_settings, entries, tiny_model_dir, worker):
    """Least recently USED, not first loaded: with two slots beside the default, a job on the older of two
    models makes the newer one the next to go. (With one slot the two orders evict the same model.)"""
    third = [*entries, fr_entry(tiny_model_dir, "tiny-fr-third")]
    pool = fresh_pool(dataclasses.replace(models_settings, models_json=json.dumps(third), max_loaded_models=3),
                      worker.models)
    older = pool.engine("tiny-fr")
    pool.engine("tiny-fr-copy")
    assert pool.engine("tiny-fr") is older  # used again: now the most recently used
    pool.engine("tiny-fr-third")
    assert sorted(pool.loaded()) == ["tiny", "tiny-fr", "tiny-fr-third"] and pool.evictions == 1
    assert pool.engine("tiny-fr") is older and pool.loads == 3  # still loaded: served without a load


def test_an_evicted_engine_still_serves_a_job_that_took_it(models_settings, worker):
    from f5_worker.tts.reference import ReferencePreparer
    from f5_worker.tts.sampler import SynthesisParams

    pool = fresh_pool(models_settings, worker.models)
    engine = pool.engine("tiny-fr")
    ref = ReferencePreparer(max_input_seconds=60, keep_seconds=12).default_voice(0.1)
    params = SynthesisParams(nfe_step=4, seed=5)
    open_engines = engine.synthesize(ref, "Bonjour.", params)
    assert engine.close(timeout=60)  # as an eviction does, before the job queues its request
    result = engine.synthesize(ref, "Bonjour.", params)
    assert result.wave.shape == open_engines.wave.shape and (result.wave == open_engines.wave).all()
    assert engine.close(timeout=60)


def test_two_jobs_asking_for_one_unloaded_model_load_it_once(models_settings, worker, caplog):
    pool = fresh_pool(models_settings, worker.models)
    got: list = []
    caplog.set_level(logging.INFO, logger="f5_worker.tts.model_pool")
    with skipped_weight_init():  # holds any load at its first step until both jobs are waiting
        threads = [threading.Thread(target=lambda: got.append(pool.engine("tiny-fr"))) for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60  # hang guards, here and below: the waits end as soon as the jobs get there
        while not any("another job is loading" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the second job never waited for the first one's load"
            time.sleep(0.01)
    for thread in threads:
        thread.join(60)
    assert len(got) == 2 and got[0] is got[1]
    assert pool.loads == 1
    assert sum("loading model tiny-fr" in r.getMessage() for r in caplog.records) == 1


def stoppable_job(pool: ModelPool, name: str, flags: list, stopped: list) -> None:
    """A job asking ``pool`` for model ``name`` under a stop flag of its own (put in ``flags``); the stop it
    meets goes to ``stopped``."""
    from f5_worker import stopping

    with stopping.stop_flag() as flag:
        flags.append(flag)
        try:
            pool.engine(name)
        except stopping.JobStopped as exc:
            stopped.append(exc)


def test_a_job_stopped_while_another_loads_its_model_stops_waiting(models_settings, worker, caplog):

    pool = fresh_pool(models_settings, worker.models)
    loaded: list = []
    stopped: list = []
    caplog.set_level(logging.INFO, logger="f5_worker.tts.model_pool")

    flags: list = []
    with skipped_weight_init():  # holds the load at its first step
        loader = threading.Thread(target=lambda: loaded.append(pool.engine("tiny-fr")))
        loader.start()
        deadline = time.monotonic() + 60  # hang guards, here and below: the waits end as soon as the jobs get there
        while "tiny-fr" not in pool._loading:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        waiter = threading.Thread(target=stoppable_job, args=(pool, "tiny-fr", flags, stopped))
        waiter.start()
        while not any("another job is loading" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the second job never waited for the first one's load"
            time.sleep(0.01)
        flags[0].set()  # RunPod stops the waiting job while the load is still held
        waiter.join(30)  # a waiter that ignored its stop would wait here for the held load: for ever
        assert not waiter.is_alive(), "a stopped job kept waiting for another job's load"
    loader.join(60)
    assert len(stopped) == 1 and "model tiny-fr was loaded" in str(stopped[0])
    assert len(loaded) == 1 and pool.loaded() == ["tiny", "tiny-fr"] and pool.loads == 1  # the load went on


def test_the_memory_bound_evicts_too(models_settings, worker):
    tiny_bytes = worker.models.weight_bytes
    pool = fresh_pool(dataclasses.replace(models_settings, max_loaded_models=8,
                                          max_model_memory_gb=tiny_bytes * 2.5 / 1e9), worker.models)
    pool.engine("tiny-fr")
    pool.engine("tiny-fr-copy")
    assert pool.loaded() == ["tiny", "tiny-fr-copy"] and pool.evictions == 1


# --- voices remember a model and a language -----------------------------------------------------------------

def test_a_voice_keeps_its_model_and_language(models_settings, worker, tmp_path, no_bucket_env):
    volume = tmp_path / "volume"
    volume.mkdir()
    w = Worker(dataclasses.replace(models_settings, network_volume_path=volume), worker.models)
    upload = {"action": "upload_voice", "name": "amelie", "audio_base64": REF_B64, "ref_text": DEFAULT_VOICE_TEXT}
    assert w.handle({**upload, "model": "nope"})["error"].startswith('model: unknown model "nope"')
    assert w.handle({**upload, "language": "not a tag"})["error"].startswith("language: must be a language tag")
    saved = w.handle({**upload, "model": "tiny-fr", "language": "fr"})
    assert saved["voice"]["model"] == "tiny-fr" and saved["voice"]["language"] == "fr"
    assert w.handle({"action": "get_voice", "name": "amelie"})["voice"]["language"] == "fr"
    assert w.voices.info("amelie").language == "fr"
    spoken = w.handle({"text": "Bonjour.", "voice": "amelie", **FAST})
    assert spoken["model"] == "tiny-fr" and spoken["language"] == "fr", spoken  # the voice's model and language
    assert w.handle({"text": "Bonjour.", "model": "tiny-fr", **FAST})["language"] == "fr"  # the model's one language
    assert w.handle({"text": "Bonjour.", "voice": "amelie", "language": "de", **FAST})["language"] == "de"
    assert w.handle({"text": "Hello.", "voice": "amelie", "model": "tiny", **FAST})["model"] == "tiny"
    plain = w.handle({**upload, "name": "bob"})
    assert plain["voice"]["model"] is None and plain["voice"]["language"] is None
    assert w.handle({"text": "Hello.", "voice": "bob", **FAST})["model"] == "tiny"
    assert w.handle({"text": "Hello.", "voice": "bob", **FAST})["language"] == "en"  # guessed from the writing system
    # a script: the top-level voice's model and language first, else the first voice in it that keeps one
    segments = w.handle({"segments": [{"voice": "bob", "text": "Salut."}, {"voice": "amelie", "text": "Bonjour."}],
                         **FAST})
    assert (segments["model"], segments["language"]) == ("tiny-fr", "fr"), segments
    tagged = w.handle({"text": "Hello. [voice:amelie] Bonjour.", **FAST})
    assert (tagged["model"], tagged["language"]) == ("tiny-fr", "fr"), tagged
    assert w.handle({"text": "Hello. [voice:amelie] Bonjour.", "voice": "bob", "model": "tiny", **FAST})["model"] \
        == "tiny"
    assert w.handle({"text": "Hi. [voice:nobody] Bye.", **FAST})["error"] == "text: unknown voice 'nobody' at character 4"


# --- the registry's settings ---------------------------------------------------------------------------------

def test_registry_entries_from_the_setting_and_the_volume_file(tiny_settings, tiny_model_dir, tmp_path):
    volume = tmp_path / "volume"
    (volume / "f5-worker").mkdir(parents=True)
    (volume / "f5-worker" / "models.json").write_text(json.dumps({"fr": fr_entry(tiny_model_dir, "fr")}))
    settings = dataclasses.replace(tiny_settings, network_volume_path=volume,
                                   models_json=json.dumps([fr_entry(tiny_model_dir, "fr2")]))
    registry = ModelRegistry.from_settings(settings)
    assert registry.names() == [*BUILTIN_NAMES, "fr2", "fr"] and registry.default == "tiny"
    assert registry.model_files("fr", settings).vocab_path == tiny_fr_model_files(tiny_model_dir).vocab_path


def test_relative_paths_in_the_volume_file_are_beside_it(tiny_settings, tiny_model_dir, tmp_path, monkeypatch):
    """The worker's working directory is no place a deployer knows: models.json names files beside it."""
    tiny = tiny_fr_model_files(tiny_model_dir)
    folder = tmp_path / "volume" / "f5-worker"
    (folder / "fr").mkdir(parents=True)
    shutil.copy(tiny.vocab_path, folder / "fr" / "vocab.txt")
    shutil.copy(tiny.config_path, folder / "fr" / "arch.yaml")
    entry = fr_entry(tiny_model_dir, "fr", vocab="fr/vocab.txt", architecture="fr/arch.yaml")
    (folder / "models.json").write_text(json.dumps([entry]))
    monkeypatch.chdir(tmp_path)  # anywhere but the file's folder
    settings = dataclasses.replace(tiny_settings, network_volume_path=tmp_path / "volume")
    files = ModelRegistry.from_settings(settings).model_files("fr", settings)
    assert files.vocab_path == folder / "fr" / "vocab.txt" and files.config_path == folder / "fr" / "arch.yaml"
    assert str(files.ckpt_path) == entry["checkpoint"]  # absolute paths stay as they are


@pytest.mark.parametrize("models_json, message", [
    ("[{", "MODELS: not valid JSON"),
    ('{"a": 1}', "MODELS: entry 1 ('a'): must be a JSON object"),
    ('[{"name": "fr", "architecture": "F5TTS_v1_Base"}]', "MODELS: entry 1 ('fr'): checkpoint: Field required"),
    ('[{"name": "fr", "architecture": "F5TTS_v9", "checkpoint": "x.pt"}]',
     "MODELS: entry 1 ('fr'): architecture: 'F5TTS_v9' is neither one of f5-tts's configs"),
    ('[{"name": "fr", "architecture": "F5TTS_Base", "checkpoint": "x.pt", "languages": ["french!"]}]',
     "MODELS: entry 1 ('fr'): languages.0: String should match pattern"),
    ('[{"name": "fr", "architecture": "F5TTS_Base", "checkpoint": "x.pt", "ckpt": "y"}]',
     "MODELS: entry 1 ('fr'): ckpt: unknown field"),
    ('[{"name": "tiny", "architecture": "F5TTS_Base", "checkpoint": "x.pt"}]',
     "MODELS: entry 1 ('tiny'): model 'tiny' is registered twice (it is a built-in model)"),
    ('[{"name": "fr", "architecture": "F5TTS_Base", "checkpoint": "x.pt"}, '
     '{"name": "fr", "architecture": "F5TTS_Base", "checkpoint": "y.pt"}]',
     "MODELS: entry 2 ('fr'): model 'fr' is registered twice (first in MODELS, entry 1)"),
    ('[{"name": "fr", "architecture": "F5TTS_Base", "checkpoint": "hf://RASPIAUDIO/model_last.pt"}]',
     "MODELS: entry 1 ('fr'): checkpoint: 'hf://RASPIAUDIO/model_last.pt' names a repository, not a file in it"),
    ('[{"name": "fr", "architecture": "F5TTS_Base", "checkpoint": "x.pt", "vocab": "hf://vocab.txt"}]',
     "MODELS: entry 1 ('fr'): vocab: 'hf://vocab.txt' is not a hub location; write hf://<owner>/<repo>/<file>"),
    ('[{"name": "fr", "architecture": "F5TTS_Base", "checkpoint": "x.pt", "vocoder": "hf://"}]',
     "MODELS: entry 1 ('fr'): vocoder: 'hf://' is not a hub location"),
])
def test_a_bad_entry_is_a_start_up_error_naming_the_setting_and_the_entry(tiny_settings, models_json, message):
    with pytest.raises(SettingsError) as err:
        ModelRegistry.from_settings(dataclasses.replace(tiny_settings, models_json=models_json))
    assert str(err.value).startswith(message), str(err.value)


def test_a_name_in_both_the_setting_and_the_volume_file_names_both(tiny_settings, tiny_model_dir, tmp_path):
    volume = tmp_path / "volume"
    (volume / "f5-worker").mkdir(parents=True)
    registry_file = volume / "f5-worker" / "models.json"
    registry_file.write_text(json.dumps([fr_entry(tiny_model_dir, "de"), fr_entry(tiny_model_dir, "fr")]))
    settings = dataclasses.replace(tiny_settings, network_volume_path=volume,
                                   models_json=json.dumps([fr_entry(tiny_model_dir, "fr")]))
    with pytest.raises(SettingsError) as err:
        ModelRegistry.from_settings(settings)
    assert str(err.value) == (f"MODEL_REGISTRY_FILE {registry_file}: entry 2 ('fr'): model 'fr' is registered twice "
                              "(first in MODELS, entry 1)")


def test_the_default_model_must_be_registered_and_named_once(tiny_settings, monkeypatch):
    with pytest.raises(SettingsError, match="DEFAULT_MODEL='NoSuchModel' is not a registered model; use one of "
                                            "F5TTS_v1_Base, F5TTS_Base, E2TTS_Base, tiny"):
        ModelRegistry.from_settings(dataclasses.replace(tiny_settings, default_model="NoSuchModel"))
    monkeypatch.setenv("WORKER_MODEL", "tiny")
    monkeypatch.setenv("DEFAULT_MODEL", "tiny")
    assert get_settings().default_model == "tiny"
    monkeypatch.setenv("DEFAULT_MODEL", "F5TTS_Base")
    with pytest.raises(SettingsError, match="DEFAULT_MODEL='F5TTS_Base' and WORKER_MODEL='tiny' disagree"):
        get_settings()
    monkeypatch.delenv("WORKER_MODEL")
    assert get_settings().default_model == "F5TTS_Base"
    monkeypatch.setenv("MAX_LOADED_MODELS", "0")
    with pytest.raises(SettingsError, match="MAX_LOADED_MODELS must be at least 1"):
        get_settings()


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12)
ENTRY_FIELDS = st.fixed_dictionaries({}, optional={
    "name": st.sampled_from(["fr", "", "../x", "a" * 70]) | st.text(max_size=6),
    "architecture": st.sampled_from(["F5TTS_Base", "x.yaml", "nope"]) | JSON,
    "checkpoint": st.sampled_from(["hf://a/b/c.pt", "/m.pt", ""]) | JSON,
    "languages": st.lists(st.sampled_from(["fr", "zh-CN", "french", ""]), max_size=3) | JSON,
    "license": JSON, "vocab": JSON, "extra": JSON})


@given(st.one_of(JSON, st.lists(ENTRY_FIELDS, max_size=3), st.dictionaries(st.text(max_size=4), ENTRY_FIELDS,
                                                                           max_size=3)))
def test_any_json_is_entries_or_a_settings_error(value):
    """The parser never fails any other way: every bad value is a message naming MODELS."""
    try:
        entries = parse_entries(json.dumps(value), "MODELS")
    except SettingsError as exc:
        assert str(exc).startswith("MODELS: ")
        return
    assert isinstance(value, list | dict)
    for entry in entries:
        assert entry.name and entry.checkpoint and entry.architecture


def test_an_unknown_model_is_refused_before_any_work(multi_worker):
    with pytest.raises(JobError, match='^model: unknown model "x"'):
        multi_worker.pool.engine("x")


def test_a_job_naming_an_unknown_model_is_refused_before_any_voice_is_read(models_settings, worker, tmp_path,
                                                                          no_bucket_env):
    """A model this worker lacks is refused before anything else: a job that names one costs no read of the
    voice store (a GET each on a bucket), and its error is about the model even where its voices are missing
    too. The reads are recorded at the real store, which answers them."""
    w = Worker(dataclasses.replace(models_settings, network_volume_path=tmp_path), worker.models)
    assert "error" not in w.handle({"action": "upload_voice", "name": "amelie", "audio_base64": REF_B64,
                                    "ref_text": DEFAULT_VOICE_TEXT})
    storage, reads = w.voices.storage, []
    for method in ("get", "list"):
        real = getattr(storage, method)
        setattr(storage, method, lambda key, real=real, method=method: reads.append((method, key)) or real(key))
    jobs = [{"text": "Bonjour.", "voice": "amelie"}, {"text": "Hi. [voice:amelie] Bonjour.", "voice": "nobody"},
            {"segments": [{"voice": "amelie", "text": "Salut."}, {"voice": "nobody", "text": "Bonjour."}]}]
    for job in jobs:
        out = w.handle({**job, "model": "nope", **FAST})
        assert reads == [], job
        assert out["error"].startswith('model: unknown model "nope"; use one of'), out
    assert w.handle({"text": "Bonjour.", "voice": "amelie", "model": "tiny", **FAST})["model"] == "tiny"
    assert ("get", "voices/amelie/voice.json") in reads  # a known model: the voice is read, and seen here


def test_prefetch_takes_registered_model_names(tmp_path, tiny_model_dir):
    import os
    import subprocess
    import sys

    from conftest import REPO_ROOT

    fr = {"name": "fr", "architecture": "F5TTS_Base", "license": "cc-by-nc-4.0",
          "checkpoint": "hf://RASPIAUDIO/F5-French-MixedSpeakers-reduced/model_last_reduced.pt",
          "vocab": "hf://RASPIAUDIO/F5-French-MixedSpeakers-reduced/vocab.txt"}
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HOME", "TORCH_HOME", "DEFAULT_MODEL", "WORKER_MODEL")}
    env.update(NETWORK_VOLUME_PATH=str(tmp_path), HF_HUB_OFFLINE="1", MODELS=json.dumps([fr]))
    run = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "ops" / "prefetch_models.py"), "--dry-run",
                          "--no-aligner", "fr", "F5TTS_v1_Base", "tiny"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    sources = [line.split(": ", 1)[1].split(" -> ")[0] for line in run.stdout.splitlines()]
    assert sources == [fr["checkpoint"], fr["vocab"], "hf://charactr/vocos-mel-24khz/config.yaml",
                       "hf://charactr/vocos-mel-24khz/pytorch_model.bin",
                       "hf://SWivid/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors"]  # the shared Vocos once
    assert "tiny is written locally" in run.stderr
    unknown = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "ops" / "prefetch_models.py"),
                              "--dry-run", "xx"], env=env, capture_output=True, text=True, timeout=120)
    assert unknown.returncode != 0 and "'xx' is not a registered model" in unknown.stderr



def test_a_bad_entry_stops_the_worker_before_any_model_loads(worker_env, monkeypatch):
    """``Worker.from_env`` raises SettingsError, which runpod_handler.py turns into exit status 2 with the line."""
    for key, value in worker_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MODELS", '[{"name": "fr", "architecture": "F5TTS_Base"}]')
    monkeypatch.setenv("TINY_MODEL_DIR", "/nonexistent/never-written")  # a load would try to write here
    with pytest.raises(SettingsError, match=r"^MODELS: entry 1 \('fr'\): checkpoint: Field required$"):
        Worker.from_env()


# --- an operator's entries whose files are not what they say: a `model:` error naming the problem --------------

@pytest.mark.parametrize("model", ["vocab-is-latin-1", "vocoder-cut-short", "vocoder-config-is-text"])
def test_a_default_model_whose_files_are_not_what_they_say_stops_the_worker_naming_them(
        worker_env, broken_files, tiny_model_dir, monkeypatch, model):
    """``Worker.from_env`` raises ModelUnavailableError, which runpod_handler.py turns into exit status 2 and one
    ``cannot start:`` line. A vocabulary not in UTF-8 ended the worker with a UnicodeDecodeError's traceback, a
    vocoder cut short with torch's "PytorchStreamReader failed reading zip archive", a vocoder config that is
    not one with a YAML or TypeError traceback."""
    from f5_worker.tts.weights import ModelUnavailableError

    for key, value in worker_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MODELS", json.dumps([fr_entry(tiny_model_dir, model, **broken_files[model])]))
    monkeypatch.setenv("DEFAULT_MODEL", model)
    with pytest.raises(ModelUnavailableError, match=r"(vocabulary|vocoder) .* is not "):
        Worker.from_env()


@pytest.fixture(scope="module")
def broken_files(tiny_model_dir, tmp_path_factory) -> dict[str, dict]:
    """Entries on the tiny French model with one thing wrong: a config value, or a checkpoint that is no checkpoint."""
    import os

    import torch

    fr = tiny_fr_model_files(tiny_model_dir)
    folder = tmp_path_factory.mktemp("broken")
    config = fr.config_path.read_text()

    def yaml(name: str, old: str, new: str) -> str:
        changed = config.replace(old, new)
        assert changed != config, old
        (folder / f"{name}.yaml").write_text(changed)
        return str(folder / f"{name}.yaml")

    (folder / "passwd.pt").write_text("root:x:0:0:root:/root:/bin/bash\n" * 40)
    (folder / "passwd.yaml").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (folder / "empty.safetensors").write_bytes(b"")
    (folder / "empty.pt").write_bytes(b"")
    os.mkfifo(folder / "pipe.pt")
    os.mkfifo(folder / "pipe.yaml")
    (folder / "a-directory.pt").mkdir()
    torch.save([torch.zeros(2)], folder / "list.pt")
    from safetensors.torch import load_file, save_file

    save_file({k: v.to(torch.int8) for k, v in load_file(str(fr.ckpt_path)).items()}, folder / "int8.safetensors")
    (folder / "dangling.pt").symlink_to(folder / "nowhere.pt")
    (folder / "latin1-vocab.txt").write_bytes(fr.vocab_path.read_text(encoding="utf-8").encode("latin-1", "replace")
                                              + "é\n".encode("latin-1"))
    for name, damage in (("cut-vocoder", "weights"), ("vocoder-config-is-text", "config")):
        shutil.copytree(fr.vocoder_dir, folder / name)
        if damage == "weights":  # a copy cut short
            weights = folder / name / "pytorch_model.bin"
            weights.write_bytes(weights.read_bytes()[:1000])
        else:
            (folder / name / "config.yaml").write_text("root:x:0:0:root:/root:/bin/bash\n")
    return {
        "hop-zero": {"architecture": yaml("hop-zero", "hop_length: 256", "hop_length: 0")},
        "rate-negative": {"architecture": yaml("rate-negative", "target_sample_rate: 24000", "target_sample_rate: -1")},
        "hop-fraction": {"architecture": yaml("hop-fraction", "hop_length: 256", "hop_length: 256.5")},
        "window-over-fft": {"architecture": yaml("window-over-fft", "win_length: 1024", "win_length: 4096")},
        "rate-bomb": {"architecture": yaml("rate-bomb", "target_sample_rate: 24000", "target_sample_rate: 96000000")},
        "mels-as-text": {"architecture": yaml("mels-as-text", "n_mel_channels: 100", "n_mel_channels: many")},
        "no-mel-spec": {"architecture": yaml("no-mel-spec", "  mel_spec:", "  not_mel_spec:")},
        "config-is-text": {"architecture": str(folder / "passwd.yaml")},
        "config-is-a-fifo": {"architecture": str(folder / "pipe.yaml")},
        "checkpoint-is-text": {"checkpoint": str(folder / "passwd.pt")},
        "checkpoint-is-empty": {"checkpoint": str(folder / "empty.safetensors")},
        "pt-is-empty": {"checkpoint": str(folder / "empty.pt")},
        "checkpoint-is-zero": {"checkpoint": "/dev/zero"},
        "checkpoint-is-a-fifo": {"checkpoint": str(folder / "pipe.pt")},
        "checkpoint-is-a-directory": {"checkpoint": str(folder / "a-directory.pt")},
        "checkpoint-is-a-list": {"checkpoint": str(folder / "list.pt")},
        "checkpoint-of-whole-numbers": {"checkpoint": str(folder / "int8.safetensors")},
        "checkpoint-is-a-dangling-link": {"checkpoint": str(folder / "dangling.pt")},
        "vocab-is-a-device": {"vocab": "/dev/null"},
        "vocoder-is-a-file": {"vocoder": str(folder / "passwd.pt")},
        "vocab-is-latin-1": {"vocab": str(folder / "latin1-vocab.txt")},
        "vocoder-cut-short": {"vocoder": str(folder / "cut-vocoder")},
        "vocoder-config-is-text": {"vocoder": str(folder / "vocoder-config-is-text")},
    }


@pytest.fixture(scope="module")
def broken_worker(tiny_settings, tiny_model_dir, broken_files, worker):
    entries = [fr_entry(tiny_model_dir, name, **changes) for name, changes in broken_files.items()]
    return Worker(dataclasses.replace(tiny_settings, models_json=json.dumps(entries), aligner="estimate"),
                  worker.models)


@pytest.mark.parametrize("model, problem", [
    ("hop-zero", "hop-zero.yaml: model.mel_spec.hop_length must be a whole number from 1 to 1024 (its win_length) "
                 "(got 0)"),
    ("rate-negative", "rate-negative.yaml: model.mel_spec.target_sample_rate must be a whole number from 8000 to "
                      "192000 (got -1)"),
    ("hop-fraction", "model.mel_spec.hop_length must be a whole number from 1 to 1024 (its win_length) (got 256.5)"),
    ("window-over-fft", "model.mel_spec.win_length must be a whole number from 1 to 1024 (its n_fft) (got 4096)"),
    ("rate-bomb", "model.mel_spec.target_sample_rate must be a whole number from 8000 to 192000 (got 96000000)"),
    ("mels-as-text", "model.mel_spec.n_mel_channels must be a whole number from 1 to 512 (got 'many')"),
    ("no-mel-spec", "no-mel-spec.yaml: not an f5-tts model config (it needs model.arch and model.mel_spec)"),
    ("config-is-text", "passwd.yaml: not an f5-tts model config"),
    ("config-is-a-fifo", "pipe.yaml is a FIFO (a named pipe), not a file"),
    ("checkpoint-is-text", "passwd.pt is not a PyTorch checkpoint (.pt)"),
    ("checkpoint-is-empty", "empty.safetensors is empty"),
    ("pt-is-empty", "empty.pt is empty"),
    ("checkpoint-is-zero", "checkpoint: /dev/zero is a device, not a file"),
    ("checkpoint-is-a-fifo", "pipe.pt is a FIFO (a named pipe), not a file"),
    ("checkpoint-is-a-directory", "a-directory.pt is a directory, not a file"),
    ("checkpoint-is-a-list", "list.pt holds a list, not a model's weights"),
    ("checkpoint-of-whole-numbers", "the checkpoint holds whole numbers (torch.int8), not floating-point weights, in "
                                    "transformer."),
    ("checkpoint-is-a-dangling-link", "dangling.pt is a link to a file that does not exist"),
    ("vocab-is-a-device", "vocabulary: /dev/null is a device, not a file"),
    ("vocoder-is-a-file", "passwd.pt is a file, not a folder of config.yaml and pytorch_model.bin"),
    ("vocab-is-latin-1", "latin1-vocab.txt is not UTF-8 text (byte 0xe0 at "),
    ("vocoder-cut-short", "cut-vocoder/pytorch_model.bin is not the weights of the Vocos its config describes"),
    ("vocoder-config-is-text", "vocoder-config-is-text/config.yaml is not a Vocos config"),
])
def test_a_model_whose_files_are_not_what_they_say_is_a_model_error(broken_worker, model, problem):
    """Such models used to load and then fail every job as ``internal: ZeroDivisionError`` (a hop of 0) or
    ``internal: ValueError`` (a negative rate); or fail to load with torch's "IndexError: list index out of range"
    (a text file) and "EOFError: " (an empty one); or call /dev/zero, a FIFO and a directory "does not exist"."""
    out = broken_worker.handle({"text": "Bonjour.", "model": model, **FAST})
    error = out.get("error", "")
    assert error.startswith(f'model: "{model}": ') and problem in error, out
    assert "internal" not in error and "does not exist" not in error.replace("a file that does not exist", "")
    assert model not in broken_worker.pool.loaded()


DEEP = 50_000


@pytest.mark.parametrize("text", [
    "[" * DEEP + "]" * DEEP,
    '{"a": ' * DEEP + "1" + "}" * DEEP,
    '[{"name": "fr", "architecture": "F5TTS_Base", "checkpoint": "x.pt", "languages": ' + "[" * DEEP + "]" * DEEP + "}]",
    '{"fr": {"license": ' + '{"x": ' * DEEP + "null" + "}" * DEEP + "}}",
], ids=["lists", "objects", "inside an entry", "inside a named entry"])
def test_json_nested_past_any_entry_is_a_settings_error_not_a_recursion_error(tiny_settings, tmp_path, text):
    """A 50,000-deep MODELS ended the worker with a RecursionError's traceback (exit status 1) instead of the
    one line and exit status 2 of every other bad setting; the registry file is read the same way."""
    with pytest.raises(SettingsError) as err:
        ModelRegistry.from_settings(dataclasses.replace(tiny_settings, models_json=text))
    assert str(err.value) == "MODELS: not valid model entries (JSON nested too deeply to read)"
    registry = tmp_path / "models.json"
    registry.write_text(text)
    with pytest.raises(SettingsError, match=r"^MODEL_REGISTRY_FILE .*models\.json: not valid model entries"):
        ModelRegistry.from_settings(dataclasses.replace(tiny_settings, model_registry_file=registry))


@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
def test_a_registry_file_that_is_not_a_file_is_refused_before_it_is_read(tiny_settings, tmp_path, kind):
    """MODEL_REGISTRY_FILE=/dev/zero was read to the end, which never comes (memory grew until the worker died);
    a FIFO waited for a writer for ever."""
    import os
    from pathlib import Path

    path = {"device": lambda: Path("/dev/zero"), "fifo": lambda: (os.mkfifo(tmp_path / "models.json"),
                                                                   tmp_path / "models.json")[1],
            "directory": lambda: tmp_path}[kind]()
    settings = dataclasses.replace(tiny_settings, model_registry_file=path)
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("error", _settings_error(settings)), daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the registry file is still being read"
    assert outcome["error"] == f"MODEL_REGISTRY_FILE {path} " + {
        "device": "is a device, not a file", "fifo": "is a FIFO (a named pipe), not a file",
        "directory": "is a directory, not a file"}[kind]


def _settings_error(settings) -> str | None:
    try:
        ModelRegistry.from_settings(settings)
    except SettingsError as exc:
        return str(exc)
    return None


def test_a_load_failure_is_a_model_error_and_anything_else_passes_unchanged():
    """A plain failure becomes the job's ``model:`` error; a refusal, a stop, an interrupt and a CUDA fault
    keep their own kind, so the worker's error policy still sees them (a CUDA fault has it replaced)."""
    import torch

    from f5_worker.stopping import JobStopped
    from f5_worker.tts.model_pool import load_error

    passing = [JobError("model", '"x": no such file'), JobStopped("while loading"), KeyboardInterrupt(),
               RuntimeError("CUDA error: an illegal memory access was encountered"),
               torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")]
    for exc in passing:
        assert load_error("x", exc) is exc, exc
    error = load_error("x", ValueError("bad header"))
    assert isinstance(error, JobError) and str(error) == 'model: "x": cannot be loaded: ValueError: bad header'


def test_a_job_stopped_while_its_own_model_load_runs_stops_at_once_and_the_load_goes_on(models_settings, worker):
    """A stop used to wait for the model the job itself had started loading (a download took 21 s to
    honour a cancel): the job stops waiting at once, and the load is kept for the jobs after it."""

    pool = fresh_pool(models_settings, worker.models)
    stopped: list = []

    flags: list = []
    with skipped_weight_init():  # holds the load at its first step
        first = threading.Thread(target=stoppable_job, args=(pool, "tiny-fr", flags, stopped))
        first.start()
        deadline = time.monotonic() + 60  # a hang guard: the wait ends as soon as the load has begun
        while "tiny-fr" not in pool._loading or not flags:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        flags[0].set()  # RunPod stops the job while its load is held
        first.join(30)  # a job that ignored its stop would wait here for the held load: for ever
        assert not first.is_alive(), "a stopped job kept waiting for the model it was loading"
    assert len(stopped) == 1 and "model tiny-fr was loaded" in str(stopped[0])
    engine = pool.engine("tiny-fr")  # the load went on: the next job finds it, or waits for its end
    assert pool.loaded() == ["tiny", "tiny-fr"] and pool.loads == 1 and pool.engine("tiny-fr") is engine
