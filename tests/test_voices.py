"""The voice store on both backends: names, the audio as stored, overwrite, races, cache, outages."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV
from f5_worker.errors import JobError
from f5_worker.limits import MAX_VOICE_NAME_CHARS, check_voice_name
from f5_worker.storage.base import check_key
from f5_worker.storage.local import LocalStorage
from f5_worker.storage.stores import Stores
from f5_worker.transcribe import WhisperTranscriber
from f5_worker.voices import VoiceStore, voice_audio_from_upload


def wav_bytes(wave: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def speechlike(seconds: float, sample_rate: int = 24000, seed: int = 0, pad_s: float = 0.0) -> np.ndarray:
    """Amplitude-modulated harmonics: loud enough not to be trimmed as silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 110 + 40 * seed
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    wave *= 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 3 * t))
    wave = (0.2 * wave / np.max(np.abs(wave)) + 0.003 * rng.standard_normal(len(t))).astype(np.float32)
    pad = np.zeros(int(pad_s * sample_rate), dtype=np.float32)
    return np.concatenate([pad, wave, pad])


REF_WAV = DEFAULT_VOICE_WAV.read_bytes()


@pytest.fixture(params=["local", "bucket"])
def store(request, tmp_path):
    if request.param == "local":
        return VoiceStore(LocalStorage(tmp_path / "volume" / "f5-worker"))
    request.getfixturevalue("bucket_env")
    return VoiceStore(Stores.from_env().voices)


# --- names ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "../etc", "a/b", "a\\b", "..", "x..y", "/abs", ".hidden", "-dash", "a b", "naïve", "", "x" * (MAX_VOICE_NAME_CHARS + 1),
    "a\x00b", "voice\n",
])
def test_unsafe_names_refused(name):
    with pytest.raises(JobError) as err:
        check_voice_name(name)
    assert err.value.field == "name"


def test_oversized_name_message():
    with pytest.raises(JobError, match=f"65 characters long; the limit is {MAX_VOICE_NAME_CHARS}"):
        check_voice_name("a" * 65)


@given(st.text(max_size=80))
def test_accepted_names_are_single_safe_key_segments(name):
    try:
        check_voice_name(name)
    except JobError:
        return
    assert len(name) <= MAX_VOICE_NAME_CHARS and "/" not in name and ".." not in name
    check_key(f"voices/{name}/voice.json")  # never raises for an accepted name


def test_path_traversal_never_touches_the_filesystem(tmp_path):
    store = VoiceStore(LocalStorage(tmp_path / "root"))
    for name in ("../escape", "..", "a/../../b"):
        with pytest.raises(JobError, match="^name: "):
            store.save(name, REF_WAV, ref_text="x")
        with pytest.raises(JobError, match="^name: "):
            store.delete(name)
    assert not any(tmp_path.rglob("*.wav"))


# --- round trip -------------------------------------------------------------------------------------

def test_upload_list_get_delete(store):
    assert store.list() == []
    info = store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)
    assert info.ref_text == DEFAULT_VOICE_TEXT and info.ref_text_source == "given"
    assert 4.0 < info.duration_s <= 5.4 and info.sample_rate == 24000
    store.save("bob.v2", wav_bytes(speechlike(3.0, seed=1), 24000), ref_text="Bob speaking.")

    listed = [v.public() for v in store.list()]
    assert [v["name"] for v in listed] == ["anna", "bob.v2"]
    assert set(listed[0]) >= {"name", "duration", "ref_text", "size", "created"}
    assert listed[0]["size"] == info.size_bytes > 0

    voice = store.load("anna")
    assert voice.wave.dtype == np.float32 and voice.sample_rate == 24000
    assert abs(len(voice.wave) / 24000 - info.duration_s) < 0.01

    with pytest.raises(JobError, match="already exists; set overwrite: true"):
        store.save("anna", REF_WAV, ref_text="again")
    assert store.info("anna").ref_text == DEFAULT_VOICE_TEXT

    deleted = store.delete("anna")
    assert deleted.name == "anna"
    assert [v.name for v in store.list()] == ["bob.v2"]
    with pytest.raises(JobError, match="^voice: no voice named 'anna'"):
        store.load("anna")
    with pytest.raises(JobError, match="^name: no voice named 'anna'"):
        store.delete("anna")
    assert [o.key for o in store.storage.list("voices/anna/")] == []


