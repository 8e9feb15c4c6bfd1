"""Word starts and ends moved to where the sound begins and ends, at a finer step than the aligners'.

sphinx and dtw decide boundaries on 10 ms frames and over the whole utterance's path, so where a word
meets silence they miss in known ways: the first word put at 0 s when the speech starts tens of ms in, a
word after a pause started where the pause begins or with its onset given to the silence, and in noise
a pause swallowed into the words on either side (the silence model no longer fits the pause). Where a
word meets silence the boundary is visible in the audio itself: the sound rises out of the noise floor.
This module finds that rise (and the fall at a word's end) near the aligner's boundary, on 2 ms frames,
and the long pauses dtw shortens before it warps (``pauses``).

How sound is told from noise: each frame's energy in five frequency bands is compared with the band's
noise floor (the utterance's quietest frames), so a hiss or hum in one band does not hide a rise in
another. How loud a frame must be to sound is measured in the utterance's own pauses (noise that comes
and goes, such as voices in the background, needs more); an utterance without a pause has no noise to
measure and keeps the lowest threshold, so its weak consonants are not taken for quiet. A boundary is the
change point of a cumulative sum (the frames before it mostly quiet, the frames after it mostly
sounding), so a single noisy frame does not move it.

What counts as a pause is decided by its length: the quiet next to a boundary must last at least
MIN_PAUSE_S, longer than a stop consonant's silent closure, even two of them with a weak consonant
between ("Victor"), which passed for a pause when 100 ms sufficed. Otherwise, and where the step is not
clear, the aligner's boundary stands. A boundary moves past a pause into the word only when most of the
word's sound lies beyond it (a short word the aligner stretched over a pause keeps the side it sounds on).
A breath standing alone before a word (weak, unvoiced noise) counts as quiet, and a start is not moved to a
rise that a gap parts from the word's sound (a breath or a click before it). Audio whose speech barely
stands out of its noise is left as the aligner timed it. A boundary never
crosses a neighbouring word's.

Measured with ``scripts/bench/eval_alignment.py --dev-set`` (docs/timings.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000  # Hz: the rate the aligners hand their audio over at
HOP_S = 0.002  # s: step between frames, the resolution of a refined boundary
WINDOW_S = 0.008  # s: the analysis window of one frame (Hann)
SMOOTH_FRAMES = 8  # frames (16 ms) of band power averaged where a boundary is looked for
BANDS_HZ = (100, 400, 1000, 2500, 5000, 8000)  # Hz: edges of the bands each compared with its own noise floor
FLOOR_PERCENTILE = 10  # a band's noise floor: this percentile of its frames' levels over the utterance,...
PEAK_PERCENTILE = 99  # ...but never lower than this percentile of them...
DYNAMIC_RANGE_DB = 50.0  # ...less this many dB (digital silence has no floor to speak of)
# A frame's loudness: the mean of its TOP_BANDS bands that stand highest over their floors. One band would
# follow the noise's own flicker; all five would hide a fricative, which sounds in one or two (measured:
# five put the German main set's first words and "f"/"v" onsets 20-90 ms late, two moved words in 20 dB noise).
TOP_BANDS = 3
MAX_EXCESS_DB = 30.0  # dB: a band counts at most this far above its floor
SOUND_DB = 6.0  # dB over the floors: a frame at least this loud sounds (the threshold without noise)...
NOISE_PERCENTILE = 80  # ...or NOISE_MARGIN_DB over this percentile of the frames in the utterance's pauses...
NOISE_MARGIN_DB = 4.0  # (dB; noise that comes and goes, such as voices in the background, lifts it)...
MAX_SOUND_DB = 10.0  # ...which is never taken above this (dB)
# Where the noise is measured: stretches of NOISE_RUN_S where most frames lie under MAX_SOUND_DB. Over all
# frames (their 20th percentile), an utterance without a pause measured its own weak consonants: the
# threshold rose to MAX_SOUND_DB and an "f", a "th" or a stop's closure passed for quiet (a word moved 100-140 ms).
NOISE_RUN_S = 0.2  # s
QUIET_WINDOW_S = 0.05  # s: a frame is quiet when most frames within this window are under the threshold:
#   a voice in the background flickers over it for a few frames in a pause (20 dB babble: a pause broken up)
CONTRAST_DB = 4.0  # dB: the CONTRAST_FRAMES after a rise must average at least this much over the quiet before
CONTRAST_FRAMES = 15  # frames (30 ms) on either side of a boundary that its contrast is measured over
# A boundary is moved only where at least this much quiet lies on its quiet side: a stop's closure lasts
# under 100-150 ms, two with a weak consonant between about 100 ms. 100 ms moved words in sentences without
# a pause by 100-140 ms; 120, 150 and 200 ms were measured, 200 lost pauses in noise.
MIN_PAUSE_S = 0.15  # s
MIN_LEAD_S = 0.02  # s: the first word moves only where at least this much quiet opens the audio; with less, the
#   recording starts with the word, whose weak onset (an "f", a closure) is not silence to skip
SEARCH_BACK_S = 0.12  # s: a start is looked for this far before the aligner's (sphinx gave up to 150 ms of
#   an onset after leading silence to the silence; 40, 80, 160 and 200 ms were measured, 120 ms did best)...
FAR_BACK_S = 0.3  # s: ...then, where nothing usable was found, this far, over the word's own sound (``_start``)...
MAX_GAP_S = 0.06  # s: ...where no quiet this long may lie between the rise and the aligner's start
# s: an end is looked for this far after the aligner's: past a final stop's silent closure (up to about 120 ms)
#   and its burst ("at", "barked" before a pause), which sphinx gives to the pause; 80 ms left them out (ends
#   100-200 ms early)
SEARCH_FORWARD_S = 0.25
END_BACK_S = 3.0  # s: an end is looked for this far back into the word (in noise a pause is swallowed whole)
MAX_BLIP_S = 0.03  # s: shorter sound is a click or a breath of noise, not speech (``_sound_s``)
MIN_WORD_S = 0.03  # s: a word keeps at least this much of itself (one the aligner gave no length keeps none)
MIN_RANGE_DB = 20.0  # dB: below this median spread between a band's loud frames (90th percentile) and its
#   floor, speech and noise are not told apart and nothing moves (about 10 dB SNR; moving made it worse there)
MIN_BREATH_S = 0.15  # s: a breath (``_breaths``) lasts at least this (a word's last "s" after a closure is
#   shorter)...
MAX_BREATH_S = 0.8  # s: ...and at most this...
BREATH_QUIET_BEFORE_S = 0.03  # s: ...with this much quiet before it (one breathes in right after a phrase)...
BREATH_QUIET_AFTER_S = 0.08  # s: ...and this much after it, before the word...
VOICED_DB = 10.0  # dB: ...no voice (a frame whose lowest band is within this of its loudest is voiced)...
MAX_VOICED_SHARE = 0.2  # ...but in this share of its frames (at its faint edges a low hum may pass for one)...
BREATH_UNDER_DB = 20.0  # dB: ...and this far under the speech's level (all bands; 90th percentiles)
BLOCK_FRAMES = 8192  # frames analysed at once, which bounds memory on long audio


@dataclass(frozen=True)
class Loudness:
    """How far each frame of an utterance sounds above its noise floor: ``excess[k]`` (dB, see TOP_BANDS) is
    frame ``k``'s, smoothed over SMOOTH_FRAMES and centred at ``k * HOP_S + WINDOW_S / 2``; ``sharp`` the same
    unsmoothed. ``usable`` is False where speech and noise are too close to be told apart."""

    excess: np.ndarray
    usable: bool
    sound_db: float = SOUND_DB  # dB: frames at least this loud sound
    sharp: np.ndarray | None = None  # ``excess`` before smoothing: where exactly within a few frames a rise is
    quiet: np.ndarray | None = None  # per frame: under ``sound_db`` in most of the QUIET_WINDOW_S around it, or breath

    def frame(self, t: float) -> int:
        """The first frame whose centre is at or after ``t`` (s), within 0..len."""
        return int(min(max(np.ceil((t - WINDOW_S / 2) / HOP_S), 0), len(self.excess)))

    @staticmethod
    def time(k: int) -> float:
        """The boundary before frame ``k`` (s): its centre less half a step."""
        return max(0.0, k * HOP_S + WINDOW_S / 2 - HOP_S / 2)


def loudness(audio: np.ndarray) -> Loudness:
    """``Loudness`` of 16 kHz mono audio."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    hop, win = round(HOP_S * SAMPLE_RATE), round(WINDOW_S * SAMPLE_RATE)
    n = max(0, (len(audio) - win) // hop + 1)
    if n < SMOOTH_FRAMES:
        return Loudness(np.zeros(n), usable=False)
    freqs = np.fft.rfftfreq(win, 1 / SAMPLE_RATE)
    band_of = np.digitize(freqs, BANDS_HZ) - 1  # band index per bin; -1 and len-1 are outside every band
    n_bands = len(BANDS_HZ) - 1
    window = np.hanning(win).astype(np.float32)
    power = np.empty((n, n_bands), np.float32)  # float32: 20 bytes a frame, 18 MB for 30 minutes
    for lo in range(0, n, BLOCK_FRAMES):
        hi = min(n, lo + BLOCK_FRAMES)
        frames = np.lib.stride_tricks.sliding_window_view(audio[lo * hop : (hi - 1) * hop + win], win)[::hop]
        spectrum = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
        for b in range(n_bands):
            power[lo:hi, b] = spectrum[:, band_of == b].sum(axis=1)
    kernel = np.full(SMOOTH_FRAMES, 1 / SMOOTH_FRAMES, np.float32)
    level = np.stack([10 * np.log10(np.convolve(power[:, b], kernel, mode="same") + 1e-10) for b in range(n_bands)],
                     axis=1)
    floor, peak, loud = np.percentile(level, [FLOOR_PERCENTILE, PEAK_PERCENTILE, 90], axis=0)
    floor = np.maximum(floor, peak - DYNAMIC_RANGE_DB)
    excess = _over(level, floor)
    sound_db = _sound_db(excess)
    sharp = _over(10 * np.log10(power + 1e-10), floor)
    quiet = _mostly(excess < sound_db)
    breath = _breaths(level, quiet)
    excess[breath], sharp[breath], quiet[breath] = 0.0, 0.0, True
    return Loudness(excess, usable=bool(np.median(loud - floor) >= MIN_RANGE_DB), sound_db=sound_db,
                    sharp=sharp, quiet=quiet)


def _breaths(level: np.ndarray, quiet: np.ndarray) -> np.ndarray:
    """Frames of breaths: sound standing alone between quiet (BREATH_QUIET_BEFORE_S and BREATH_QUIET_AFTER_S at
    least, or the edge of the audio), MIN_BREATH_S to MAX_BREATH_S long, with no voice in it (a voiced frame's
    lowest band, where a voice's pitch and first harmonics lie, is within VOICED_DB of its loudest; in a breath
    at most MAX_VOICED_SHARE of the frames are) and BREATH_UNDER_DB under the speech's level over all bands
    (``level``: dB per band and frame). dtw matched a breath before a word to the word, 0.4-0.55 s early; an
    "s" before a stop's closure ("speak") stands alone too, but only 10-15 dB under the vowels."""
    breath = np.zeros(len(level), dtype=bool)
    sounding = ~quiet
    if not sounding.any():
        return breath
    total = 10 * np.log10(np.sum(10 ** (level / 10), axis=1))
    voiced = level[:, 0] >= level.max(axis=1) - VOICED_DB
    speech_db = float(np.percentile(total[sounding], 90))
    before, after = round(BREATH_QUIET_BEFORE_S / HOP_S), round(BREATH_QUIET_AFTER_S / HOP_S)
    for a, b in _runs(sounding, 1):
        if not MIN_BREATH_S <= (b - a) * HOP_S <= MAX_BREATH_S:
            continue
        if not (quiet[max(0, a - before) : a].all() and quiet[b : b + after].all()):  # the audio's edges count as quiet
            continue
        if voiced[a:b].mean() > MAX_VOICED_SHARE:
            continue
        if np.percentile(total[a:b], 90) > speech_db - BREATH_UNDER_DB:
            continue
        breath[a:b] = True
    return breath


def _sound_db(excess: np.ndarray) -> float:
    """How loud (dB over the floors) a frame of this utterance must be to sound: SOUND_DB, or more where the
    noise in its pauses comes and goes (see NOISE_RUN_S)."""
    pauses = _runs(_mostly(excess < MAX_SOUND_DB), round(NOISE_RUN_S / HOP_S))
    if not pauses:
        return SOUND_DB
    trim = SMOOTH_FRAMES // 2
    inside = np.concatenate([excess[a + trim : b - trim] for a, b in pauses])
    return float(np.clip(np.percentile(inside, NOISE_PERCENTILE) + NOISE_MARGIN_DB, SOUND_DB, MAX_SOUND_DB))


def _mostly(mask: np.ndarray) -> np.ndarray:
    """``mask``, and true too where it is true in most of the QUIET_WINDOW_S around a frame (a running
    majority: a short run of false within trues turns true, the edge of a long one stays)."""
    width = max(1, round(QUIET_WINDOW_S / HOP_S))
    count = np.concatenate([[0], np.cumsum(mask)])
    lo = np.clip(np.arange(len(mask)) - width // 2, 0, None)
    hi = np.minimum(lo + width, len(mask))
    return mask | (2 * (count[hi] - count[lo]) > hi - lo)


def _runs(mask: np.ndarray, min_frames: int) -> list[tuple[int, int]]:
    """Frames [start, end) of the runs of ``mask`` at least ``min_frames`` long."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= min_frames]


def _over(level: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Per frame: the mean of its ``TOP_BANDS`` loudest bands over their floors (dB, each at most MAX_EXCESS_DB)."""
    return np.sort(np.clip(level - floor, 0.0, MAX_EXCESS_DB), axis=1)[:, -TOP_BANDS:].mean(axis=1)


def pauses(loud: Loudness, min_s: float) -> list[tuple[float, float]]:
    """Stretches of at least ``min_s`` seconds where nothing sounds above the noise floor, as (start, end)
    in seconds; none where speech and noise are not told apart (``Loudness.usable``)."""
    if not loud.usable:
        return []
    return [(loud.time(a), loud.time(b)) for a, b in _runs(loud.quiet, round(min_s / HOP_S))]


def refine(loud: Loudness, spans: list[tuple[float, float]], closures: list[float],
           duration: float) -> list[tuple[float, float]]:
    """Each word's (start, end) in seconds, moved to where its sound rises out of a pause and falls into one.

    ``spans`` are the aligner's, in order and not overlapping; ``closures[i]`` is how much silence word
    ``i`` opens with when it follows a pause (a voiceless stop's closure), which its start keeps before
    the sound. A start moves only within the previous word's end and the word's own end, an end only
    within the word's start and the next word's start, so no boundary crosses a neighbour's.
    """
    out = [(float(s), float(e)) for s, e in spans]
    if not loud.usable:
        return out
    for i, (start, end) in enumerate(out):
        previous_end = out[i - 1][1] if i else 0.0
        next_start = out[i + 1][0] if i + 1 < len(out) else duration
        start = _start(loud, start, end, previous_end, closures[i])
        end = _end(loud, start, end, next_start)
        out[i] = (start, max(end, start))
    return out


def _start(loud: Loudness, start: float, end: float, previous_end: float, closure: float) -> float:
    # Near the aligner's start first; where nothing is found there, further back (sphinx put some words after a
    # pause 250-300 ms late, deep in their own sound). Either way a rise counts only if the sound runs on from it
    # to the aligner's start: one cut off by a gap is something before the word (a breath, a click).
    for back_s in (SEARCH_BACK_S, FAR_BACK_S):
        moved = _start_within(loud, start, end, previous_end, closure, back_s)
        gap = _runs(loud.quiet[loud.frame(moved + closure) : loud.frame(start)], round(MAX_GAP_S / HOP_S))
        if moved != start and not gap:
            return moved
    return start


def _start_within(loud: Loudness, start: float, end: float, previous_end: float, closure: float,
                  back_s: float) -> float:
    x = loud.excess
    i0 = loud.frame(max(previous_end, start - back_s))
    i1 = loud.frame(max(start, end - MIN_WORD_S))
    if i1 <= i0:
        return start
    t = i0 + int(np.argmin(np.concatenate([[0.0], np.cumsum(x[i0:i1] - loud.sound_db)])))
    quiet = t
    while quiet > 0 and loud.quiet[quiet - 1] and (t - quiet) * HOP_S < MIN_PAUSE_S:
        quiet -= 1
    quiet_s = (t - quiet) * HOP_S
    at_edge = quiet == 0  # quiet from the very start of the audio
    before = x[max(quiet, t - CONTRAST_FRAMES) : t]
    after = x[t : t + CONTRAST_FRAMES]
    if not len(after) or not len(before) and not at_edge:
        return start
    if after.mean() - (before.mean() if len(before) else 0.0) < CONTRAST_DB:
        return start
    moved_in = t > loud.frame(start)  # into the word, past a pause: only if most of its sound lies past it
    level = (loud.sound_db + after.mean()) / 2
    if moved_in and _sound_s(x[loud.frame(start) : t], level) >= _sound_s(x[t : loud.frame(end)], level):
        return start
    if (t * HOP_S < MIN_LEAD_S) if at_edge else quiet_s < MIN_PAUSE_S - 1e-9:
        return start
    onset = loud.time(_sharpened(loud, t, forward=True))
    # Not past the word's own end: the sound of a word shorter than a sharpening step may rise after it
    return min(max(onset - closure, loud.time(quiet), previous_end), end)


def _end(loud: Loudness, start: float, end: float, next_start: float) -> float:
    x = loud.excess
    i0 = loud.frame(max(start + MIN_WORD_S, end - END_BACK_S))
    i1 = loud.frame(min(next_start, end + SEARCH_FORWARD_S))
    if i1 <= i0:
        return end
    t = i0 + int(np.argmax(np.concatenate([[0.0], np.cumsum(x[i0:i1] - loud.sound_db)])))
    quiet = t
    while quiet < len(x) and loud.quiet[quiet] and (quiet - t) * HOP_S < MIN_PAUSE_S:
        quiet += 1
    quiet_s = (quiet - t) * HOP_S
    at_edge = quiet == len(x)  # quiet to the very end of the audio
    before = x[max(0, t - CONTRAST_FRAMES) : t]
    after = x[t:min(quiet, t + CONTRAST_FRAMES)]
    if not len(before) or not len(after) and not at_edge:
        return end
    if before.mean() - (after.mean() if len(after) else 0.0) < CONTRAST_DB:
        return end
    moved_in = t < loud.frame(end)  # back into the word, before a pause: only if most of its sound lies before
    level = (loud.sound_db + before.mean()) / 2
    if moved_in and _sound_s(x[t : loud.frame(end)], level) >= _sound_s(x[loud.frame(start) : t], level):
        return end
    if quiet_s < MIN_PAUSE_S - 1e-9 and not at_edge:
        return end
    return min(max(loud.time(_sharpened(loud, t, forward=False)), start), next_start)


def _sharpened(loud: Loudness, t: int, *, forward: bool) -> int:
    """Frame ``t`` of a rise (``forward``) or fall found on smoothed levels, moved to where the unsmoothed
    ones cross: smoothing over SMOOTH_FRAMES spreads a sudden rise earlier and a fall later by up to its
    half-width (10 ms measured), which the smoothed levels cannot tell from the edge itself."""
    if loud.sharp is None:
        return t
    if forward:
        above = np.flatnonzero(loud.sharp[t : t + SMOOTH_FRAMES] >= loud.sound_db)
        return t + int(above[0]) if len(above) else t
    above = np.flatnonzero(loud.sharp[max(0, t - SMOOTH_FRAMES) : t] >= loud.sound_db)
    return max(0, t - SMOOTH_FRAMES) + int(above[-1]) + 1 if len(above) else t



def _sound_s(x: np.ndarray, level: float) -> float:
    """Seconds of frames ``x`` at least ``level`` loud, not counting runs shorter than ``MAX_BLIP_S`` (a
    click, a breath, a voice in the background). ``level`` is halfway between the quiet and the word's
    own loudness, so noise that comes and goes is not taken for the word."""
    loud = np.concatenate([[False], x >= level, [False]])
    edges = np.flatnonzero(np.diff(loud.astype(np.int8)))
    runs = edges[1::2] - edges[::2]
    return float(runs[runs * HOP_S >= MAX_BLIP_S].sum()) * HOP_S
