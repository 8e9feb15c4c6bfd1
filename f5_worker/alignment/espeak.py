"""ctypes binding to the libespeak-ng bundled by ``espeakng-loader``.

Two uses: an offline grapheme-to-phoneme step for words missing from the
pronunciation dictionary (``phonemize_ipa``), and speech with exact word start
times for measuring the aligner (``synthesize``). The library keeps global
state, so every call goes through one lock and one initialisation.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
import threading
from dataclasses import dataclass

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_CHARS_UTF8 = 1
ESPEAK_PHONEMES_IPA = 0x02
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_SENTENCE = 2
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
POS_CHARACTER = 1
PARAM_RATE = 1
PARAM_PITCH = 3
DEFAULT_RATE_WPM = 175  # espeak-ng's own default speaking rate (words per minute)
DEFAULT_PITCH = 50  # espeak-ng's own default base pitch (0-100)
# Voice-file lines that take away the voice's state carried between utterances (see the module docstring).
STEADY_VOICE_LINES = "\nflutter 0\nroughness 0\n"
VOICE_FILE_DIRS = ("lang", "voices")  # where, under espeak-ng's data, a voice's identifier names its file


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _VoiceInfo(ctypes.Structure):
    """The leading fields of ``espeak_VOICE`` (the rest are not read)."""

    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p), ("identifier", ctypes.c_char_p)]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class EspeakUnavailable(RuntimeError):
    """libespeak-ng (espeakng-loader) could not be loaded."""


class NoSuchVoice(ValueError):
    """espeak-ng has no voice of that name."""


@dataclass(frozen=True)
class WordEvent:
    """One ``espeakEVENT_WORD``: where a word starts in the text and in the audio."""

    text_position: int  # 0-based character offset into the synthesised text
    length: int  # characters
    sample: int  # sample index of the word start in the returned audio


class _Espeak:
    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - depends on install
            raise EspeakUnavailable("espeakng-loader is not installed") from exc
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if self.sample_rate <= 0:
            raise EspeakUnavailable(f"espeak_Initialize failed ({self.sample_rate})")
        self.lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetVoiceByFile.argtypes = [ctypes.c_char_p]
        self.lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_VoiceInfo)
        self.data_path = espeakng_loader.get_data_path()
        self._steady_dir: tempfile.TemporaryDirectory | None = None
        self._steady_files: dict[str, str] = {}
        self._blocks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int]] = []
        self._callback = _SynthCallback(self._on_synth)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.voice: str | None = None
        self.lock = threading.Lock()

    def _on_synth(self, wav, n, events) -> int:
        if n > 0:
            self._blocks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            e = events[i]
            self._events.append((e.type, e.text_position, e.length, e.sample))
            i += 1
        return 0

    def set_voice(self, voice: str, steady: bool = False) -> None:
        key = f"{voice} steady" if steady else voice
        if key == self.voice:
            return
        self.voice = None
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise NoSuchVoice(f"espeak-ng has no voice {voice!r}")
        if steady and self.lib.espeak_SetVoiceByFile(self._steady_file(voice).encode()) != 0:
            raise NoSuchVoice(f"espeak-ng could not load a steady {voice!r}")
        self.voice = key

    def _steady_file(self, voice: str) -> str:
        """A voice file for ``voice`` (current, set by name) without flutter and roughness, written once."""
        if voice not in self._steady_files:
            if "+" in voice:
                raise NoSuchVoice(f"a steady voice takes no variant: {voice!r}")
            identifier = self.lib.espeak_GetCurrentVoice().contents.identifier.decode()
            source = next((path for path in (os.path.join(self.data_path, d, identifier) for d in VOICE_FILE_DIRS)
                           if os.path.isfile(path)), None)
            if source is None:
                raise NoSuchVoice(f"espeak-ng's voice file for {voice!r} is not in its data")
            if self._steady_dir is None:
                self._steady_dir = tempfile.TemporaryDirectory(prefix="espeak-steady-")
            path = os.path.join(self._steady_dir.name, f"{len(self._steady_files)}")
            with open(source, encoding="utf-8") as src, open(path, "w", encoding="utf-8") as out:
                out.write(src.read() + STEADY_VOICE_LINES)
            self._steady_files[voice] = path
        return self._steady_files[voice]


_instance: _Espeak | None = None
_init_lock = threading.Lock()


def _espeak() -> _Espeak:
    global _instance
    with _init_lock:
        if _instance is None:
            _instance = _Espeak()
        return _instance


def available() -> bool:
    try:
        _espeak()
        return True
    except (EspeakUnavailable, OSError):
        return False


def phonemize_ipa(text: str, voice: str = "en-us") -> str:
    """IPA phonemes for ``text`` (words separated by spaces), via espeak-ng's rules and dictionary."""
    es = _espeak()
    with es.lock:
        es.set_voice(voice)
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        parts = []
        while ptr.value:
            out = es.lib.espeak_TextToPhonemes(ctypes.byref(ptr), ESPEAK_CHARS_UTF8, ESPEAK_PHONEMES_IPA)
            if out:
                parts.append(out.decode("utf-8", "replace"))
        return " ".join(parts)


def seed(value: int) -> None:
    """Start espeak-ng's random numbers (its voices' flutter and roughness) again from ``value``: after it, the
    same speech said in the same order sounds the same in every process."""
    es = _espeak()
    with es.lock:
        es.lib.espeak_ng_SetRandSeed(value)


def synthesize(text: str, voice: str = "en-us", rate_wpm: int = DEFAULT_RATE_WPM,
               pitch: int = DEFAULT_PITCH, *, steady: bool = False) -> tuple[np.ndarray, int, list[WordEvent]]:
    """Speak ``text``; return float32 mono audio, its sample rate and the word start events.

    ``voice`` may name a variant (``fr+f3``). Rate and pitch are set on every call: the library
    keeps them between calls. ``steady`` speaks in the voice without flutter and roughness, so the
    result does not depend on what the process said before (a variant is then refused).
    """
    es = _espeak()
    with es.lock:
        es.set_voice(voice, steady)
        es.lib.espeak_SetParameter(PARAM_RATE, rate_wpm, 0)
        es.lib.espeak_SetParameter(PARAM_PITCH, pitch, 0)
        es._blocks, es._events = [], []  # noqa: SLF001
        raw = text.encode("utf-8")
        buf = ctypes.create_string_buffer(raw)
        status = es.lib.espeak_Synth(buf, len(raw) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed ({status})")
        blocks, events = es._blocks, es._events  # noqa: SLF001
        es._blocks, es._events = [], []  # noqa: SLF001
    audio = (np.concatenate(blocks) if blocks else np.zeros(0, np.int16)).astype(np.float32) / 32768.0
    words = [WordEvent(pos - 1, length, sample) for kind, pos, length, sample in events if kind == EVENT_WORD]
    return audio, es.sample_rate, words
