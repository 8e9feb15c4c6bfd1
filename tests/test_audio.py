"""Audio I/O: every output format decodes back; trimming, joining and silence removal keep their promises."""

import base64
import io

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from f5_worker import audio
from f5_worker.errors import JobError

SR = 24000


def tone(seconds: float, freq: float = 220.0, amp: float = 0.3, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus"])
def test_encoded_formats_decode_to_same_rate_and_duration(fmt):
    wave = tone(1.5)
    data = audio.encode_audio(wave, SR, fmt)
    decoded, sr = audio.decode_audio(data, "x")
    assert sr == SR
    # mp3/opus codecs add a little priming/padding; lossless formats are exact
    tolerance = 0 if fmt in ("wav", "flac") else int(0.08 * SR)
    assert abs(len(decoded) - len(wave)) <= tolerance
    if fmt in ("wav", "flac"):
        assert np.max(np.abs(decoded - wave)) < 1e-3


def test_pcm_is_raw_s16le():
    wave = tone(0.25)
    data = audio.encode_audio(wave, SR, "pcm")
    assert len(data) == 2 * len(wave)
    back = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767
    assert np.max(np.abs(back - wave)) < 1e-3


def test_decode_mixes_stereo_to_mono_and_keeps_rate():
    stereo = np.stack([tone(0.5), -tone(0.5) * 0.5], axis=1)
    buf = io.BytesIO()
    sf.write(buf, stereo, 16000, format="WAV")
    mono, sr = audio.decode_audio(buf.getvalue(), "ref_audio_base64")
    assert sr == 16000 and mono.ndim == 1


@pytest.mark.parametrize("junk", [b"", b"not audio at all", b"RIFF\x00\x00\x00\x00WAVEfmt "])
def test_undecodable_audio_is_a_job_error(junk):
    with pytest.raises(JobError, match="^ref_audio_base64: "):
        audio.decode_audio(junk, "ref_audio_base64")


def test_base64_is_strict():
    with pytest.raises(JobError, match="ref_audio_base64: not valid base64"):
        audio.decode_base64("@@@###", "ref_audio_base64")
    assert audio.decode_base64("data:audio/wav;base64,aGVsbG8=", "f") == b"hello"
    wrapped = base64.encodebytes(b"hello world, " * 20).decode()  # a newline every 76 characters
    assert "\n" in wrapped and audio.decode_base64(wrapped, "f") == b"hello world, " * 20
    with pytest.raises(JobError, match="f: not valid base64"):
        audio.decode_base64("aGVs bG8=!", "f")


def test_resample_changes_length_by_ratio():
    out = audio.resample(tone(1.0, sr=16000), 16000, 24000)
    assert len(out) == 24000


def _dominant_hz(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[spectrum.argmax()])


@pytest.mark.timeout(60)
@settings(max_examples=25, deadline=None)
@given(rate=st.integers(audio.MIN_SAMPLE_RATE, audio.MAX_SAMPLE_RATE), target=st.sampled_from([16000, 24000]))
def test_any_declared_rate_resamples_quickly_keeping_length_and_pitch(rate, target):
    """A header may declare any rate: 44101 Hz once cost torchaudio's resampler ~18 GB and a minute."""
    wave = tone(0.25, freq=440.0, sr=rate)
    out = audio.resample(wave, rate, target)
    assert out.dtype == np.float32
    assert abs(len(out) - len(wave) * target / rate) <= 1
    assert abs(_dominant_hz(out, target) - 440.0) <= 8.0


@pytest.mark.parametrize("rate", [44101, 96001, 383999])
def test_odd_rates_go_to_soxr_and_match_torchaudio_where_both_work(rate):
    import soxr

    wave = tone(0.5, freq=300.0, sr=rate)
    out = audio.resample(wave, rate, 24000)
    np.testing.assert_array_equal(out, soxr.resample(wave, rate, 24000, quality="HQ"))
    sinc = audio.resample(tone(0.5, freq=300.0, sr=44100), 44100, 24000)  # a real rate: torchaudio, as upstream
    n = min(len(out), len(sinc)) - 200
    assert np.abs(out[100:n] - sinc[100:n]).max() < 0.02  # the same tone either way


@pytest.mark.parametrize("rate", [1, 3999, 384001, 2**31 - 1])
def test_decode_refuses_an_unusable_declared_rate(rate):
    buf = io.BytesIO()
    sf.write(buf, np.zeros(1000, dtype=np.float32), rate, format="WAV", subtype="PCM_16")
    with pytest.raises(JobError, match=f"ref_audio_base64: audio declares a sample rate of {rate} Hz"):
        audio.decode_audio(buf.getvalue(), "ref_audio_base64")


def test_long_reference_is_clipped_at_a_pause_with_a_warning():
    speech = tone(8.0)
    pause = np.zeros(int(1.2 * SR), dtype=np.float32)
    wave = np.concatenate([speech, pause, tone(8.0)])
    trimmed = audio.trim_reference(wave, SR, max_seconds=12.0)
    assert trimmed.warning and "at a pause" in trimmed.warning
    seconds = len(trimmed.wave) / SR
    assert 8.0 <= seconds <= 8.2  # the speech before the pause + 50 ms tail


def test_long_reference_without_pause_is_hard_cut():
    trimmed = audio.trim_reference(tone(20.0), SR, max_seconds=12.0)
    assert "no pause" in trimmed.warning
    assert len(trimmed.wave) / SR <= 12.06


def test_short_reference_only_loses_edge_silence():
    wave = np.concatenate([np.zeros(SR, np.float32), tone(2.0), np.zeros(SR, np.float32)])
    trimmed = audio.trim_reference(wave, SR)
    assert trimmed.warning is None
    assert abs(len(trimmed.wave) / SR - 2.05) < 0.03


@settings(max_examples=50, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=6),
    fade=st.floats(min_value=0.0, max_value=0.2),
)
def test_cross_fade_join_length(lengths, fade):
    waves = [np.ones(n, dtype=np.float32) for n in lengths]
    joined = audio.cross_fade_join(waves, 8000, fade)
    # each join overlaps min(fade samples, left so far, next) samples
    expected = lengths[0]
    for n in lengths[1:]:
        expected += n - min(int(fade * 8000), expected, n)
    assert len(joined) == expected
    assert np.allclose(joined, 1.0, atol=1e-6)  # fading ones into ones keeps ones


