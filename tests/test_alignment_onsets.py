"""Word starts where the sound begins: after leading silence, after a pause, and in noise (``onsets``).

The speech is espeak-ng's steady voice (the same samples whatever was said before), with silence and
pink noise added from a fixed seed, so every figure here is the same on every run. Each test names
what the aligners did without the pass (``onsets=False``), which it must not do.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from f5_worker.alignment import dtw, espeak, onsets
from f5_worker.alignment.dtw import DtwAligner, espeak_voice
from f5_worker.alignment.quality import align_audio
from f5_worker.alignment.sphinx import SphinxAligner
from f5_worker.text.tokens import tokenize

SR = onsets.SAMPLE_RATE


def pink(n: int, seed: int = 0) -> np.ndarray:
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    return np.fft.irfft(spectrum, n)


def speak(pieces: list[str], language: str = "en", *, lead: float, pause: float = 0.0, snr_db: float | None = None,
          rate_wpm: int = espeak.DEFAULT_RATE_WPM, pitch: int = espeak.DEFAULT_PITCH):
    """``pieces`` spoken one after another with ``lead`` seconds of silence before the first and ``pause``
    between them, optionally in pink noise ``snr_db`` below the speech: (audio, rate, true word starts)."""
    parts, truth, at = [np.zeros(int(lead * 22050), np.float32)], [], lead
    for k, text in enumerate(pieces):
        audio, sr, events = espeak.synthesize(text, voice=espeak_voice(language), rate_wpm=rate_wpm, pitch=pitch,
                                              steady=True)
        audio = audio[: np.flatnonzero(np.abs(audio) > 1e-3)[-1] + 1]  # without its trailing silence
        truth += [at + e.sample / sr for e in events]
        gap = np.zeros(int(pause * sr) if k + 1 < len(pieces) else 0, np.float32)
        parts += [audio, gap]
        at += (len(audio) + len(gap)) / sr
    audio = np.concatenate(parts)
    if snr_db is not None:
        noise = pink(len(audio))
        speech = np.mean(audio[np.abs(audio) > 1e-3] ** 2)
        audio = (audio + noise * np.sqrt(speech / np.mean(noise**2) / 10 ** (snr_db / 10))).astype(np.float32)
    return audio, sr, truth


@pytest.fixture(scope="module")
def sphinx():
    return SphinxAligner(), SphinxAligner(onsets=False)


def starts(aligner, audio, sr, text, language="en") -> np.ndarray:
    return np.array([w.start for w in align_audio(aligner, audio, sr, text, language=language).words])


@pytest.mark.parametrize("text, snr_db", [("We also need a small plastic snake.", None),
                                           ("Keep calm and carry on.", 20.0)])
def test_a_word_after_leading_silence_is_not_put_at_zero(sphinx, text, snr_db):
    """0.3 s of silence (clean, or noise at 20 dB SNR) before the first word: it starts where the sound
    does, within 20 ms. Without the pass sphinx put it 30 ms late in the silence, or 35 ms early in the noise."""
    audio, sr, truth = speak([text], lead=0.3, snr_db=snr_db)
    refined, plain = sphinx
    assert abs(starts(refined, audio, sr, text)[0] - truth[0]) <= 0.020
    assert abs(starts(plain, audio, sr, text)[0] - truth[0]) > 0.025


@pytest.mark.parametrize("snr_db", [None, 20.0])
def test_a_pause_does_not_swallow_the_next_words_onset(sphinx, snr_db):
    """0.7 s of pause before "to": its onset is not given to the silence (sphinx alone put it 116 ms late
    in clean speech, 44 ms early in noise)."""
    pieces = ["Anna wrote a letter", "to her uncle in Boston."]
    text = " ".join(pieces)
    audio, sr, truth = speak(pieces, lead=0.2, pause=0.7, snr_db=snr_db)
    refined, plain = sphinx
    assert abs(starts(refined, audio, sr, text)[4] - truth[4]) <= 0.025
    assert abs(starts(plain, audio, sr, text)[4] - truth[4]) > 0.040


def test_noise_does_not_move_a_clean_words_boundary(sphinx):
    """The same speech, with a 0.4 s pause, clean and in pink noise at 20 dB SNR: no word starts more than
    30 ms apart (sphinx alone moved a word by 90 ms)."""
    pieces = ["Rain, wind, and snow:", "the mountain saw it all."]
    text = " ".join(pieces)
    clean, sr, _ = speak(pieces, lead=0.3, pause=0.4)
    noisy, _, _ = speak(pieces, lead=0.3, pause=0.4, snr_db=20.0)
    refined, plain = sphinx
    assert np.abs(starts(refined, noisy, sr, text) - starts(refined, clean, sr, text)).max() <= 0.030
    assert np.abs(starts(plain, noisy, sr, text) - starts(plain, clean, sr, text)).max() > 0.060


@pytest.mark.parametrize("language, pieces", [
    ("de", ["Der alte Mann ging", "langsam über die schmale Brücke."]),
    ("es", ["Mañana iremos a", "la playa si hace buen tiempo."]),
])
def test_dtw_times_the_first_word_and_the_word_after_a_long_pause(language, pieces):
    """0.3 s of silence, then a second of pause the rendering does not have: every word within 30 ms. Without
    the pass dtw started the first word 90-100 ms early and put a word on the wrong side of the pause (1.0-1.3 s
    off)."""
    text = " ".join(pieces)
    audio, sr, truth = speak(pieces, language, lead=0.3, pause=1.0, rate_wpm=140, pitch=30)
    errors = np.abs(starts(DtwAligner(), audio, sr, text, language) - truth)
    assert errors.max() <= 0.030, errors
    plain = np.abs(starts(DtwAligner(onsets=False), audio, sr, text, language) - truth)
    assert plain[0] > 0.080 and plain.max() > 0.5


def tone(seconds: float, seed: int) -> np.ndarray:
    """A voiced-sounding burst: harmonics of 150 Hz and a little noise."""
    t = np.arange(int(seconds * SR)) / SR
    voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 20))
    return (0.1 * voiced + 0.01 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


def utterance(sounds: list[tuple[float, float]], duration: float, noise_db: float = -60.0) -> np.ndarray:
    """Bursts at (start, end) seconds over a pink noise floor ``noise_db`` below full scale."""
    audio = (pink(int(duration * SR), seed=1) * 10 ** (noise_db / 20) / 0.05).astype(np.float32)
    for k, (a, b) in enumerate(sounds):
        burst = tone(b - a, k)[: len(audio) - int(a * SR)]
        audio[int(a * SR) : int(a * SR) + len(burst)] += burst
    return audio


@pytest.mark.parametrize("pause", [0.2123, 0.4123])
def test_a_start_moves_to_the_sound_at_a_finer_step_than_a_frame(pause):
    """A word whose sound starts after a pause, aligned 50 ms early (in the pause), or 40 or 250 ms late (its
    onset given to the silence; sphinx put words after a pause up to 280 ms late): every start moves to within
    4 ms of the sound, below sphinx's 10 ms frame."""
    onset = 0.3 + pause
    audio = utterance([(0.1, 0.3), (onset, onset + 0.4)], onset + 0.7)
    loud = onsets.loudness(audio)
    for aligned in (onset - 0.05, onset + 0.04, onset + 0.25):
        (_, first_end), (start, _) = onsets.refine(loud, [(0.1, 0.3), (aligned, onset + 0.4)], [0.0, 0.0],
                                                   onset + 0.7)
        assert abs(start - onset) <= 0.004 and first_end <= start


