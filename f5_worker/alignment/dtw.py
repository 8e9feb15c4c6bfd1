"""Word timings for the languages espeak-ng speaks: the audio warped onto espeak-ng's own rendering.

pocketsphinx has an English model only, and the multilingual CTC model (MMS_FA) is rarely cached and
licensed for non-commercial use. espeak-ng speaks about a hundred languages offline and reports the
sample where each word of its rendering starts. Dynamic time warping (DTW) of the audio's MFCCs
against the rendering's carries those starts onto the audio (the method aeneas uses). It needs no
acoustic model of the language, only that the audio says the text the way espeak-ng would, phone for
phone; what it cannot know is how a human-sounding voice differs from espeak-ng's, which is why its
score is not used as evidence of a mismatch (``Alignment.score_is_evidence``).

The warping path is searched in a band around the diagonal, so time grows with frames × band and
memory is one byte per cell of the band: 13 MB and 1.4 CPU seconds for 65 s of speech, 78 MB and
6.5 CPU seconds for 6.5 minutes. No maintained DTW package bounds memory that way:
``librosa.sequence.dtw``, ``dtw-python`` and ``tslearn`` fill the whole frames × frames matrix (1.2 GB
for 6 min at 10 ms, in float64), and ``fastdtw`` is approximate and unmaintained.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torchaudio

from f5_worker import stopping
from f5_worker.alignment import espeak, onsets
from f5_worker.alignment.aligner import WordTiming, backend_input, build_alignment
from f5_worker.alignment.estimate import EstimateAligner, unalignable
from f5_worker.audio import mean_squares, resample, speech_region
from f5_worker.text.numbers import base_language
from f5_worker.timed_text import Alignment

SAMPLE_RATE = 16000  # Hz: features are computed at this rate
FRAME_S = 0.010  # s: hop between feature frames, the resolution of the timings
WINDOW_SAMPLES = 400  # samples (25 ms at 16 kHz): the analysis window of one frame
N_MFCC = 13  # cepstral coefficients computed; the first (loudness) is dropped, voices differ in it
N_MELS = 40  # mel bands the coefficients come from
BAND_SHARE = 0.2  # the path may stray this share of the audio's length from the diagonal...
MIN_BAND_S = 2.0  # s: ...but at least this far...
MAX_BAND_S = 10.0  # s: ...and at most this far, which bounds time and memory for long audio...
MAX_SEARCH_BYTES = 128 * 2**20  # bytes: ...and narrower still where the search would hold more (one per cell)
EDGE_S = 0.1  # s: kept around the speech region of either side when leading and trailing silence is cut
LOUD_DB = -40.0  # dB below the loudest frame: quieter frames are silence...
NOISE_MARGIN_DB = 15.0  # dB: ...and so are frames less than this above the noise floor...
NOISE_PERCENTILE = 10  # ...taken as this percentile of the frames' energies...
MAX_SILENCE_DB = -25.0  # dB below the loudest frame: ...but never a frame louder than this...
SILENCE_DBFS = -60.0  # dB full scale: ...and always a frame quieter than this
LONG_PAUSE_S = 0.15  # s: silence longer than a stop consonant's closure is a pause, not part of a word
PAUSE_KEPT_S = 0.1  # s: a long pause is shortened to this before warping (``kept_frames``)...
# ...and what is left of it costs nothing matched between two rendered words, and this (a cosine distance,
# what unrelated frames cost) matched inside one: a path free to put it anywhere put it at a stop's closure
# inside a word, and a word on the wrong side of the pause (0.3-1.4 s off).
PAUSE_IN_WORD_COST = 1.0
CLOSURE_S = 0.05  # s: the silence a word opening with a stop is given before its first sound
MAX_CLOSURE_S = 0.1  # s: the most silence a rendered word is taken to open with (``opening_silence``)
CLOSURE_SILENCE_DB = -50.0  # dB below the rendering's peak sample: a millisecond this quiet is silent
RATE_RANGE_WPM = (80, 450)  # espeak-ng's usable speaking rates (words per minute)
RATE_MATCH_TOLERANCE = 0.1  # the rendering is spoken again at a matched rate when its speech is this much off
# Voices for language tags whose espeak-ng voice has another name ("en" is British English there).
_VOICE_FOR_TAG = {"en": "en-us", "zh": "cmn"}

STOP_CHECK_ROWS = 500  # rows (5 s of audio, some 50 ms of work) between looks at the job's stop flag
_STEP_DIAGONAL, _STEP_UP, _STEP_LEFT = 0, 1, 2  # up: the audio advances alone; left: the rendering does


def espeak_voice(language: str) -> str:
    """The espeak-ng voice for a language tag (``fr``, ``pt-BR``, ``en``)."""
    tag = language.lower().replace("_", "-")
    return _VOICE_FOR_TAG.get(tag, tag)


def espeak_voices(language: str) -> list[str]:
    """Voices to try for a language tag: its own, then its base language's (``fr-CA``: none, then ``fr``)."""
    return list(dict.fromkeys([espeak_voice(language), espeak_voice(base_language(language))]))