def test_voices_are_listed_by_name_not_by_storage_key(store):
    """The store lists keys (``voices/<name>/voice.json``), and "/" sorts after "-" and "." but before "_":
    by key "a.b" comes before "a"; by name, as list_voices promises, after it."""
    for n, name in enumerate(["a_b", "a.b", "a", "a-b"]):
        store.save(name, wav_bytes(speechlike(1.5, seed=n), 24000), ref_text="A short clip.")
    assert [o.key for o in store.storage.list("voices/") if o.key.endswith("voice.json")] == [
        "voices/a-b/voice.json", "voices/a.b/voice.json", "voices/a/voice.json", "voices/a_b/voice.json"]
    assert [v.name for v in store.list()] == ["a", "a-b", "a.b", "a_b"]


def test_voice_names_are_case_sensitive(store):
    """"Anna" and "anna" are two voices (docs/api.md): neither is refused as the other, and each keeps,
    speaks and loses its own audio."""
    upper = store.save("Anna", wav_bytes(speechlike(1.5, seed=0), 24000), ref_text="The first Anna.")
    lower = store.save("anna", wav_bytes(speechlike(2.0, seed=1), 24000), ref_text="The second one.")
    assert [v.name for v in store.list()] == ["Anna", "anna"]
    assert (store.info("Anna").ref_text, store.info("anna").ref_text) == ("The first Anna.", "The second one.")
    assert len(store.load("Anna").wave) != len(store.load("anna").wave)
    with pytest.raises(JobError, match="^voice: no voice named 'ANNA'$"):
        store.load("ANNA")
    store.delete("anna")
    assert [v.name for v in store.list()] == ["Anna"] and store.info("Anna").version == upper.version
    assert store.load("Anna").info.duration_s == upper.duration_s != lower.duration_s


def test_reference_is_stored_as_24k_mono_and_trimmed(tmp_path):
    store = VoiceStore(LocalStorage(tmp_path))
    voice = speechlike(3.0, sample_rate=44100, pad_s=1.0)
    stereo = np.stack([voice, voice * 0.5], axis=1)
    info = store.save("stereo", wav_bytes(stereo, 44100), ref_text="Hello there.")
    stored, rate = sf.read(io.BytesIO(store.storage.get(info.audio_key)))
    assert rate == 24000 and stored.ndim == 1
    assert 2.9 < len(stored) / rate < 3.15  # 1 s of silence trimmed from each edge, 50 ms tail kept
    assert info.duration_s == pytest.approx(len(stored) / rate, abs=1e-3)


def test_audio_recognised_by_content_not_name(tmp_path):
    store = VoiceStore(LocalStorage(tmp_path))
    flac = io.BytesIO()
    sf.write(flac, speechlike(2.0), 24000, format="FLAC")
    assert store.save("flac", flac.getvalue(), ref_text="A flac file.").duration_s > 1.9
    with pytest.raises(JobError, match="^audio: could not decode audio"):
        store.save("junk", b"ID3 this is not audio at all" * 10, ref_text="x")
    with pytest.raises(JobError, match="^audio: reference audio is silent or shorter than 0.5 s"):
        store.save("silent", wav_bytes(np.zeros(48000, dtype=np.float32), 24000), ref_text="x")
    with pytest.raises(JobError, match="^audio: reference audio is silent or shorter than 0.5 s"):
        store.save("short", wav_bytes(speechlike(0.4, pad_s=1.0), 24000), ref_text="x")


REFERENCE_CLIPS = {  # a clip and its transcript: what both checks see
    "0.7 s of speech": (speechlike(0.7, pad_s=0.5), "Hi there."),
    "0.3 s of speech": (speechlike(0.3, pad_s=0.5), "Hi."),
    "speech at -50 dBFS": (speechlike(2.0) * np.float32(0.015), "A quiet recording."),
    "digital silence": (np.zeros(48000, dtype=np.float32), "Nothing at all."),
    "20 s of speech": (speechlike(20.0), "twenty seconds of words " * 12),
}