def test_a_start_put_deep_in_the_words_sound_moves_back_to_its_rise():
    """A word after a pause aligned 250 ms late, well inside its own sound (sphinx did this to "met", "but",
    "cups" after a pause): its start moves back to where the sound rises, past the nearer search's reach."""
    onset = 0.9
    audio = utterance([(0.1, 0.4), (onset, onset + 0.5)], onset + 0.8)
    (_, _), (start, _) = onsets.refine(onsets.loudness(audio), [(0.1, 0.4), (onset + 0.25, onset + 0.5)],
                                       [0.0, 0.0], onset + 0.8)
    assert abs(start - onset) <= 0.004


def test_an_end_before_a_pause_keeps_the_words_final_release():
    """A word whose vowel ends at 0.40 s, then a stop's 60 ms closure and its 70 ms burst, then a pause ("at",
    "light," before a pause): aligned to end with the vowel (as sphinx does, giving the burst to the pause),
    its end moves past the burst, to 0.53 s."""
    audio = utterance([(0.1, 0.4), (0.46, 0.53), (1.2, 1.5)], 1.8)
    (_, end), _ = onsets.refine(onsets.loudness(audio), [(0.1, 0.4), (1.2, 1.5)], [0.0, 0.0], 1.8)
    assert abs(end - 0.53) <= 0.006


@pytest.mark.parametrize("kind, level, is_breath", [("noise", 0.003, True), ("noise", 0.1, False),
                                                    ("tone", 0.003, False)])