def mfcc_features(audio: np.ndarray) -> np.ndarray:
    """Unit-length MFCC vectors (frames x coefficients) of 16 kHz audio, one per ``FRAME_S``.

    Each coefficient is standardised over the utterance (mean 0, variance 1), which removes most of
    what a voice and a channel add; cosine similarity then compares what is said.
    """
    transform = torchaudio.transforms.MFCC(
        sample_rate=SAMPLE_RATE, n_mfcc=N_MFCC,
        melkwargs={"n_fft": WINDOW_SAMPLES, "hop_length": round(SAMPLE_RATE * FRAME_S), "n_mels": N_MELS},
    )
    with torch.no_grad():
        feats = transform(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))).T.numpy()
    feats = feats[:, 1:].astype(np.float64)
    feats = (feats - feats.mean(axis=0)) / (feats.std(axis=0) + 1e-8)
    return feats / (np.linalg.norm(feats, axis=1, keepdims=True) + 1e-8)


def band_centres(n_rows: int, n_cols: int) -> np.ndarray:
    """Column at the diagonal for each row."""
    return np.round(np.arange(n_rows) * ((n_cols - 1) / max(n_rows - 1, 1))).astype(np.int64)


def banded_dtw(rows: np.ndarray, cols: np.ndarray, band: int, *, paused: np.ndarray | None = None,
               between: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cheapest monotonic path from (0, 0) to the last frame of both, within ``band`` columns of
    the diagonal, under cost 1 - cosine similarity of unit vectors; rows ``paused`` (what is left of a
    long pause, ``pause_rows``) cost 0 in columns ``between`` words and PAUSE_IN_WORD_COST elsewhere.

    Steps: one frame of both (diagonal), of ``rows`` alone, or of ``cols`` alone, each paying the cost
    of the cell it enters. Returns the path's row and column indices and the similarity of each of its
    cells. A row's horizontal moves depend on each other; they are solved at once as a running
    minimum over prefix sums: D[j] = S[j] + min_{k<=j}(T[k] - S[k]), with T the cost of entering from
    the previous row and S the row's cumulative cost.
    """
    n, m = len(rows), len(cols)
    width = 2 * band + 1
    centres = band_centres(n, m)
    lows = centres - band  # column of band index 0 in each row
    steps = np.empty((n, width), dtype=np.int8)
    padded_cols = np.concatenate([np.zeros((band, cols.shape[1])), cols, np.zeros((band + 1, cols.shape[1]))])
    if paused is not None:
        off_word_gap = np.concatenate([np.ones(band), np.where(between, 0.0, PAUSE_IN_WORD_COST), np.ones(band + 1)])
    prev = np.full(width + 2, np.inf)  # previous row's totals, one inf either side
    for i in range(n):
        if i % STOP_CHECK_ROWS == 0 and stopping.is_stopped():
            raise stopping.JobStopped("during alignment")
        lo = lows[i]
        j = lo + np.arange(width)
        valid = (j >= 0) & (j < m)
        if paused is not None and paused[i]:
            cost = off_word_gap[lo + band : lo + band + width].copy()
        else:
            cost = 1.0 - padded_cols[lo + band : lo + band + width] @ rows[i]
        cost[~valid] = np.inf
        if i == 0:
            entering = np.full(width, np.inf)
            entering[j == 0] = cost[j == 0]
            from_up = np.zeros(width, dtype=bool)
        else:
            shift = lo - lows[i - 1]  # this row's band index k is the previous row's k + shift
            idx = np.arange(width) + shift + 1  # into ``prev`` (offset by its leading inf)
            up = prev[np.clip(idx, 0, width + 1)]
            diagonal = prev[np.clip(idx - 1, 0, width + 1)]
            from_up = up < diagonal
            entering = cost + np.minimum(up, diagonal)
        finite_cost = np.where(valid, cost, 0.0)
        prefix = np.cumsum(finite_cost)
        total = prefix + np.minimum.accumulate(entering - prefix)
        total[~valid] = np.inf
        step = np.where(from_up, _STEP_UP, _STEP_DIAGONAL).astype(np.int8)
        # Left where coming from the left costs less than entering; the prefix-sum form of ``total``
        # is off by rounding, so the comparison is made on the step's own terms.
        from_left = np.concatenate([[np.inf], total[:-1]]) + cost
        step[from_left < entering] = _STEP_LEFT
        steps[i] = step
        prev = np.concatenate([[np.inf], total, [np.inf]])
    if not np.isfinite(prev[1 + (m - 1 - lows[-1])]):
        raise ValueError("no path within the band")
    path_i, path_j = [], []
    i, j = n - 1, m - 1
    while True:
        path_i.append(i)
        path_j.append(j)
        if i == 0 and j == 0:
            break
        step = steps[i, j - lows[i]]
        if step == _STEP_LEFT:
            j -= 1
        elif step == _STEP_UP:
            i -= 1
        else:
            i, j = i - 1, j - 1
    path_i = np.array(path_i[::-1])
    path_j = np.array(path_j[::-1])
    similarity = np.einsum("ij,ij->i", rows[path_i], cols[path_j])
    return path_i, path_j, similarity


def band_frames(n_rows: int, n_cols: int) -> int:
    """Half-width of the search band, in frames, for audio of ``n_rows`` frames."""
    frames = min(max(max(n_rows, n_cols) * BAND_SHARE, MIN_BAND_S / FRAME_S), MAX_BAND_S / FRAME_S)
    return max(1, int(min(frames, MAX_SEARCH_BYTES // (2 * max(n_rows, 1)))))


class DtwAligner:
    """Times words by warping the audio onto espeak-ng's rendering of the text."""

    name = "dtw"

    def __init__(self, *, onsets: bool = True):
        # False: the warping path's boundaries as they are (to measure what ``onsets.refine`` adds)
        self.onsets = onsets

    def align(self, audio: np.ndarray, sample_rate: int, text: str, *, language: str = "en") -> Alignment:
        t0 = time.perf_counter()
        audio16, duration, tokens, spoken = backend_input(audio, sample_rate, text, language, SAMPLE_RATE)
        if not spoken:
            return build_alignment(text, tokens, [], duration=duration, backend=self.name, estimated=False,
                                   align_seconds=time.perf_counter() - t0)
        sounding = sounding_frames(audio16)
        if not sounding.any():
            return unalignable(audio, sample_rate, text, language, duration, t0, self.name)
        loud = np.flatnonzero(sounding)
        hop = round(SAMPLE_RATE * FRAME_S)
        levels = onsets.loudness(audio16) if self.onsets else None
        # The frames warped: the speech region and EDGE_S around it, with long pauses shortened.
        kept = kept_frames(max(0, int(loud[0]) - round(EDGE_S / FRAME_S)),
                           min(len(sounding), int(loud[-1]) + 1 + round(EDGE_S / FRAME_S)),
                           onsets.pauses(levels, LONG_PAUSE_S) if levels is not None else [])
        test = shortened(audio16, kept)
        rendering = None
        for voice in espeak_voices(language):
            try:
                rendering = render_matched(text, voice, len(test) / SAMPLE_RATE)
                break
            except espeak.NoSuchVoice:
                continue
        if rendering is None:  # espeak-ng cannot say this text: nothing to warp onto
            return EstimateAligner().align(audio, sample_rate, text, language=language)
        ref_audio, anchors = rendering
        if len(test) < 2 * WINDOW_SAMPLES:
            return unalignable(audio, sample_rate, text, language, duration, t0, self.name)
        # The rendering's own long pauses (between sentences) are shortened the same way.
        ref_n = int(np.ceil(len(ref_audio) / hop))
        ref_kept = (kept_frames(0, ref_n, onsets.pauses(onsets.loudness(ref_audio), LONG_PAUSE_S))
                    if levels is not None else np.arange(ref_n))
        rows, cols = mfcc_features(test), mfcc_features(shortened(ref_audio, ref_kept))
        ref_loud = sounding_frames(ref_audio)
        ref_spans = rendering_spans(tokens, anchors, ref_loud, len(ref_audio) / SAMPLE_RATE)
        spoken_tokens = [tok for tok in tokens if tok.spoken]
        paused, between = None, None
        if levels is not None:
            paused = pause_rows(kept, len(rows))
            between = between_words([in_kept(span, ref_kept) for tok, span in zip(tokens, ref_spans, strict=True)
                                     if tok.spoken], len(cols))
        path_i, path_j, similarity = banded_dtw(rows, cols, band_frames(len(rows), len(cols)),
                                                paused=paused, between=between)
        frames = [trim_silence(*map_span(in_kept(span, ref_kept), path_i, path_j), sounding[kept], 0)
                  for tok, span in zip(tokens, before_pauses(ref_spans, ref_loud), strict=True) if tok.spoken]
        # Where the path steps through the rendering alone, one audio frame ends a word and starts the next:
        # it is the next word's, so words never overlap.
        frames = [(start_f, max(start_f, min(end_f, frames[k + 1][0])) if k + 1 < len(frames) else end_f)
                  for k, (start_f, end_f) in enumerate(frames)]
        timings = []
        for tok, (start_f, end_f) in zip(spoken_tokens, frames, strict=True):
            on_word = (path_i >= start_f) & (path_i < end_f)
            confidence = float(np.clip(similarity[on_word].mean(), 0.0, 1.0)) if on_word.any() else 0.0
            start, end = (f * FRAME_S for f in unwarped_span(start_f, end_f, kept))
            timings.extend(split_token(tok.spoken, start, end, confidence))
        if levels is not None:
            # A word keeps before its sound the silence its rendering opens with (a stop's closure).
            closures = [c for tok, span in zip(tokens, ref_spans, strict=True) if tok.spoken
                        for c in [opening_silence(ref_audio, span[0])] + [0.0] * (len(tok.spoken) - 1)]
            spans = onsets.refine(levels, [(t.start, t.end) for t in timings], closures, len(audio16) / SAMPLE_RATE)
            timings = [WordTiming(start, end, t.confidence) for (start, end), t in zip(spans, timings, strict=True)]
        result = build_alignment(text, tokens, timings, duration=duration, backend=self.name, estimated=False,
                                 align_seconds=time.perf_counter() - t0)
        result.score_is_evidence = False
        result.flagged_words = []  # confidences are likeness to espeak-ng's voice: no word stands out by them
        return result


def kept_frames(first: int, stop: int, pauses: list[tuple[float, float]]) -> np.ndarray:
    """Indices of the ``FRAME_S`` frames in [first, stop) that are warped: a pause (start, end in seconds)
    longer than ``LONG_PAUSE_S`` keeps ``PAUSE_KEPT_S`` of itself, half at either end.

    The rendering pauses briefly at punctuation or not at all; a speaker may pause for seconds, and the
    path, paying for every frame of silence matched to speech, then drags words into the pause. So the
    long pauses of both (the rendering's between sentences) are shortened alike before warping, and times
    mapped back; what is left of an audio pause is matched between two rendered words (``banded_dtw``)."""
    keep = np.zeros(max(stop, first), dtype=bool)
    keep[first:stop] = True
    half = round(PAUSE_KEPT_S / FRAME_S / 2)
    for start, end in pauses:
        a, b = int(np.ceil(start / FRAME_S - 1e-6)) + half, int(end / FRAME_S + 1e-6) - half
        if b > a:
            keep[max(a, first) : min(b, stop)] = False
    return np.flatnonzero(keep)


def shortened(audio: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The ``FRAME_S`` frames ``kept`` of 16 kHz audio, run by run (an index per sample would take 8 bytes each)."""
    hop = round(SAMPLE_RATE * FRAME_S)
    breaks = np.flatnonzero(np.diff(kept) > 1) + 1
    return np.concatenate([audio[run[0] * hop : (run[-1] + 1) * hop] for run in np.split(kept, breaks)])


def in_kept(span: tuple[float, float], kept: np.ndarray) -> tuple[float, float]:
    """A span (s) of the full audio as times in its shortened copy: a time in a cut moves to the cut."""
    return tuple(float(np.searchsorted(kept, round(t / FRAME_S))) * FRAME_S for t in span)


def pause_rows(kept: np.ndarray, n_rows: int) -> np.ndarray:
    """Which frames of the shortened audio (``kept_frames``) are what is left of a long pause."""
    half = round(PAUSE_KEPT_S / FRAME_S / 2)
    rows = np.zeros(n_rows, dtype=bool)
    for cut in np.flatnonzero(np.diff(kept) > 1):
        rows[max(0, cut + 1 - half) : cut + 1 + half] = True
    return rows


def between_words(spans: list[tuple[float, float]], n_cols: int) -> np.ndarray:
    """Which frames of the rendering lie between two words: from where one's span ends to where the next
    starts, a frame either side. Where the rendering pauses (between sentences) a span ends at the next
    word's event, a few ms into its sound, so these frames are that word's onset (see ``before_pauses``)."""
    cols = np.zeros(n_cols, dtype=bool)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        a, b = int(end / FRAME_S) - 1, int(np.ceil(start / FRAME_S)) + 2
        cols[max(0, min(a, b - 3)) : min(n_cols, b)] = True
    return cols


def unwarped_span(start_f: int, end_f: int, kept: np.ndarray) -> tuple[int, int]:
    """Frames [start, end) of the audio for frames [start_f, end_f) of its shortened copy (``kept_frames``).

    Nothing sounds where a pause was cut, so a word does not start in the part of a pause kept before
    the cut, nor end in the part kept after it: such a start moves to the cut's end, such an end to its
    start."""
    n = len(kept)
    start_f, end_f = min(max(start_f, 0), n - 1), min(max(end_f, start_f + 1), n)
    half = round(PAUSE_KEPT_S / FRAME_S / 2)
    jumps = np.flatnonzero(np.diff(kept) > 1)  # kept[k + 1] follows a cut after kept[k]
    start, end = int(kept[start_f]), int(kept[end_f - 1]) + 1
    ahead = jumps[(jumps >= start_f) & (jumps <= start_f + half)]
    if len(ahead):
        start = int(kept[ahead[0] + 1])
    behind = jumps[(jumps < end_f - 1) & (jumps >= end_f - 2 - half)]
    if len(behind):
        end = int(kept[behind[-1]]) + 1
    return start, max(start, end)


def render_matched(text: str, voice: str, speech_s: float):
    """espeak-ng's rendering of ``text`` at 16 kHz, spoken at a rate that makes its speech about as
    long as ``speech_s`` (the closer the two, the nearer the path stays to the diagonal), and the
    word events; None when espeak-ng says nothing.

    The voice is steady (``espeak.synthesize``): with its flutter, a warm worker rendered the same text a
    few samples differently after other speech, which moved words by up to 160 ms."""
    rate = espeak.DEFAULT_RATE_WPM
    for _ in range(2):
        audio, sr, events = espeak.synthesize(text, voice=voice, rate_wpm=rate, steady=True)
        if not events or not len(audio):
            return None
        lo, hi = speech_region(audio, sr)
        ratio = (hi - lo) / speech_s if speech_s > 0 else 1.0
        if abs(ratio - 1.0) <= RATE_MATCH_TOLERANCE:
            break
        rate = int(np.clip(rate * ratio, *RATE_RANGE_WPM))
    lo_sample = int(max(0.0, lo - EDGE_S) * sr)
    hi_sample = int(min(len(audio) / sr, hi + EDGE_S) * sr)
    anchors = {e.text_position: (e.sample - lo_sample) / sr for e in events}
    return resample(audio[lo_sample:hi_sample], sr, SAMPLE_RATE), anchors


def rendering_spans(tokens, anchors: dict[int, float], loud: np.ndarray, duration: float) -> list[tuple[float, float]]:
    """Each token's (start, end) in the rendering of ``duration`` seconds whose ``sounding_frames`` are ``loud``.

    A token starts at the word event inside it; a token without one (espeak-ng joined it to a
    neighbour, or said nothing) shares the time between its neighbours. It ends where the rendering
    falls silent before the next token's start.
    """
    starts: list[float | None] = []
    for tok in tokens:
        inside = [t for pos, t in anchors.items() if tok.char_start <= pos < tok.char_end]
        starts.append(max(0.0, min(inside)) if inside and tok.spoken else None)
    known = [i for i, s in enumerate(starts) if s is not None]
    if not known:
        return [(0.0, duration)] * len(tokens)
    # Tokens before the first anchor, between anchors, after the last: spread evenly.
    filled = list(starts)
    bounds = [(-1, 0.0)] + [(i, starts[i]) for i in known] + [(len(tokens), duration)]
    for (a, ta), (b, tb) in zip(bounds, bounds[1:], strict=False):
        gap = [k for k in range(a + 1, b) if tokens[k].spoken]
        first = ta if a >= 0 else 0.0
        for n, k in enumerate(gap, start=1):
            filled[k] = first + (tb - first) * n / (len(gap) + 1)
    spans = []
    nexts = [s for s in filled if s is not None] + [duration]
    order = iter(nexts[1:])
    for s in filled:
        if s is None:
            spans.append((0.0, 0.0))
            continue
        nxt = max(next(order), s)
        lo_f, hi_f = int(s / FRAME_S), int(np.ceil(nxt / FRAME_S))
        sounding = np.flatnonzero(loud[lo_f:hi_f])
        end = (lo_f + sounding[-1] + 1) * FRAME_S if len(sounding) else nxt
        spans.append((s, min(max(end, s + FRAME_S), max(nxt, s + FRAME_S))))
    return spans


def before_pauses(spans: list[tuple[float, float]], loud: np.ndarray) -> list[tuple[float, float]]:
    """``rendering_spans``' spans, each that the rendering's sound takes up again only after a pause (LONG_PAUSE_S)
    ending where it fell silent: espeak-ng's event for a word after a pause lies a few ms into its sound, so
    the frame it starts in sounds, and the word before was taken to end there. On that span the speaker's
    pause (what is left of it, ``kept_frames``) and the next word's onset were counted in the word, which ended
    after the pause (4 s late, farther back than ``onsets`` looks). ``between_words`` keeps the spans as they
    are: matched free of cost within the rendering's pause, the speaker's pause moved a word across it."""
    pause = round(LONG_PAUSE_S / FRAME_S)
    out = []
    for start, end in spans:
        lo_f, held = int(start / FRAME_S), int(end / FRAME_S)  # the frame the span's end (a next start) lies in
        silent = held - pause >= lo_f and held < len(loud) and loud[held] and not loud[held - pause : held].any()
        sounding = np.flatnonzero(loud[lo_f : held - pause]) if silent else []
        out.append((start, max((lo_f + int(sounding[-1]) + 1) * FRAME_S, start + FRAME_S)) if len(sounding)
                   else (start, end))
    return out


def opening_silence(ref_audio: np.ndarray, start: float) -> float:
    """Seconds of silence the rendering has from ``start`` (a word event) to its first sound, at most
    ``MAX_CLOSURE_S``: espeak-ng starts a word that opens with a stop at its silent closure."""
    hop = SAMPLE_RATE // 1000
    piece = ref_audio[int(start * SAMPLE_RATE) : int((start + MAX_CLOSURE_S) * SAMPLE_RATE)]
    n = len(piece) // hop
    if n == 0 or not len(ref_audio):
        return 0.0
    threshold = float(np.max(np.abs(ref_audio))) ** 2 * 10 ** (CLOSURE_SILENCE_DB / 10)
    sounds = np.flatnonzero(mean_squares(piece[: n * hop].reshape(n, hop)) > threshold)
    return (int(sounds[0]) if len(sounds) else n) * hop / SAMPLE_RATE


def sounding_frames(audio: np.ndarray) -> np.ndarray:
    """Which ``FRAME_S`` frames of 16 kHz audio hold sound rather than silence or a noise floor.

    A recording's noise floor is not silence to the eye but is to the words: a word neither starts
    nor ends in it.
    """
    hop = round(SAMPLE_RATE * FRAME_S)
    n = max(1, int(np.ceil(len(audio) / hop)))
    padded = np.zeros(n * hop, np.float32)
    padded[: len(audio)] = audio
    energy = 10 * np.log10(mean_squares(padded.reshape(n, hop)) + 1e-12)
    peak = energy.max()
    floor = np.percentile(energy, NOISE_PERCENTILE) + NOISE_MARGIN_DB
    return (energy > min(max(peak + LOUD_DB, floor), peak + MAX_SILENCE_DB)) & (energy > SILENCE_DBFS)


def trim_silence(start_f: int, end_f: int, sounding: np.ndarray, offset: int) -> tuple[int, int]:
    """A word's frames [start, end) of the cut audio, kept out of the pauses around it.

    The end moves back to where the audio last sounds. The start moves only out of a pause longer
    than a stop's closure, and keeps a closure's length before the sound: a word that opens with
    p, t or k starts silent.
    """
    inside = np.flatnonzero(sounding[offset + start_f : offset + end_f])
    if not len(inside):
        return start_f, end_f
    first, last = start_f + int(inside[0]), start_f + int(inside[-1]) + 1
    if first > start_f:
        before = np.flatnonzero(sounding[: offset + start_f])
        pause_start = int(before[-1]) + 1 - offset if len(before) else -offset
        if (first - pause_start) * FRAME_S > LONG_PAUSE_S:
            start_f = max(start_f, first - round(CLOSURE_S / FRAME_S))
    return start_f, last


def map_span(span: tuple[float, float], path_i: np.ndarray, path_j: np.ndarray) -> tuple[int, int]:
    """Frames [start, end) of the audio that the path matches to the rendering's span (seconds)."""
    last_col = int(path_j[-1])
    start_col = min(int(round(span[0] / FRAME_S)), last_col)
    end_col = min(max(int(round(span[1] / FRAME_S)), start_col + 1), last_col + 1)
    first = np.searchsorted(path_j, start_col, side="left")
    last = np.searchsorted(path_j, end_col - 1, side="right") - 1
    start_f = int(path_i[min(first, len(path_i) - 1)])
    end_f = int(path_i[max(last, 0)]) + 1
    return start_f, max(end_f, start_f)


def split_token(words: list[str], start: float, end: float, confidence: float) -> list[WordTiming]:
    """A token's span shared among the words it is spoken as, by their letters."""
    weights = np.array([max(len(w), 1) for w in words], dtype=float)
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return [WordTiming(float(a), float(b), confidence) for a, b in zip(edges[:-1], edges[1:], strict=True)]
