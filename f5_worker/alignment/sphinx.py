"""Forced alignment with pocketsphinx on CPU, using the English model shipped in its wheel.

Two decoding passes: a word-level Viterbi pass over the text (with optional
silences between words, and a branch per reading where a token can be read
two ways), then a phone/state-level pass that scores each word and gives
phone segments for character timings. ``bestpath`` is off because the lattice
rescoring pass drops final words from alignments. Audio over 30 s is cut at
pauses into stretches after a word-level pass over all of it. Every decode starts
from reset front-end state, so a result depends only on (audio, text, language),
never on what the worker aligned before.
"""

from __future__ import annotations

import math
import threading
import time
import warnings

import numpy as np

from f5_worker import stopping
from f5_worker.alignment import g2p, onsets
from f5_worker.alignment.aligner import WordTiming, backend_input, build_alignment
from f5_worker.alignment.estimate import EstimateAligner, unalignable
from f5_worker.audio import mean_squares, to_pcm16
from f5_worker.timed_text import Alignment

SAMPLE_RATE = 16000
FRAME_S = 0.01  # pocketsphinx default: 100 frames a second
FILLERS = {"<s>", "</s>", "<sil>", "[NOISE]", "(NULL)", "SIL"}
# Word confidence is a logistic function of the word's mean per-frame acoustic score, which
# pocketsphinx measures against the best-scoring senone of each frame (a goodness-of-
# pronunciation measure). Midpoint and width were calibrated on matching vs. substituted
# words in espeak-ng speech (see docs/timings.md).
CONFIDENCE_MIDPOINT = -70.0
CONFIDENCE_WIDTH = 12.0
LOUD_DB = -30.0  # frames this close to the loudest count as speech for ``_speech_explained``
# A voiceless stop after a pause starts with a silent closure, which the silence model takes;
# the word starts where the closure starts. Measured on the espeak-ng corpus: words opening
# with P/T/K/CH after a pause were placed 45-55 ms late (median 48 ms); 45 ms is moved back.
VOICELESS_STOPS = {"P", "T", "K", "CH"}
CLOSURE_S = 0.045
LONG_AUDIO_S = 30.0  # longer audio is aligned in stretches (see ``_align_long``)
# After a word pass over more than this, its decoder is rebuilt: pocketsphinx keeps buffers sized for the
# longest utterance it has decoded (0.23 GB after 30 minutes), and a new decoder costs about 0.2 s.
REBUILD_AFTER_S = 300.0
STRETCH_S = 15.0
MIN_CUT_FRAMES = 8  # pauses of at least 80 ms are places to cut
MAX_ADDED_WORDS = 20000  # out-of-dictionary words a decoder learns before it is rebuilt