def test_a_breath_is_quiet_but_not_a_voice_nor_a_loud_hiss(kind, level, is_breath):
    """Between two voiced words, 0.3 s of quiet, 0.25 s of sound, 0.45 s of quiet: weak noise tilted towards the
    high frequencies (a breath, about 30 dB under the words) counts as quiet; as loud as the words (an "s" standing alone before a stop's
    closure), or voiced however weak, it is sound."""
    audio = utterance([(0.1, 0.6), (1.3, 1.8)], 2.0)
    n = int(0.25 * SR)
    burst = (np.diff(pink(n + 1, seed=5)) if kind == "noise" else tone(0.25, 5)[:n]) * np.sqrt(np.hanning(n))
    audio[int(0.9 * SR) : int(0.9 * SR) + len(burst)] += burst * level / np.sqrt(np.mean(burst**2))
    loud = onsets.loudness(audio)
    inside = loud.quiet[loud.frame(0.92) : loud.frame(1.13)]
    assert inside.all() if is_breath else not inside.any()
    assert not loud.quiet[loud.frame(1.35) : loud.frame(1.75)].any()  # the words still sound


def test_dtw_does_not_take_a_breath_for_a_word():
    """A breath (noise rising and falling, 30 dB under the speech) 0.3 s long, 0.1 s before each of two pieces:
    every word within 15 ms. Without the pass dtw matched the first breath to the first word, 0.44 s early."""
    pieces = ["Der alte Mann ging", "langsam über die schmale Brücke."]
    first, sr, truth1 = speak(pieces[:1], "de", lead=0.0)
    second, _, truth2 = speak(pieces[1:], "de", lead=0.0)
    level = np.sqrt(np.mean(first[np.abs(first) > 1e-3] ** 2)) * 10 ** (-30 / 20)

    def breath(seed):
        b = np.diff(pink(int(0.3 * sr) + 1, seed=seed)) * np.sqrt(np.hanning(int(0.3 * sr)))
        return b * level / np.sqrt(np.mean(b**2))

    quiet = np.zeros(int(0.1 * sr))
    audio = np.concatenate([np.zeros(int(0.3 * sr)), breath(1), quiet, first, np.zeros(int(0.3 * sr)), breath(2),
                            quiet, second]).astype(np.float32)
    at1 = 0.7
    at2 = at1 + len(first) / sr + 0.7
    truth = np.array([at1 + t for t in truth1] + [at2 + t for t in truth2])
    text = " ".join(pieces)
    assert np.abs(starts(DtwAligner(), audio, sr, text, "de") - truth).max() <= 0.015
    plain = starts(DtwAligner(onsets=False), audio, sr, text, "de") - truth
    assert plain[0] < -0.3


@pytest.mark.parametrize("breath_s, gap_s, level", [(0.12, 0.08, 0.03), (0.08, 0.12, 0.05)])
def test_a_breath_before_the_first_word_is_not_its_start(breath_s, gap_s, level):
    """A breath (pink noise) 80-120 ms before the first word, after 0.4 s of silence: the word does not
    start at the breath. (Searched for 300 ms back without asking that the sound run on to the aligner's
    start, the start went to the breath, 200 ms early.)"""
    text = "Maybe we should leave now."
    speech, sr, truth = speak([text], lead=0.0)
    breath = pink(int(breath_s * sr), seed=3)
    breath *= level / np.sqrt(np.mean(breath**2))
    audio = np.concatenate([np.zeros(int(0.4 * sr)), breath, np.zeros(int(gap_s * sr)), speech]).astype(np.float32)
    true_start = 0.4 + breath_s + gap_s + truth[0]
    assert starts(SphinxAligner(), audio, sr, text)[0] - true_start > -0.030


@pytest.mark.parametrize("gap_s", [0.07, 0.1])
def test_a_click_before_a_word_after_a_pause_is_not_its_start(gap_s):
    """A click (a mouse, a lip smack: 3 ms at full level) 70-100 ms before a word after a pause: the word's
    start stays at its sound. Only the search 300 ms back asked that the sound run on to the aligner's
    start; the search 120 ms back took the click for the word's onset, 70-100 ms early."""
    pieces = ["Nous avons vu des dauphins.", "Le renard brun saute."]
    audio, sr, truth = speak(pieces, "fr", lead=0.3, pause=1.0)
    onset = truth[5]
    at = int((onset - gap_s) * sr)
    audio[at : at + int(0.003 * sr)] += 0.5
    words = align_audio(DtwAligner(), audio, sr, " ".join(pieces), language="fr").words
    assert abs(words[5].start - onset) <= 0.020, (words[5], onset)