@pytest.mark.parametrize("clip", REFERENCE_CLIPS)
def test_a_reference_is_checked_the_same_as_a_jobs_clip_and_as_an_upload(tmp_path, clip):
    """One rule for a reference voice, wherever it comes from (docs/api.md, "The reference voice"): a clip a
    job may speak with can be stored as a voice, and one an upload refuses is refused in a job alike."""
    from f5_worker.tts.reference import ReferencePreparer

    wave, text = REFERENCE_CLIPS[clip]
    data = wav_bytes(wave, 24000)
    outcomes = []
    for check in (lambda: ReferencePreparer(max_input_seconds=120, keep_seconds=12).from_bytes(data, text, "audio", 0.1),
                  lambda: VoiceStore(LocalStorage(tmp_path)).save("anna", data, ref_text=text)):
        try:
            check()
            outcomes.append(None)
        except JobError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1], outcomes


def test_long_reference_with_text_refused_and_without_text_clipped_then_transcribed(tmp_path):
    heard = []

    def transcriber(wave, sample_rate):
        heard.append(len(wave) / sample_rate)
        return "  words transcribed from twelve seconds of speech  "

    store = VoiceStore(LocalStorage(tmp_path), transcriber=transcriber)
    long = wav_bytes(speechlike(20.0), 24000)
    with pytest.raises(JobError, match="^audio: holds 20.0 s of speech; a reference keeps at most 12 s"):
        store.save("long", long, ref_text="twenty seconds of words")
    quiet_tail = wav_bytes(np.concatenate([speechlike(5.0), np.zeros(10 * 24000, np.float32)]), 24000)
    kept = store.save("quiet-tail", quiet_tail, ref_text="five seconds of words and then silence")
    assert kept.ref_text_source == "given" and kept.duration_s < 5.5  # only silence was beyond 12 s
    info = store.save("long", long)
    assert info.ref_text == "words transcribed from twelve seconds of speech" and info.ref_text_source == "asr"
    assert heard == [pytest.approx(info.duration_s, abs=1e-3)] and info.duration_s <= 12.1
    with pytest.raises(JobError, match="limit is 120 s"):
        store.save("huge", wav_bytes(speechlike(121.0), 8000), ref_text="x")


@pytest.mark.slow
def test_upload_without_text_and_no_asr_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asr = WhisperTranscriber(model="openai/whisper-tiny-not-cached-here", device="cpu")
    store = VoiceStore(LocalStorage(tmp_path), transcriber=asr)
    for _ in range(2):  # the second attempt reuses the remembered failure
        with pytest.raises(JobError) as err:
            store.save("anna", REF_WAV)
        assert err.value.field == "ref_text"
        assert "speech recognition model 'openai/whisper-tiny-not-cached-here' is unavailable" in str(err.value)
        assert "give ref_text" in str(err.value)
    assert not asr.loaded
    assert store.list() == [] and not any(tmp_path.rglob("*.wav"))

    missing_dir = tmp_path / "no-model-here"
    with pytest.raises(JobError, match="^ref_text: .*unavailable"):
        VoiceStore(LocalStorage(tmp_path), transcriber=WhisperTranscriber(model=str(missing_dir))).save("x", REF_WAV)


# --- overwrite, races -------------------------------------------------------------------------------

def test_overwrite_replaces_and_invalidates_cache(store):
    first = store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)
    builds = []

    def build(voice):
        builds.append(voice.info.version)
        return ("prepared", voice.info.version)

    assert store.prepared("anna", 0.1, build) == ("prepared", first.version)
    assert store.prepared("anna", 0.1, build) == ("prepared", first.version)
    assert store.load("anna") is store.load("anna")
    assert builds == [first.version]

    second = store.save("anna", wav_bytes(speechlike(2.5), 24000), ref_text="New words.", overwrite=True)
    assert second.version != first.version
    assert store.prepared("anna", 0.1, build) == ("prepared", second.version)
    assert store.load("anna").info.ref_text == "New words."
    assert builds == [first.version, second.version]
    keys = [o.key for o in store.storage.list("voices/anna/")]
    assert keys == sorted([second.audio_key, "voices/anna/voice.json"])  # the old audio is gone