class SphinxAligner:
    """pocketsphinx forced alignment.

    ``beams``: decoding is tried with each beam in turn (narrow is faster, wide
    finds a path through unusual audio). ``onsets``: where a word meets a pause, its
    start and end are moved to where the sound rises and falls (``onsets.refine``).
    Extra keyword arguments are pocketsphinx decoder options.
    """

    name = "sphinx"

    def __init__(self, *, beams: tuple[float, ...] = (1e-80, 1e-200), max_added_words: int = MAX_ADDED_WORDS,
                 onsets: bool = True, **decoder_options):
        self._beams, self._options = beams, decoder_options
        self.onsets = onsets  # False: the decoder's boundaries as they are (to measure what ``onsets`` adds)
        self._decoders = [self._new_decoder(b) for b in beams]
        self._coarse = len(self._decoders) - 1  # the widest beam does the word pass over long audio
        self._known: list[set[str]] = [set() for _ in self._decoders]
        self._added = [0 for _ in self._decoders]
        self.max_added_words = max_added_words
        self._lock = threading.Lock()

    def _new_decoder(self, beam: float):
        from pocketsphinx import Decoder

        return Decoder(lm=None, bestpath=False, loglevel="FATAL", beam=beam, pbeam=beam, wbeam=beam, **self._options)

    def _rebuild(self, i: int) -> None:
        """Decoder ``i`` afresh from the shipped dictionary (the words it learnt are learnt again as needed)."""
        self._decoders[i] = self._new_decoder(self._beams[i])
        self._known[i], self._added[i] = set(), 0

    def _ensure_words(self, i: int, words: list[str]) -> None:
        missing = [w for w in dict.fromkeys(words) if w not in self._known[i]]
        if missing and self._added[i] + len(missing) > self.max_added_words:
            # Words added to a decoder stay for its life (about 1 kB each): a long-lived worker
            # would grow without end. Start afresh from the shipped dictionary instead.
            self._rebuild(i)
            missing = list(dict.fromkeys(words))
        d = self._decoders[i]
        for n, word in enumerate(missing):
            if d.lookup_word(word) is None:
                d.add_word(word, g2p.pronounce(word), update=n == len(missing) - 1)
                self._added[i] += 1
            self._known[i].add(word)

    @staticmethod
    def _decode(d, pcm: bytes) -> None:
        """One utterance through decoder ``d``, its features a function of ``pcm`` alone.

        pocketsphinx's front end removes noise with spectral-minimum trackers that
        ``start_utt`` does not reset: without ``start_stream`` every decode would start from
        the noise estimate the previous audio left, so a job's timings (and score) would depend
        on which jobs ran before, and the phone pass would see other features than the word
        pass. CMN needs no reset: the model's ``-cmn batch`` over a full utterance uses only
        that utterance's mean (pocketsphinx switches a decoder to carried-over live CMN for
        good after one partial-utterance call, so every call here passes ``full_utt=True``).
        """
        with warnings.catch_warnings():  # pocketsphinx calls it deprecated, yet it is the only reset
            warnings.simplefilter("ignore", DeprecationWarning)
            d.start_stream()
        d.start_utt()
        d.process_raw(pcm, no_search=False, full_utt=True)
        d.end_utt()

    def align(self, audio: np.ndarray, sample_rate: int, text: str, *, language: str = "en") -> Alignment:
        t0 = time.perf_counter()
        audio, duration, tokens, spoken = backend_input(audio, sample_rate, text, language, SAMPLE_RATE)
        english = language.lower().split("-")[0] == "en"
        if not spoken or len(audio) < SAMPLE_RATE * 0.05 or not english:
            # Nothing to align, or a language the English model cannot judge: flagged estimates.
            return EstimateAligner().align(audio, SAMPLE_RATE, text, language=language)
        pcm = to_pcm16(audio).tobytes()
        spoken_tokens = [tok for tok in tokens if tok.spoken]
        units = [[tok.spoken, *tok.alternatives] for tok in spoken_tokens]
        with self._lock:
            if len(audio) <= LONG_AUDIO_S * SAMPLE_RATE:
                found = self._align_stretch(pcm, units, refine=True)
            else:
                found = self._align_long(pcm, units)
                if len(audio) > REBUILD_AFTER_S * SAMPLE_RATE:
                    self._rebuild(self._coarse)
        timings = None
        if found is not None:
            words, phones, first_phone, chosen = found
            for tok, unit, k in zip(spoken_tokens, units, chosen, strict=True):
                tok.spoken = unit[k]  # report timings for the reading the audio has
            timed = _word_timings(words, phones, sum(len(t.spoken) for t in spoken_tokens), first_phone)
            if timed is not None:
                timings, openings = timed
                if self.onsets:
                    timings = _at_onsets(audio, timings, openings)
        if timings is None:
            return unalignable(audio, SAMPLE_RATE, text, language, duration, t0, backend="sphinx")
        return build_alignment(
            text, tokens, timings, duration=duration, backend="sphinx", estimated=False,
            align_seconds=time.perf_counter() - t0, speech_explained=_speech_explained(audio, found[0]),
        )

    def _search_text(self, i: int, units: list[list[list[str]]]) -> None:
        """Make decoder ``i`` align to ``units``: each a list of readings (lists of words).

        One reading everywhere is pocketsphinx's plain text alignment; otherwise a
        finite-state grammar with a branch per reading (fillers are added by pocketsphinx).
        """
        self._ensure_words(i, [w for unit in units for reading in unit for w in reading])  # may rebuild it
        d = self._decoders[i]
        if all(len(unit) == 1 for unit in units):
            d.set_align_text(" ".join(w for unit in units for w in unit[0]))
            return
        transitions, state, next_state = [], 0, 1
        for unit in units:
            end, next_state = next_state, next_state + 1
            for reading in unit:
                current = state
                for k, word in enumerate(reading):
                    if k == len(reading) - 1:
                        to = end
                    else:
                        to, next_state = next_state, next_state + 1
                    transitions.append((current, to, 1.0 / len(unit) if k == 0 else 1.0, word))
                    current = to
            state = end
        fsg = d.create_fsg("_readings", 0, state, transitions)
        try:
            d.remove_search("_readings")
        except (KeyError, RuntimeError):
            pass
        d.add_fsg("_readings", fsg)
        d.activate_search("_readings")

    def _align_stretch(self, pcm: bytes, units: list[list[list[str]]], refine: bool, decoders: list[int] | None = None):
        """Align ``units`` to ``pcm``: (words, phones, first phones, chosen readings), or None when no path fits.

        ``words`` are in frames and include filler (silence) segments, as (name, start, duration, score).
        Without ``refine`` (the phone pass) boundaries are the same but word scores are meaningless.
        """
        for i in decoders if decoders is not None else range(len(self._decoders)):
            self._search_text(i, units)
            d = self._decoders[i]
            self._decode(d, pcm)
            if d.hyp() is None:
                continue  # pruned away: try a wider beam
            words = [(s.word, s.start_frame, s.end_frame - s.start_frame + 1, s.ascore) for s in d.seg()]
            phones = []
            if refine:
                d.set_alignment()
                self._decode(d, pcm)
                alignment = d.get_alignment()
                if alignment is not None:
                    # Copy out at once: entries point into the decoder's memory.
                    words = [(w.name, w.start, w.duration, w.score) for w in alignment.words()]
                    phones = [(p.name, p.start, p.duration, p.score) for p in alignment.phones()]
            chosen = choose_readings(units, [_base(w[0]) for w in words if w[0] not in FILLERS])
            if chosen is None:
                continue
            first_phone = {w[0]: (d.lookup_word(w[0]) or "").split()[:1] for w in words if w[0] not in FILLERS}
            return words, phones, first_phone, chosen
        return None

    def _align_long(self, pcm: bytes, units: list[list[list[str]]]):
        """Long audio: a word-level pass over all of it finds the pauses, then stretches of about
        STRETCH_S seconds, cut in the middle of pauses, get the full treatment one by one.

        The phone pass over minutes of audio at once is slow, needs the wide beam, and its
        scores sag; stretches keep cost linear and confidences comparable to short audio.
        """
        coarse = self._align_stretch(pcm, units, refine=False, decoders=[self._coarse])
        if coarse is None:
            return None
        entries, chosen = coarse[0], coarse[3]
        spoken = [w for unit, k in zip(units, chosen, strict=True) for w in unit[k]]
        n_frames = len(pcm) // 2 // int(SAMPLE_RATE * FRAME_S)
        stretches, start_frame, first_word, n_words = [], 0, 0, 0
        for name, start, dur, _ in entries:
            if name not in FILLERS:
                n_words += 1
            elif (n_words > first_word and dur >= MIN_CUT_FRAMES
                  and start + dur // 2 - start_frame >= STRETCH_S / FRAME_S):
                cut = start + dur // 2
                stretches.append((start_frame, cut, first_word, n_words))
                start_frame, first_word = cut, n_words
        stretches.append((start_frame, max(n_frames, start_frame + 1), first_word, n_words))
        words, phones, first_phone = [], [], dict(coarse[2])
        hop_bytes = 2 * int(SAMPLE_RATE * FRAME_S)
        real = [e for e in entries if e[0] not in FILLERS]
        for a, b, i, j in stretches:
            if stopping.is_stopped():  # in the worker process (ALIGN_PROCESSES=0): a stop waits for one stretch only
                raise stopping.JobStopped("during alignment")
            if i == j:
                words.append(("<sil>", a, b - a, 0))
                continue
            stretch_units = [[[w]] for w in spoken[i:j]]
            found = self._align_stretch(pcm[a * hop_bytes : b * hop_bytes], stretch_units, refine=True)
            if found is None:  # keep the coarse boundaries; no score for these words
                words.extend((n, s, d, CONFIDENCE_MIDPOINT * d * 2) for n, s, d, _ in real[i:j])
                continue
            words.extend((n, s + a, d, sc) for n, s, d, sc in found[0])
            phones.extend((n, s + a, d, sc) for n, s, d, sc in found[1])
            first_phone.update(found[2])
        return words, phones, first_phone, chosen


def _base(word: str) -> str:
    """Dictionary word without its pronunciation-variant suffix: "hundred(2)" -> "hundred"."""
    return word.split("(", 1)[0] if word.endswith(")") else word


def choose_readings(units: list[list[list[str]]], said: list[str]) -> list[int] | None:
    """Which reading of each unit the word sequence ``said`` took, or None if it fits none.

    Dynamic programming over word positions, so readings of different lengths
    ("fifteen sixty four" / "one thousand five hundred sixty four") are no problem.
    """
    reach: list[dict[int, int]] = [{0: -1}]  # per unit boundary: position -> reading that got there
    for unit in units:
        nxt: dict[int, int] = {}
        for pos in reach[-1]:
            for k, reading in enumerate(unit):
                end = pos + len(reading)
                if end not in nxt and said[pos:end] == reading:
                    nxt[end] = k
        if not nxt:
            return None
        reach.append(nxt)
    if len(said) not in reach[-1]:
        return None
    chosen, pos = [], len(said)
    for u in range(len(units), 0, -1):
        k = reach[u][pos]
        chosen.append(k)
        pos -= len(units[u - 1][k])
    return chosen[::-1]


def _speech_explained(audio16k: np.ndarray, words) -> float:
    """Share of the loud frames (within LOUD_DB of the loudest) that the alignment gives to words.

    When the audio says more than the text, the extra speech can only go to
    silence segments; a good alignment leaves only breaths and decays there.
    """
    hop, win = int(SAMPLE_RATE * FRAME_S), int(SAMPLE_RATE * 0.025)
    n = len(audio16k) // hop
    if n == 0:
        return 1.0
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(audio16k, (0, win)), win)[::hop][:n]
    db = 10 * np.log10(mean_squares(frames) + 1e-10)
    loud = db > db.max() + LOUD_DB
    silence = np.zeros(n, dtype=bool)
    for name, start, dur, _ in words:
        if name in FILLERS:
            silence[start : start + dur] = True
    return 1.0 - float((loud & silence).sum()) / max(int(loud.sum()), 1)