def test_a_stop_closure_inside_a_word_is_not_a_pause():
    """120 ms of silence inside a word (two stops' closures, as in "Victor") after a real pause: the aligner
    gave the word's first part to the word before, and the word is not moved past the closure to where its
    sound comes back; only quiet of at least MIN_PAUSE_S is a pause (100 ms moved it 120 ms)."""
    audio = utterance([(0.10, 0.40), (0.80, 0.95), (1.07, 1.50)], 1.8)
    spans = onsets.refine(onsets.loudness(audio), [(0.10, 0.95), (0.95, 1.50)], [0.0, 0.0], 1.8)
    assert abs(spans[1][0] - 0.95) <= 0.005


def hiss(seconds: float, level: float) -> np.ndarray:
    """A voiceless fricative: white noise above 2.5 kHz."""
    n = int(seconds * SR)
    spectrum = np.fft.rfft(np.random.default_rng(3).standard_normal(n))
    spectrum[np.fft.rfftfreq(n, 1 / SR) < 2500] = 0
    return (np.fft.irfft(spectrum, n) * level).astype(np.float32)


def test_a_weak_consonant_sounds_in_speech_without_a_pause():
    """An utterance without a pause: a word ends in a weak fricative (about 9 dB over the floor) before the
    next word's 80 ms closure. The noise level is measured in pauses and there are none, so the fricative
    sounds: nothing moves. Measured over all frames, the threshold rose to 10 dB, the fricative and the
    closure passed for a 180 ms pause, and both words lost their edges."""
    audio = utterance([(0.03, 0.60), (0.78, 1.40)], 1.42)
    audio[int(0.60 * SR) : int(0.70 * SR)] += hiss(0.10, 0.05)
    loud = onsets.loudness(audio)
    assert loud.sound_db == onsets.SOUND_DB
    (_, end), (start, _) = onsets.refine(loud, [(0.03, 0.70), (0.70, 1.40)], [0.0, 0.0], 1.42)
    assert end == start == 0.70


def test_a_word_after_a_pause_starts_at_its_weak_fricative():
    """A word after a pause that opens with a weak fricative (about 10 dB over the floor, an "f" or a "th"),
    aligned at its vowel: the start moves back to the fricative, whose rise stands CONTRAST_DB over the
    quiet though it is far under the vowel (with 8 dB it stayed at the vowel, 100 ms late)."""
    audio = utterance([(0.1, 0.45), (1.1, 1.5)], 1.7)
    audio[int(1.0 * SR) : int(1.1 * SR)] += hiss(0.10, 0.0008)
    (_, _), (start, _) = onsets.refine(onsets.loudness(audio), [(0.1, 0.45), (1.1, 1.5)], [0.0, 0.0], 1.7)
    assert abs(start - 1.0) <= 0.004


def test_a_words_final_consonant_after_its_closure_stays_the_words():
    """A word ending in a stop: its vowel, 120 ms of closure, then the consonant, then a pause. Where the
    aligner gave the closure and a loud burst to the pause, the end moves over them to the burst's end
    (SEARCH_FORWARD_S reaches past a closure; with 125 ms it did not). Where it ended the word after a weak
    consonant (an "s", about 10 dB), the end stays: the closure is no pause, as at a start (it went back to
    the vowel, 220 ms early)."""
    audio = utterance([(0.1, 0.5), (0.62, 0.65), (1.2, 1.6)], 1.8)
    (_, end), _ = onsets.refine(onsets.loudness(audio), [(0.1, 0.5), (1.2, 1.6)], [0.0, 0.0], 1.8)
    assert abs(end - 0.65) <= 0.006
    audio = utterance([(0.1, 0.5), (1.2, 1.6)], 1.8)
    audio[int(0.62 * SR) : int(0.72 * SR)] += hiss(0.10, 0.0008)
    (_, end), _ = onsets.refine(onsets.loudness(audio), [(0.1, 0.72), (1.2, 1.6)], [0.0, 0.0], 1.8)
    assert abs(end - 0.72) <= 0.004


def test_an_end_is_looked_for_only_before_the_next_words_start():
    """A word's end aligned 50 ms into a 200 ms pause goes back to where its sound stops, though the next
    word's sound lies within SEARCH_FORWARD_S of it: the search stops at the next word's start (looking past
    it, the change point fell in the next word's sound and the end stayed in the pause)."""
    audio = utterance([(0.1, 0.4), (0.6, 0.9)], 1.1)
    (_, end), (start, _) = onsets.refine(onsets.loudness(audio), [(0.1, 0.45), (0.55, 0.9)], [0.0, 0.0], 1.1)
    assert abs(end - 0.4) <= 0.004 and abs(start - 0.6) <= 0.004