def test_change_by_another_worker_is_noticed(store):
    """Two stores on one backend stand for two workers: what one has in memory is never served once the
    other has replaced or deleted the voice, not even when a new voice of the same name and text follows."""
    other = VoiceStore(store.storage)
    first = store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)

    def build(voice):
        return ("prepared", voice.info.version, len(voice.wave))

    assert store.load("anna").info.ref_text == DEFAULT_VOICE_TEXT
    assert store.prepared("anna", 0.1, build)[1] == first.version
    replaced = other.save("anna", wav_bytes(speechlike(2.0), 24000), ref_text="Replaced elsewhere.", overwrite=True)
    assert store.load("anna").info.ref_text == "Replaced elsewhere."
    assert store.prepared("anna", 0.1, build)[1] == replaced.version

    other.delete("anna")
    with pytest.raises(JobError, match="^voice: no voice named 'anna'"):
        store.load("anna")
    with pytest.raises(JobError, match="^voice: no voice named 'anna'"):
        store.prepared("anna", 0.1, build)

    again = other.save("anna", wav_bytes(speechlike(3.0, seed=2), 24000), ref_text="Replaced elsewhere.")
    voice = store.load("anna")
    assert voice.info.version == again.version and voice.info.audio_key == again.audio_key
    assert len(voice.wave) == len(VoiceStore(store.storage).load("anna").wave)  # the new audio, read afresh
    assert store.prepared("anna", 0.1, build) == ("prepared", again.version, len(voice.wave))


def test_a_voice_replaced_after_a_job_read_it_keeps_the_jobs_model_and_language_or_fails_it(tmp_path):
    """A job picks its model and language from the metadata it read; the voice replaced before its audio is
    loaded is used only if it keeps the same ones, else the job fails with words saying to send it again."""
    store = VoiceStore(LocalStorage(tmp_path))
    other = VoiceStore(store.storage)
    read = store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT, model="tiny", language="en")
    same = other.save("anna", REF_WAV, ref_text="Replaced, same model.", model="tiny", language="en", overwrite=True)
    assert store.load("anna", "segments.0.voice", read).info.version == same.version
    other.save("anna", REF_WAV, ref_text="Replaced for French.", model="tiny-fr", language="fr", overwrite=True)
    with pytest.raises(JobError) as refused:
        store.prepared("anna", 0.1, lambda voice: voice, "segments.0.voice", read)
    assert str(refused.value) == ("segments.0.voice: voice 'anna' was replaced while this job was starting, and "
                                  "now keeps model 'tiny-fr' and language 'fr' (it kept 'tiny' and 'en'); send the "
                                  "job again")


def _race(store, name, payloads, overwrite):
    barrier = threading.Barrier(len(payloads))
    outcomes: dict[int, object] = {}

    def upload(i):
        barrier.wait()
        try:
            outcomes[i] = store.save(name, payloads[i], ref_text=f"Voice number {i}.", overwrite=overwrite)
        except JobError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_concurrent_uploads_of_one_name_have_one_winner(store):
    payloads = [wav_bytes(speechlike(2.0 + i, seed=i), 24000) for i in range(2)]
    outcomes = _race(store, "race", payloads, overwrite=False)
    winners = [i for i, o in outcomes.items() if not isinstance(o, Exception)]
    losers = [o for o in outcomes.values() if isinstance(o, Exception)]
    assert len(winners) == 1 and len(losers) == 1
    assert str(losers[0]) == "name: a voice named 'race' already exists; set overwrite: true to replace it"
    w = winners[0]
    voice = VoiceStore(store.storage).load("race")  # a fresh reader: no cache involved
    assert voice.info.ref_text == f"Voice number {w}."
    expected = voice_audio_from_upload(payloads[w], "audio", max_input_seconds=120, keep_seconds=12)
    assert len(voice.wave) == len(expected)
    assert np.max(np.abs(voice.wave - expected)) < 1e-3  # 16-bit storage
    assert sorted(o.key for o in store.storage.list("voices/race/")) == sorted(
        [voice.info.audio_key, "voices/race/voice.json"]
    )


def test_concurrent_overwrites_leave_one_consistent_voice(store):
    payloads = [wav_bytes(speechlike(2.0 + i, seed=i), 24000) for i in range(3)]
    outcomes = _race(store, "race", payloads, overwrite=True)
    assert all(not isinstance(o, Exception) for o in outcomes.values())
    voice = VoiceStore(store.storage).load("race")
    i = int(voice.info.ref_text.split()[-1].rstrip("."))
    expected = voice_audio_from_upload(payloads[i], "audio", max_input_seconds=120, keep_seconds=12)
    assert len(voice.wave) == len(expected)  # text and audio come from the same upload


