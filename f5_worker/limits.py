"""What a job may ask for: the bounds and vocabularies that the request schema checks and that the modules
acting on a request read too, each written once.

``schema`` validates requests with them; the encoders (audio.py), the caption renderers (captions.py), the
voice store (voices.py), the model registry and the actions read the same values. This module imports
nothing but the error type, so every layer may read it, and ``schema`` stays a leaf that a second front door
can use without loading audio, voice or model code (tests/test_architecture.py).
"""

from __future__ import annotations

import random
import re
from typing import Any

from f5_worker.errors import JobError

OUTPUT_FORMATS = ("wav", "flac", "mp3", "opus", "pcm")  # what audio.encode_audio writes
CAPTION_FORMATS = ("json", "srt", "vtt", "ass", "csv")  # what captions.render_captions writes
MAX_REF_TEXT_CHARS = 1000  # characters of a reference's transcript (a request's, or a stored voice's)
LANGUAGE_TAG = r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*"  # en, fr, pt-BR, zh-Hant-TW: a request's and a model's

# The speaking rates a job may ask for (``speed``), and that a target ``duration`` may imply.
MIN_SPEED, MAX_SPEED = 0.3, 3.0

# A job's ``seed``: any integer torch takes, 0 to 2^63 - 1. The seeds the worker draws itself (for a job
# that gives none, and the quality gate's retries) stay below 2^31: they are returned in the result for the
# client to send again, and every client holds them exactly (JavaScript's numbers stop being exact at
# 2^53, a 32-bit integer column at 2^31).
MAX_SEED = 2**63 - 1
MAX_DRAWN_SEED = 2**31 - 1


def draw_seed(rng: random.Random | Any = random) -> int:
    """A seed the worker picks: from ``rng`` (the quality gate's generator seeded with the job's seed, so a
    seeded job retries with the same seeds every time), else at random."""
    return rng.randint(0, MAX_DRAWN_SEED)


# The built-in voice (f5-tts's own example clip) is named ``default`` wherever a job names a voice: a
# ``[voice:default]`` tag, a segment's ``voice`` and the request's, in any case. No stored voice can take the
# name, so the name always means the one voice.
DEFAULT_VOICE = "default"


def is_default_voice(name: str) -> bool:
    return name.lower() == DEFAULT_VOICE


# A stored voice's name: one safe path segment in the voice store.
MAX_VOICE_NAME_CHARS = 64
_VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_voice_name(name: Any, field: str = "name") -> str:
    """A voice name is a single safe path segment: letters, digits, ``_ . -``, at most 64 chars."""
    if not isinstance(name, str) or not name:
        raise JobError(field, "must be a non-empty string")
    if len(name) > MAX_VOICE_NAME_CHARS:
        raise JobError(field, f"is {len(name)} characters long; the limit is {MAX_VOICE_NAME_CHARS}")
    if "/" in name or "\\" in name or ".." in name:
        raise JobError(field, "must not contain path separators or '..'")
    if not _VOICE_NAME.fullmatch(name):
        raise JobError(field, "may only use letters, digits, '_', '.' and '-', and must start with a letter or digit")
    return name