def test_the_last_word_ends_where_the_recording_stops_sounding():
    """The audio runs on 60 ms after the last word's sound and the aligner gave the word all of it: the end
    moves to where the sound stops, though less than MIN_PAUSE_S of quiet follows (no word comes after).
    Audio that stops with the word's sound: an end the aligner put 100 ms early runs on to the end."""
    audio = utterance([(0.1, 0.4), (0.6, 1.0)], 1.06)
    _, (_, end) = onsets.refine(onsets.loudness(audio), [(0.1, 0.4), (0.6, 1.06)], [0.0, 0.0], 1.06)
    assert abs(end - 1.0) <= 0.006
    audio = utterance([(0.1, 0.4), (0.6, 1.0)], 1.0)
    _, (_, end) = onsets.refine(onsets.loudness(audio), [(0.1, 0.4), (0.6, 0.9)], [0.0, 0.0], 1.0)
    assert abs(end - 1.0) <= 0.006


def test_voices_in_a_pause_do_not_break_it_up():
    """A 0.55 s pause with a voice flickering in the background (8 ms blips every 80 ms, 15 dB over the
    floor): it is still a pause, and the next word's start, aligned 0.4 s early, moves to its sound. Counted
    frame by frame, the blips cut the pause into 60 ms pieces and the start stayed in the pause."""
    audio = utterance([(0.10, 0.45), (1.00, 1.40)], 1.6, noise_db=-45.0)
    for k, at in enumerate(np.arange(0.47, 0.99, 0.08)):
        blip = 0.2 * tone(0.008, 10 + k)
        audio[int(at * SR) : int(at * SR) + len(blip)] += blip
    loud = onsets.loudness(audio)
    (_, _), (start, _) = onsets.refine(loud, [(0.10, 0.45), (0.60, 1.40)], [0.0, 0.0], 1.6)
    assert abs(start - 1.0) <= 0.010


def swelling(n: int, depth: float, rate_hz: float, seed: int) -> np.ndarray:
    """Pink noise 45 dB under full scale whose amplitude swells and fades ``rate_hz`` times a second by
    ``depth`` (wind, traffic)."""
    t = np.arange(n) / SR
    noise = pink(n, seed) * (1 + depth * np.sin(2 * np.pi * rate_hz * t))
    return (noise / np.std(noise) * 10 ** (-45 / 20)).astype(np.float32)


def test_noise_that_swells_and_fades_is_not_speech():
    """Noise whose level swells and fades (about 25 dB under the speech). Before the first word and after the
    last, a swell rises past the threshold but not CONTRAST_DB over the quiet: the aligner's right start and
    end stay (without the contrast the start moved 55 ms early, the end 100 ms late). Swelling five times a
    second in a pause it lifts the threshold (NOISE_MARGIN_DB over the pause's 80th percentile), so the pause
    stays a pause and a start aligned 0.4 s early moves to the sound (at the percentile itself it stayed)."""
    audio = utterance([(0.1, 0.45), (1.3, 1.7)], 2.0, noise_db=-80.0)
    audio += swelling(len(audio), 0.6, 3.0, seed=0)
    (start, _), (_, end) = onsets.refine(onsets.loudness(audio), [(0.1, 0.45), (1.3, 1.7)], [0.0, 0.0], 2.0)
    assert abs(start - 0.1) <= 0.005 and abs(end - 1.7) <= 0.005
    audio = utterance([(0.1, 0.45), (1.0, 1.4)], 1.6, noise_db=-80.0)
    audio += swelling(len(audio), 0.45, 5.0, seed=0)
    _, (start, _) = onsets.refine(onsets.loudness(audio), [(0.1, 0.45), (0.6, 1.4)], [0.0, 0.0], 1.6)
    assert abs(start - 1.0) <= 0.006