def _at_onsets(audio16k: np.ndarray, timings: list[WordTiming], openings: list[str | None]) -> list[WordTiming]:
    """``timings`` with starts and ends moved where the audio's sound rises and falls (``onsets.refine``).

    A word opening with a voiceless stop keeps ``CLOSURE_S`` of silence before its sound, as the
    decoder's own starts after a pause do (see ``_word_timings``).
    """
    closures = [CLOSURE_S if opening in VOICELESS_STOPS else 0.0 for opening in openings]
    spans = onsets.refine(onsets.loudness(audio16k), [(t.start, t.end) for t in timings], closures,
                          len(audio16k) / SAMPLE_RATE)
    return [WordTiming(start, end, t.confidence, _clipped(t.units, start, end))
            for (start, end), t in zip(spans, timings, strict=True)]


def _clipped(units: list[tuple[float, float]], start: float, end: float) -> list[tuple[float, float]]:
    """Phone segments kept inside a word's moved span: the first starts with it, the last ends with it."""
    if not units:
        return units
    units = [(min(max(a, start), end), min(max(b, start), end)) for a, b in units]
    units[0] = (start, max(units[0][1], start))
    units[-1] = (units[-1][0], end)
    return units


def _word_timings(words, phones, n_expected: int,
                  first_phone: dict[str, list[str]]) -> tuple[list[WordTiming], list[str | None]] | None:
    """Per spoken word: start/end (s), confidence, and phone segments, from frame-level results; and the
    phone each word opens with."""
    if sum(w[0] not in FILLERS for w in words) != n_expected:
        return None
    timings: list[WordTiming] = []
    openings: list[str | None] = []
    pi = 0
    previous = None
    for name, start, dur, score in words:
        if name in FILLERS:
            previous = (name, start, dur)
            continue
        end = start + dur
        units = []
        while pi < len(phones) and phones[pi][1] < start:
            pi += 1
        if pi < len(phones) and phones[pi][1] == start:
            opening = phones[pi][0]
        else:  # no phone pass: the dictionary says how the word starts
            opening = (first_phone.get(name) or [None])[0]
        while pi < len(phones) and phones[pi][1] < end:
            _, ps, pd, _ = phones[pi]
            units.append((ps * FRAME_S, (ps + pd) * FRAME_S))
            pi += 1
        per_frame = score / max(dur, 1)
        logit = min(max((per_frame - CONFIDENCE_MIDPOINT) / CONFIDENCE_WIDTH, -50.0), 50.0)
        confidence = 1.0 / (1.0 + math.exp(-logit))
        start_s = start * FRAME_S
        if previous is not None and previous[0] in ("<sil>", "SIL") and opening in VOICELESS_STOPS:
            start_s -= min(CLOSURE_S, max(previous[2] - 1, 0) * FRAME_S)
            if units:
                units[0] = (start_s, units[0][1])
        timings.append(WordTiming(start_s, end * FRAME_S, confidence, units))
        openings.append(opening)
        previous = (name, start, dur)
    return timings, openings