def test_remove_long_silences_shortens_only_long_pauses():
    wave = np.concatenate([tone(1.0), np.zeros(3 * SR, np.float32), tone(1.0), np.zeros(int(0.5 * SR), np.float32),
                           tone(1.0)])
    out = audio.remove_long_silences(wave, SR)
    # the 3 s pause becomes 1 s (500 ms each side); the 0.5 s pause is untouched
    assert abs(len(out) / SR - (1 + 1 + 1 + 0.5 + 1)) < 0.03


def _flac_of_silence(seconds: float, sr: int = 48000, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", sr, channels, format="FLAC", subtype="PCM_16") as f:
        block = np.zeros((sr * 10, channels), dtype=np.float32)
        for _ in range(int(seconds // 10)):
            f.write(block)
    return buf.getvalue()


def test_a_long_recording_is_refused_without_decoding_all_of_it():
    """An hour of silence is ~0.5 MB of FLAC and gigabytes decoded: refused from its header, cheaply."""
    import resource

    data = _flac_of_silence(3600)
    assert len(data) < 2_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(JobError, match=r"^audio_base64: audio is 3600\.0 s long; the limit is 120 s"):
        audio.decode_audio(data, "audio_base64", max_seconds=120)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, grown_mb


def test_a_header_that_undercounts_still_stops_at_the_limit():
    data = bytearray(_flac_of_silence(200))
    # FLAC's STREAMINFO keeps the total sample count in 36 bits (bytes 21..26); 0 means "unknown"
    data[21] &= 0xF0
    data[22:26] = bytes(4)
    with sf.SoundFile(io.BytesIO(bytes(data))) as f:
        assert f.frames != 200 * 48000  # the header no longer tells (libsndfile: "unknown")
    with pytest.raises(JobError, match=r"^audio_base64: audio is longer than 120 s, the limit"):
        audio.decode_audio(bytes(data), "audio_base64", max_seconds=120)


def test_channels_are_mixed_to_mono_and_short_audio_is_whole():
    stereo = np.stack([tone(1.0), -tone(1.0) * 0.5], axis=1)
    buf = io.BytesIO()
    sf.write(buf, stereo, SR, format="WAV", subtype="FLOAT")
    wave, sr = audio.decode_audio(buf.getvalue(), "f", max_seconds=5)
    assert sr == SR and len(wave) == SR
    np.testing.assert_allclose(wave, stereo.mean(axis=1), atol=1e-7)