def rumble(seconds: float, level: float) -> np.ndarray:
    """Noise in one band only (120-350 Hz: a passing car, a fan), ``level`` its RMS."""
    n = int(seconds * SR)
    spectrum = np.fft.rfft(np.random.default_rng(5).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spectrum[(freqs < 120) | (freqs > 350)] = 0
    x = np.fft.irfft(spectrum, n)
    return (x / np.sqrt(np.mean(x**2)) * level).astype(np.float32)


def test_a_rumble_in_one_band_does_not_fill_a_pause():
    """A low rumble in one band only, about 12 dB over that band's floor, through a pause: a frame's loudness
    is the mean of its TOP_BANDS loudest bands, so the pause stays quiet and a start aligned 0.4 s early in it
    moves to the sound (by its loudest band alone the pause sounded and the start stayed)."""
    audio = utterance([(0.1, 0.45), (1.0, 1.4)], 1.6)
    audio[int(0.5 * SR) : int(0.95 * SR)] += rumble(0.45, 0.001)
    _, (start, _) = onsets.refine(onsets.loudness(audio), [(0.1, 0.45), (0.6, 1.4)], [0.0, 0.0], 1.6)
    assert abs(start - 1.0) <= 0.006


def test_a_recording_that_starts_with_the_word_keeps_its_start():
    """12 ms of quiet before the first sound is the word's own onset (a closure, a faint consonant), not
    silence to skip: the first word stays at 0 s. A leading silence of 20 ms or more is skipped."""
    for lead, expected in [(0.012, 0.0), (0.05, 0.05)]:
        audio = utterance([(lead, 0.50), (0.8, 1.2)], 1.4)
        (start, _), _ = onsets.refine(onsets.loudness(audio), [(0.0, 0.5), (0.8, 1.2)], [0.0, 0.0], 1.4)
        assert abs(start - expected) <= 0.004


def test_a_pause_swallowed_into_a_word_is_given_back():
    """In noise the silence model may not fit a pause, so the words on either side take it: the first word's
    end goes back to where its sound stops and the next one's start to where its sound begins. A word that
    opens with a voiceless stop keeps its closure's silence before the sound."""
    audio = utterance([(0.1, 0.5), (0.9, 1.3)], 1.5, noise_db=-45.0)
    loud = onsets.loudness(audio)
    (_, end), (start, _) = onsets.refine(loud, [(0.1, 0.7), (0.7, 1.3)], [0.0, 0.0], 1.5)
    assert abs(end - 0.5) <= 0.006 and abs(start - 0.9) <= 0.006
    (_, _), (start, _) = onsets.refine(loud, [(0.1, 0.7), (0.7, 1.3)], [0.0, 0.045], 1.5)
    assert abs(start - (0.9 - 0.045)) <= 0.006
    # a pause of 2 s swallowed whole: the end is looked for END_BACK_S back into the word
    audio = utterance([(0.1, 0.5), (2.8, 3.2)], 3.4, noise_db=-45.0)
    (_, end), (start, _) = onsets.refine(onsets.loudness(audio), [(0.1, 2.7), (2.7, 3.2)], [0.0, 0.0], 3.4)
    assert abs(end - 0.5) <= 0.006 and abs(start - 2.8) <= 0.006


def test_a_word_of_no_length_before_a_rise_stays_between_its_neighbours():
    """dtw gives a word no frames where its path steps through the rendering alone. Such a word put 10-30 ms
    before a rise had its start moved to the rise, past its own end and the next word's start: starts went
    backwards, and its end, pulled along, past the next word's start."""
    audio = utterance([(0.1, 0.3), (0.6, 1.0)], 1.2)
    loud = onsets.loudness(audio)
    for at in (0.57, 0.5825, 0.59):
        spans = [(0.1, 0.3), (at, at), (at, 1.0)]
        out = onsets.refine(loud, spans, [0.0] * 3, 1.2)
        for i, (start, end) in enumerate(out):
            assert start <= spans[i][1] + 1e-12 and start <= end, (at, out)
            assert i == 0 or start >= out[i - 1][1] - 1e-12, (at, out)
            assert i + 1 == len(out) or end <= spans[i + 1][0] + 1e-12, (at, out)


def test_a_word_keeps_the_side_of_a_pause_where_its_sound_is():
    """A short word aligned over a long pause keeps the sound before it (and gives the pause back at its
    end) rather than jump to the next word's sound after it, also where the aligner ran it 50 ms into that
    sound (then the rise after the pause is clear, and only the word's own sound before it holds it)."""
    audio = utterance([(0.1, 0.5), (0.6, 0.75), (1.8, 2.2)], 2.4, noise_db=-45.0)
    loud = onsets.loudness(audio)
    for boundary in (1.75, 1.85):
        spans = onsets.refine(loud, [(0.1, 0.5), (0.6, boundary), (boundary, 2.2)], [0.0] * 3, 2.4)
        assert abs(spans[1][0] - 0.6) <= 0.010 and abs(spans[1][1] - 0.75) <= 0.010
        assert abs(spans[2][0] - 1.8) <= 0.010


def test_digital_silence_does_not_make_faint_noise_sound():
    """Audio with stretches of exact zeros (padding before the speech, a gap between joined pieces) and a
    faint noise floor elsewhere, 80 dB under full scale: the zeros have no level to speak of, so a band's
    floor is never taken more than DYNAMIC_RANGE_DB under its loudest frames, and the faint noise stays quiet.
    Starts aligned in the zeros or in the noisy pause move to the sound (with the zeros as the floor the noise
    sounded: starts stayed up to 400 ms early, ends went up to 200 ms late)."""
    audio = utterance([(0.4, 0.75), (1.3, 1.7)], 1.9, noise_db=-80.0)
    audio[: int(0.3 * SR)] = 0.0
    spans = onsets.refine(onsets.loudness(audio), [(0.3, 0.75), (0.9, 1.7)], [0.0, 0.0], 1.9)
    assert np.abs(np.array(spans) - [(0.4, 0.75), (1.3, 1.7)]).max() <= 0.006
    audio = utterance([(0.1, 0.45), (1.0, 1.4)], 1.6, noise_db=-80.0)
    audio[int(0.5 * SR) : int(0.95 * SR)] = 0.0
    spans = onsets.refine(onsets.loudness(audio), [(0.1, 0.45), (0.6, 1.4)], [0.0, 0.0], 1.6)
    assert np.abs(np.array(spans) - [(0.1, 0.45), (1.0, 1.4)]).max() <= 0.006


def test_speech_buried_in_noise_keeps_the_aligners_boundaries(sphinx):
    """Where speech stands barely above the noise (10 dB SNR), rises cannot be told from the noise's own:
    nothing moves (measured: moving made words in 10 dB noise worse, not better). Bursts, and espeak-ng's
    speech with a pause in pink noise (its loud frames stand under MIN_RANGE_DB over the floors up to 16 dB SNR)."""
    audio = utterance([(0.1, 0.5), (0.9, 1.3)], 1.5, noise_db=-12.0)
    loud = onsets.loudness(audio)
    assert not loud.usable
    spans = [(0.05, 0.7), (0.7, 1.3)]
    assert onsets.refine(loud, spans, [0.0, 0.0], 1.5) == spans
    pieces = ["Anna wrote a letter", "to her uncle in Boston."]
    audio, sr, _ = speak(pieces, lead=0.3, pause=0.5, snr_db=10.0)
    refined, plain = sphinx
    assert list(starts(refined, audio, sr, " ".join(pieces))) == list(starts(plain, audio, sr, " ".join(pieces)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 2.0), min_size=2, max_size=12), st.integers(0, 3))