def test_damaged_voice_reports_clearly(tmp_path):
    store = VoiceStore(LocalStorage(tmp_path))
    info = store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)
    store.storage.delete(info.audio_key)
    with pytest.raises(JobError, match=r"damaged: its audio \(missing\); upload it again with overwrite: true"):
        VoiceStore(store.storage).load("anna")
    store.storage.put("voices/bad/voice.json", b"{not json")
    assert [v.name for v in store.list()] == ["anna"]  # a broken voice does not hide the others
    meta = json.loads(info.to_json())
    for field, value in (("ref_text", None), ("ref_text", " "), ("sample_rate", "24000"), ("audio_key", 7)):
        store.storage.put("voices/typo/voice.json", json.dumps(dict(meta, name="typo", **{field: value})).encode())
        with pytest.raises(JobError, match=f"voice: voice 'typo' is damaged: its metadata \\({field}: "):
            store.load("typo")  # well-formed JSON of the wrong shape is damage too, not an internal error
    with pytest.raises(JobError, match=r"damaged: its metadata \(not valid JSON\); upload it again with overwrite: true"):
        store.load("bad")
    with pytest.raises(JobError, match="damaged: its metadata"):
        store.save("bad", REF_WAV, ref_text="Repaired, in other words.")
    assert store.save("bad", REF_WAV, ref_text="Repaired, in other words.", overwrite=True).ref_text == "Repaired, in other words."
    assert store.load("bad").info.ref_text == "Repaired, in other words."
    store.save("anna", REF_WAV, ref_text="Repaired too, in other words.", overwrite=True)
    assert VoiceStore(store.storage).load("anna").info.ref_text == "Repaired too, in other words."


def test_bucket_outage_gives_clear_errors_then_recovers(bucket_env, seaweed):
    store = VoiceStore(Stores.from_env().voices)
    store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)
    with seaweed.stopped():
        for call in (lambda: store.list(), lambda: store.load("anna"),
                     lambda: store.save("bob", REF_WAV, ref_text="x"), lambda: store.delete("anna")):
            with pytest.raises(JobError) as err:
                call()
            assert err.value.field == "storage"
            assert bucket_env["BUCKET_NAME"] in str(err.value) and seaweed.endpoint in str(err.value)
    assert store.load("anna").info.ref_text == DEFAULT_VOICE_TEXT


def test_a_transcript_far_too_long_for_the_audio_is_refused(tmp_path):
    store = VoiceStore(LocalStorage(tmp_path))
    with pytest.raises(JobError, match=r"^ref_text: is \d+ bytes of text for [\d.]+ s of reference audio, over 60"):
        store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT * 20)
    assert store.list() == []
    assert store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT).name == "anna"


def test_prepared_variants_are_bounded(store):
    """Each distinct target RMS a caller sends is a variant; they must not pile up in a long-lived worker."""
    from f5_worker.voices import PREPARED_PER_VOICE

    store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)
    builds = []
    bound = store.cache_size * PREPARED_PER_VOICE
    for i in range(bound + 50):
        store.prepared("anna", 0.01 + i * 1e-4, lambda voice: builds.append(1) or len(builds))
    assert len(store._prepared) == bound
    newest = 0.01 + (bound + 49) * 1e-4
    assert store.prepared("anna", newest, lambda voice: -1) == bound + 50  # still cached: not rebuilt
    assert store.prepared("anna", 0.01, lambda voice: -1) == -1  # the oldest went first


def test_a_first_upload_whose_answer_was_lost_is_kept(store, monkeypatch):
    """The conditional write landed but its answer was lost, and the client's retry was refused (412): the
    voice is ours. It used to be answered "already exists", with its own audio deleted under the new metadata."""
    real = store.storage.put_if_absent

    def landed_then_refused(key, data, content_type="application/octet-stream"):
        assert real(key, data, content_type)
        return real(key, data, content_type)  # the retry: the object exists now

    monkeypatch.setattr(store.storage, "put_if_absent", landed_then_refused)
    info = store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)
    monkeypatch.undo()
    assert store.info("anna").version == info.version
    assert store.load("anna").info.audio_key == info.audio_key  # its audio is there
    with pytest.raises(JobError, match="^name: a voice named 'anna' already exists"):
        store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)  # a real second upload is still refused


