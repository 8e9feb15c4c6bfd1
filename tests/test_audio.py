"""Audio I/O: every output format decodes back; trimming, joining and silence removal keep their promises."""

import base64
import inspect
import io

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from f5_worker import audio
from f5_worker.errors import JobError

SR = 24000


def decode_pair(data: bytes, field: str, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    out = audio.decode(data, field, max_seconds)
    return out.wave, out.sample_rate


def tone(seconds: float, freq: float = 220.0, amp: float = 0.3, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_a_format_that_cannot_be_written_at_the_models_rate_is_refused_as_output_format():
    """The job's own field is named; no caller names another (the OpenAI routes rename the job's fields)."""
    audio.check_encodable("opus", 48000)
    audio.check_encodable("wav", 44100)
    with pytest.raises(JobError) as refused:
        audio.check_encodable("opus", 44100, "big")
    assert str(refused.value).startswith("output_format: opus cannot be written at 44100 Hz, the rate model 'big' ")
    assert "field" not in inspect.signature(audio.check_encodable).parameters


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus"])
def test_encoded_formats_decode_to_same_rate_and_duration(fmt):
    wave = tone(1.5)
    data = audio.encode_audio(wave, SR, fmt)
    decoded, sr = decode_pair(data, "x")
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


def test_every_16_bit_output_carries_the_same_samples():
    """One 16-bit writer (audio.to_pcm16): wav, flac and pcm results, a stored voice's audio and what
    pocketsphinx reads hold the same samples for the same wave; the wav bytes are what soundfile wrote."""
    rng = np.random.default_rng(3)
    wave = np.clip(rng.standard_normal(SR) * 0.4, -1.2, 1.2).astype(np.float32)
    wave[:8] = [1.0, -1.0, 0.5 / 32768, -0.5 / 32768, 0.25 / 32767, -1.5 / 32768, 1e-9, -1e-9]
    samples = {fmt: sf.read(io.BytesIO(audio.encode_audio(wave, SR, fmt)), dtype="int16")[0] for fmt in ("wav", "flac")}
    samples["pcm"] = np.frombuffer(audio.encode_audio(wave, SR, "pcm"), dtype="<i2")
    samples["to_pcm16"] = audio.to_pcm16(wave)
    for fmt, got in samples.items():
        assert np.array_equal(got, samples["wav"]), fmt
    before = io.BytesIO()  # what the wav result was before the worker wrote its own samples
    sf.write(before, np.clip(wave, -1.0, 1.0), SR, format="WAV", subtype="PCM_16")
    assert audio.encode_audio(wave, SR, "wav") == before.getvalue()


def test_decode_mixes_stereo_to_mono_and_keeps_rate():
    stereo = np.stack([tone(0.5), -tone(0.5) * 0.5], axis=1)
    buf = io.BytesIO()
    sf.write(buf, stereo, 16000, format="WAV")
    mono, sr = decode_pair(buf.getvalue(), "ref_audio_base64")
    assert sr == 16000 and mono.ndim == 1
    np.testing.assert_allclose(mono, stereo.mean(axis=1), atol=2 / 32768)  # 16-bit WAV: within a step of each


@pytest.mark.parametrize("junk", [b"", b"not audio at all", b"RIFF\x00\x00\x00\x00WAVEfmt "])
def test_undecodable_audio_is_a_job_error(junk):
    with pytest.raises(JobError, match="^ref_audio_base64: "):
        audio.decode(junk, "ref_audio_base64")


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
        audio.decode(buf.getvalue(), "ref_audio_base64")


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
    trimmed = audio.trim_reference(wave, SR, max_seconds=12.0)
    assert trimmed.warning is None
    assert abs(len(trimmed.wave) / SR - 2.05) < 0.03



@pytest.mark.parametrize("before_s, after_s", [(8.0, 0.0), (0.0, 8.0), (4.0, 4.0)])
def test_a_long_reference_whose_speech_fits_keeps_all_its_speech(before_s, after_s):
    """5 s of speech with 8 s of silence around it is no long reference: nothing of the speech is cut (its
    transcript still matches), and no clipping is reported."""
    speech = np.concatenate([tone(2.0), np.zeros(int(0.3 * SR), np.float32), tone(2.7)])
    wave = np.concatenate([np.zeros(int(before_s * SR), np.float32), speech, np.zeros(int(after_s * SR), np.float32)])
    trimmed = audio.trim_reference(wave, SR, max_seconds=12.0)
    assert trimmed.warning is None
    assert abs(len(trimmed.wave) / SR - (len(speech) / SR + 0.05)) < 0.03

FADE_SR = 8000  # a 0.01 s fade is 80 samples at this rate


@pytest.mark.parametrize(("lengths", "fade", "expected"), [
    ([500], 0.01, 500),
    ([1000, 1000], 0.01, 1920),  # 80 samples shared
    ([1000, 1000], 0.0, 2000),  # no fade: end to end
    ([1000, 1000], 0.0001, 2000),  # under one sample: nothing to share
    ([100, 100, 100], 0.01, 140),  # 100 + 20 + 20
    ([1000, 50], 0.01, 1000),  # a short chunk fades in whole, inside the longer one
    ([30, 1000], 0.01, 1000),
    ([0, 500, 0], 0.01, 500),  # empty chunks add nothing
    ([], 0.01, 0),
])
def test_cross_fade_join_length(lengths, fade, expected):
    joined = audio.cross_fade_join([np.ones(n, dtype=np.float32) for n in lengths], FADE_SR, fade)
    assert len(joined) == expected and joined.dtype == np.float32


def test_cross_fade_hands_over_linearly_from_the_old_chunk_to_the_new():
    ones, zeros = np.ones(400, dtype=np.float32), np.zeros(400, dtype=np.float32)
    down = audio.cross_fade_join([ones, zeros], FADE_SR, 0.01)
    up = audio.cross_fade_join([zeros, ones], FADE_SR, 0.01)
    assert len(down) == len(up) == 720
    # outside the 80 shared samples each chunk is untouched
    assert (down[:320] == 1).all() and (down[400:] == 0).all()
    assert (up[:320] == 0).all() and (up[400:] == 1).all()
    fall, rise = down[320:400], up[320:400]
    assert fall[0] == pytest.approx(1.0, abs=1 / 80) and fall[-1] == pytest.approx(0.0, abs=1 / 80)
    assert (np.diff(fall) < 0).all() and (np.diff(rise) > 0).all()
    # linear: equal steps, and the two gains add up to one at every sample
    np.testing.assert_allclose(np.diff(fall), np.diff(fall).mean(), atol=1e-6)
    np.testing.assert_allclose(fall + rise, 1.0, atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=6),
    fade=st.floats(min_value=0.0, max_value=0.2),
)
def test_cross_fade_join_keeps_the_ends_and_mixes_only_neighbours(lengths, fade):
    # chunk i is the constant i + 1, so a sample tells which chunks it came from
    waves = [np.full(n, i + 1, dtype=np.float32) for i, n in enumerate(lengths)]
    joined = audio.cross_fade_join(waves, FADE_SR, fade)
    total = sum(lengths)
    assert max(lengths) <= len(joined) <= total
    assert len(joined) >= total - int(fade * FADE_SR) * (len(lengths) - 1)
    if int(fade * FADE_SR) == 0:
        np.testing.assert_array_equal(joined, np.concatenate(waves))
    kept = [w for w in waves if len(w)]
    if kept:
        assert joined[0] == kept[0][0]
        if len(kept[-1]) > 1:  # a one-sample overlap keeps the earlier chunk's sample, as upstream's fade does
            assert joined[-1] == kept[-1][-1]
        # a mix of chunks, never louder or quieter than them, and in order: the chunk numbers never go back
        assert (joined >= kept[0][0] - 1e-6).all() and (joined <= kept[-1][0] + 1e-6).all()
        assert (np.diff(joined) >= -1e-6).all()


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
    """An hour of silence is ~0.5 MB of FLAC and gigabytes decoded: refused from its header, before any decoding."""
    import tracemalloc

    data = _flac_of_silence(3600)
    assert len(data) < 2_000_000
    # numpy reports its buffers to tracemalloc: the peak is this call's own, whatever ran before in the process
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        with pytest.raises(JobError, match=r"^audio_base64: audio is 3600\.0 s long; the limit is 120 s"):
            audio.decode(data, "audio_base64", max_seconds=120)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if started_here:
            tracemalloc.stop()
    one_block = audio.DECODE_BLOCK_FRAMES * 4  # float32 samples of this mono file
    assert peak < one_block, peak


def test_a_header_that_undercounts_still_stops_at_the_limit():
    data = bytearray(_flac_of_silence(200))
    # FLAC's STREAMINFO keeps the total sample count in 36 bits (bytes 21..26); 0 means "unknown"
    data[21] &= 0xF0
    data[22:26] = bytes(4)
    with sf.SoundFile(io.BytesIO(bytes(data))) as f:
        assert f.frames != 200 * 48000  # the header no longer tells (libsndfile: "unknown")
    with pytest.raises(JobError, match=r"^audio_base64: audio is longer than 120 s, the limit"):
        audio.decode(bytes(data), "audio_base64", max_seconds=120)


def test_channels_are_mixed_to_mono_and_short_audio_is_whole():
    stereo = np.stack([tone(1.0), -tone(1.0) * 0.5], axis=1)
    buf = io.BytesIO()
    sf.write(buf, stereo, SR, format="WAV", subtype="FLOAT")
    wave, sr = decode_pair(buf.getvalue(), "f", max_seconds=5)
    assert sr == SR and len(wave) == SR
    np.testing.assert_allclose(wave, stereo.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize("rate, target", [(44100, 24000), (48000, 24000), (24000, 16000), (8000, 24000)])
def test_long_audio_is_resampled_in_blocks_as_torchaudio_does_it_in_one_piece(rate, target):
    """Blocks keep the memory a block's (one piece unfolds 10-30 times over); the result is the same."""
    import torch
    import torchaudio.functional as AF

    wave = np.random.default_rng(rate).standard_normal(int(rate * 2.5 * audio.RESAMPLE_BLOCK_SECONDS) + 7)
    wave = (0.1 * wave).astype(np.float32)
    whole = AF.resample(torch.from_numpy(wave), rate, target).numpy()
    blocks = audio.resample(wave, rate, target)
    assert blocks.shape == whole.shape
    np.testing.assert_allclose(blocks, whole, atol=1e-5)


def test_float_audio_beyond_full_scale_is_scaled_and_absurd_values_refused():
    """±1e38 came out as constant -1.0 reported as success; integer-range floats are just unscaled."""
    loud = tone(1.0, amp=3000.0)
    buf = io.BytesIO()
    sf.write(buf, loud, SR, format="WAV", subtype="FLOAT")
    wave, _ = decode_pair(buf.getvalue(), "f", max_seconds=5)
    assert abs(float(np.max(np.abs(wave))) - 1.0) < 1e-6
    np.testing.assert_allclose(wave, loud / np.max(np.abs(loud)), atol=1e-6)
    buf = io.BytesIO()
    sf.write(buf, np.full(2400, -1e38, dtype=np.float32), SR, format="WAV", subtype="FLOAT")
    with pytest.raises(JobError, match=r"^f: audio has samples of 1e\+38, beyond full scale"):
        audio.decode(buf.getvalue(), "f", max_seconds=5)


def test_decode_errors_say_what_is_wrong_without_naming_our_objects():
    """Decode errors once said ``<_io.BytesIO object at 0x...>`` and "File does not exist ... (possibly a pipe?)"."""
    mp3 = audio.encode_audio(tone(1.0), SR, "mp3")
    for junk in (b"not audio at all", mp3[:300], b"RIFF\x00\x00\x00\x00WAVEfmt "):
        with pytest.raises(JobError) as caught:
            audio.decode(junk, "audio_base64")
        message = str(caught.value)
        assert message.startswith("audio_base64: ") and "object at 0x" not in message, message
        assert "does not exist" not in message and "pipe" not in message, message