def test_no_boundary_crosses_a_neighbours(edges, seed):
    """Whatever the spans and the audio: starts stay in order, each word within the previous word's end and
    the next word's start, and inside the audio."""
    edges = sorted(edges)
    spans = list(zip(edges[::2], edges[1::2]))
    sounds = [(0.1 + 0.4 * k, 0.3 + 0.4 * k + 0.05 * seed) for k in range(5)]
    audio = utterance(sounds, 2.0, noise_db=-60.0 + 10 * seed)
    out = onsets.refine(onsets.loudness(audio), spans, [0.045] * len(spans), 2.0)
    assert len(out) == len(spans)
    for i, (start, end) in enumerate(out):
        assert 0.0 <= start <= end <= 2.0
        if i:
            assert start >= out[i - 1][1] - 1e-12
        if i + 1 < len(spans):
            assert end <= spans[i + 1][0] + 1e-12


@pytest.mark.parametrize("pieces, rate_wpm, pitch", [
    (["O Pedro e", "a Marta casaram-se na primavera."], 140, 30),
    (["Ontem à noite a tempestade cortou", "a luz em todo o bairro."], 175, 50),
])
def test_dtw_puts_a_pause_the_rendering_lacks_between_two_words(pieces, rate_wpm, pitch):
    """A second of pause where the rendering has none, before a one-letter word: what is left of the pause is
    matched between two rendered words, so every word is within 20 ms. Free to match it anywhere, the path
    put it inside a word and "a" before the pause, 1.1 s early."""
    text = " ".join(pieces)
    audio, sr, truth = speak(pieces, "pt", lead=0.2, pause=1.0, rate_wpm=rate_wpm, pitch=pitch)
    errors = np.abs(starts(DtwAligner(), audio, sr, text, "pt") - truth)
    assert errors.max() <= 0.020, errors


def test_dtw_shortens_a_quarter_second_pause_too():
    """A pause of 0.25 s, over LONG_PAUSE_S but far from the second above, is shortened before the warping
    as well: every word within 20 ms (left as it was, "la" and "playa" after it were put 200-290 ms early)."""
    pieces = ["Mañana iremos a", "la playa si hace buen tiempo."]
    audio, sr, truth = speak(pieces, "es", lead=0.2, pause=0.25, rate_wpm=140, pitch=30)
    errors = np.abs(starts(DtwAligner(), audio, sr, " ".join(pieces), "es") - truth)
    assert errors.max() <= 0.020, errors