def test_what_fails_after_the_metadata_is_written_or_deleted_fails_neither_the_upload_nor_the_delete(store, monkeypatch):
    """The metadata is the commit point: once it is written, the voice is saved; once it is removed, the voice
    is gone. Removing the audio no metadata points to any more comes after, and a bucket that failed then made
    a saved voice's upload answer "storage: could not save voice" (its retry: "already exists") and a deleted
    voice's "could not delete voice" (its retry: "no voice named")."""
    from f5_worker.storage.base import StorageError

    first = store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)
    real_delete, real_get = store.storage.delete, store.storage.get

    def unavailable(*args, **kwargs):
        raise StorageError("503 Slow Down")

    monkeypatch.setattr(store.storage, "delete", unavailable)
    monkeypatch.setattr(store.storage, "list", unavailable)
    replaced = store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT, overwrite=True)
    assert store.info("anna").version == replaced.version != first.version
    bob = store.save("bob", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)  # a first upload: its tidying lists the folder
    assert store.info("bob").version == bob.version
    metadata_read = []

    def fails_after_the_metadata(key):  # the tidying reads the metadata again: the bucket is gone by then
        if key.endswith("voice.json") and metadata_read:
            raise StorageError("503 Slow Down")
        metadata_read.append(key)
        return real_get(key)

    monkeypatch.setattr(store.storage, "get", fails_after_the_metadata)
    assert store.save("carol", REF_WAV, ref_text=DEFAULT_VOICE_TEXT).name == "carol"
    monkeypatch.setattr(store.storage, "get", real_get)
    monkeypatch.setattr(store.storage, "delete", lambda key: (
        unavailable() if key.endswith(".wav") else real_delete(key)))  # the metadata goes, the audio cannot
    assert store.delete("anna").version == replaced.version
    with pytest.raises(JobError, match="^name: no voice named 'anna'"):
        store.info("anna")
    monkeypatch.undo()
    assert [v.name for v in store.list()] == ["bob", "carol"]


def test_listing_fails_on_a_storage_error_instead_of_leaving_voices_out(store, monkeypatch):
    from f5_worker.storage.base import StorageError

    for name in ("anna", "bob"):
        store.save(name, REF_WAV, ref_text=DEFAULT_VOICE_TEXT)
    real_get = store.storage.get

    def flaky_get(key):
        if key == "voices/bob/voice.json":
            raise StorageError("503 Slow Down")
        return real_get(key)

    monkeypatch.setattr(store.storage, "get", flaky_get)
    with pytest.raises(JobError, match=r"^storage: could not read voice 'bob'"):
        store.list()
    monkeypatch.undo()
    assert [v.name for v in store.list()] == ["anna", "bob"]


@pytest.mark.parametrize("field, value, problem", [
    ("sample_rate", 1, r"sample_rate: must be greater than or equal to 4000"),  # was resampled "from 1 Hz": 24 GB
    ("ref_text", "word " * 200_000, r"ref_text: must have at most 1000 characters"),  # was a tensor size error
    ("audio_key", "../../etc/passwd", r"audio_key: must name a file in voices/anna/"),  # was "unsafe storage key"
    ("audio_key", "/etc/passwd", r"audio_key: must name a file in voices/anna/"),
    ("audio_key", "voices/anna/voice.json", r"audio_key: must name a file in voices/anna/"),
    ("name", "bob", r"name: is not the voice's own"),
    # json writes these as Infinity and NaN; listed back, they made a result that is not JSON
    ("duration_s", float("inf"), r"duration_s: must be a finite number"),
    ("duration_s", float("nan"), r"duration_s: must be a finite number"),
])
def test_damaged_metadata_names_its_field_and_the_voice_can_still_be_deleted(tmp_path, field, value, problem):
    """voice.json is read back from storage another tool may have changed: validated like a request."""
    store = VoiceStore(LocalStorage(tmp_path))
    info = store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)
    meta = json.loads(info.to_json())
    store.storage.put("voices/anna/voice.json", json.dumps(dict(meta, **{field: value})).encode())
    fresh = VoiceStore(store.storage)
    with pytest.raises(JobError, match=rf"^voice: voice 'anna' is damaged: its metadata \({problem}.*\); upload it "
                                       r"again with overwrite: true$"):
        fresh.load("anna")
    assert fresh.delete("anna") is None  # deleted, though its metadata cannot be read
    with pytest.raises(JobError, match="^name: no voice named 'anna'"):
        fresh.info("anna")
    left = [o.key for o in store.storage.list("voices/")]
    if field == "audio_key":  # its audio is no longer named: an orphan, collected like a lost upload's
        assert left == [info.audio_key]
    else:
        assert left == []  # its own audio went with it


def test_deleting_a_voice_touches_only_its_own_files(tmp_path):
    """A voice whose audio_key names another voice's audio must not delete that audio."""
    store = VoiceStore(LocalStorage(tmp_path))
    anna = store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)
    bob = store.save("bob", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)
    meta = json.loads(anna.to_json())
    store.storage.put("voices/anna/voice.json", json.dumps(dict(meta, audio_key=bob.audio_key)).encode())
    with pytest.raises(JobError, match=r"^voice: voice 'anna' is damaged: its metadata \(audio_key: "):
        VoiceStore(store.storage).load("anna")
    store.delete("anna")
    assert store.storage.get(bob.audio_key)  # bob's audio is still there
    assert len(VoiceStore(store.storage).load("bob").wave) > 0
    # anna's own audio, no longer named by her metadata, is left for the orphan collection
    assert [o.key for o in store.storage.list("voices/")] == [anna.audio_key, bob.audio_key, "voices/bob/voice.json"]


def test_stored_audio_is_checked_like_any_input(tmp_path):
    """Audio replaced behind the worker's back (a huge declared rate, absurd values) is damage, not a crash."""
    store = VoiceStore(LocalStorage(tmp_path), max_input_seconds=20)
    info = store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)
    buf = io.BytesIO()
    sf.write(buf, np.full(24000 * 3, 1e38, dtype=np.float32), 24000, format="WAV", subtype="FLOAT")
    store.storage.put(info.audio_key, buf.getvalue())
    with pytest.raises(JobError, match=r"^voice: voice 'anna' is damaged: its audio \(audio has samples of 1e\+38"):
        VoiceStore(store.storage).load("anna")


def test_a_transcript_far_too_short_for_the_audio_is_refused_given_heard_or_stored(tmp_path):
    """A transcript far too short for its audio draws out every job with the voice: refused at upload, given
    or heard by speech recognition, and at use, for a voice stored before the rule (or edited since)."""
    store = VoiceStore(LocalStorage(tmp_path), transcriber=lambda wave, rate: " Oh. ")
    clip = wav_bytes(speechlike(6.0), 24000)
    with pytest.raises(JobError, match=r"^ref_text: is 2 bytes of text for 6\.\d s of reference audio, under 3 a "):
        store.save("anna", clip, ref_text="Hm")
    heard = (r"^ref_text: not given, and the transcript speech recognition made \('Oh\.'\) is 3 bytes of text for "
             r"6\.\d s of reference audio, under 3 a second: .*; give ref_text$")
    with pytest.raises(JobError, match=heard):
        store.save("anna", clip)
    assert store.list() == []
    info = store.save("anna", clip, ref_text="A transcript of six seconds.")
    meta = json.loads(info.to_json())
    store.storage.put("voices/anna/voice.json", json.dumps(dict(meta, ref_text="Yo")).encode())
    stored = (r"^segments\.2\.voice: voice 'anna' cannot be used: its ref_text is 2 bytes of text for 6\.\d s of "
              r"reference audio, under 3 a second: .*; upload it again with overwrite: true and the transcript of "
              r"its audio$")
    with pytest.raises(JobError, match=stored):
        VoiceStore(store.storage).load("anna", "segments.2.voice")


def test_a_deleted_or_replaced_voice_leaves_no_prepared_form_behind(tmp_path):
    """A prepared form holds a reference and its mels (on the GPU once sampled): those of a voice that was
    deleted or replaced can never be asked for again, so they go with it, not when the cache fills."""
    store = VoiceStore(LocalStorage(tmp_path))
    store.save("anna", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)
    store.save("bob", REF_WAV, ref_text=DEFAULT_VOICE_TEXT)
    for name in ("anna", "bob"):
        store.prepared(name, 0.1, lambda voice: object())
    store.delete("anna")
    assert {key[0] for key, _ in store._prepared.items()} == {"bob"}
    store.save("bob", REF_WAV, ref_text=DEFAULT_VOICE_TEXT, overwrite=True)
    store.load("bob")
    assert store._prepared.items() == []