def test_sphinx_letters_span_the_moved_words(sphinx):
    """Where the pass moves a word's start or end, the word's letters (spread over sphinx's phones) move with
    it: the first starts with the word and the last ends with it."""
    pieces = ["It was late", "and the dog barked at", "the gate."]
    text = " ".join(pieces)
    audio, sr, _ = speak(pieces, lead=0.3, pause=0.6)
    refined, plain = sphinx
    before, result = align_audio(plain, audio, sr, text), align_audio(refined, audio, sr, text)
    assert any(abs(a.start - b.start) > 0.01 for a, b in zip(before.words, result.words, strict=True))
    assert any(abs(a.end - b.end) > 0.01 for a, b in zip(before.words, result.words, strict=True))
    for word in result.words:
        letters = [c for c in result.chars if word.char_start <= c.char_start < word.char_end and c.text.isalnum()]
        assert letters[0].start == word.start and letters[-1].end == word.end, (word, letters)


def test_speech_without_a_long_pause_keeps_the_aligners_starts(sphinx):
    """Sentences spoken without a pause of MIN_PAUSE_S (a comma's short one, a first word that opens with a
    weak "f"): no word's start is made more than 10 ms worse by the pass. Before pauses needed 100 ms and the
    threshold was measured over all frames: "Fourteen" moved 41 ms late, "company" 123 ms early."""
    cases = [("Fourteen ducks swam slowly across the pond.", 140, 30),
             ("In 1999, the company had 250 employees; today it has 4000.", 180, 50)]
    refined, plain = sphinx
    for text, rate_wpm, pitch in cases:
        audio, sr, events = espeak.synthesize(text, voice="en-us", rate_wpm=rate_wpm, pitch=pitch, steady=True)
        at = {e.text_position: e.sample / sr for e in events}
        truth = {i: at[tok.char_start] for i, tok in enumerate(tokenize(text, "en")) if tok.char_start in at}
        for with_pass, without in [(refined, plain), (DtwAligner(), DtwAligner(onsets=False))]:
            after, before = (starts(aligner, audio, sr, text) for aligner in (with_pass, without))
            for i, t in truth.items():
                assert abs(after[i] - t) <= abs(before[i] - t) + 0.010, (text, i, after[i], before[i], t)


def test_dtw_warps_long_pauses_shortened_and_maps_back():
    """A 1.2 s pause keeps 0.1 s (half at either end); a word start the path puts in the half before the cut
    lies in silence, so it moves past the cut, and an end in the half after the cut moves before it."""
    pause = [(1.0, 2.2)]
    kept = dtw.kept_frames(0, 300, pause)
    assert len(kept) == 300 - (120 - 10)
    cut = int(np.flatnonzero(np.diff(kept) > 1)[0])
    assert kept[cut] == 104 and kept[cut + 1] == 215
    assert dtw.unwarped_span(cut - 2, cut + 20, kept) == (215, int(kept[cut + 19]) + 1)
    assert dtw.unwarped_span(cut - 30, cut + 3, kept) == (int(kept[cut - 30]), 105)
    assert dtw.unwarped_span(10, 20, kept) == (10, 20)


def test_dtw_ends_a_sentence_before_a_long_pause():
    """Two sentences 4 s apart, the second opening with a nasal: the first one's last word ends where its sound
    does. espeak-ng's event for "Nous" lies a few ms after its sound begins, and the rendered word before it
    was taken to sound up to that frame: the pause left between the words was matched to "Nous"'s onset, and
    "dauphins." ended 4 s late, at the next word's start (farther back than an end is looked for)."""
    pieces = ["Nous avons vu des dauphins.", "Nous avons vu des dauphins."]
    audio, sr, truth = speak(pieces, "fr", lead=0.3, pause=4.0)
    sound_end = truth[5] - int(4.0 * sr) / sr
    words = align_audio(DtwAligner(), audio, sr, " ".join(pieces), language="fr").words
    assert abs(words[4].end - sound_end) <= 0.030, (words[4], sound_end)


def test_the_worker_moves_boundaries_unless_align_onsets_is_off(monkeypatch):
    """The pass is the aligner classes' own (the eval measures it), on in a worker unless ALIGN_ONSETS=0."""
    from f5_worker.alignment.selection import load_aligner
    from f5_worker.config import get_settings

    monkeypatch.delenv("ALIGN_ONSETS", raising=False)
    assert get_settings().align_onsets is True
    monkeypatch.setenv("ALIGN_ONSETS", "0")
    assert get_settings().align_onsets is False
    assert load_aligner("dtw").onsets is True and load_aligner("sphinx").onsets is True
    assert load_aligner("dtw", onsets=False).onsets is False and load_aligner("sphinx", onsets=False).onsets is False
    auto = load_aligner("auto", onsets=False)
    assert auto.dtw.onsets is False and auto.sphinx.onsets is False
