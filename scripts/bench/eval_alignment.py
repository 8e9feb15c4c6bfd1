#!/usr/bin/env python
"""For developers: measure the aligner's word-start accuracy on speech whose true timings are known.

espeak-ng (libespeak-ng bundled by espeakng-loader) speaks each sentence and
reports a word event with the exact sample where each word starts. Events
can skip words, so they are matched to our tokens by text position, and
tokens without an event are left out of the figures. The aligner runs through
``f5_worker.alignment.quality.align_audio``, the same call the ``align`` action makes.

    uv run python scripts/bench/eval_alignment.py [--aligner sphinx] [--limit N] [--json FILE]

Changes: nothing but the --json report, where told.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from f5_worker.alignment import espeak
from f5_worker.alignment.quality import align_audio
from f5_worker.alignment.selection import load_aligner
from f5_worker.alignment.textnorm import tokenize

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.",
    "We also need a small plastic snake and a big toy frog for the kids.",
    "Doctor Smith arrived at the hospital at 7 in the morning.",
    "In 1999, the company had 250 employees; today it has 4000.",
    "The meeting starts at 10:30 on the 21st of March.",
    "Mr. Johnson and Mrs. Patel flew from London to Tokyo last Tuesday.",
    "Is this the right way to the station? I think so!",
    "Wait... did you hear that noise?",
    "The temperature dropped to 3.5 degrees overnight.",
    "Alice, Bob, and Charlie went to the market together.",
    "He said, \"I will never forget this day.\"",
    "Our team scored 42 points in the first half and 17 in the second.",
    "Elizabeth Warren met Barack Obama in Washington.",
    "The library opens at nine and closes at five.",
    "Could you pass me the salt, please?",
    "Rain, wind, and snow: the mountain saw it all.",
    "Katherine bought 12 apples, 7 oranges, and 3 melons.",
    "The speed of light is about 300000 kilometers per second.",
    "Professor Nguyen teaches physics at the university.",
    "Nobody expected the river to flood so quickly.",
    "The 3rd chapter is the longest one in the book.",
    "Turn left at the second light, then go straight for 2 miles.",
    "My phone number ends in 4 5 6 7.",
    "Paris, Berlin, Madrid, and Rome are European capitals.",
    "The concert was amazing; the crowd sang every song.",
    "Jennifer's dog barked at the mailman again.",
    "We don't know where they're going, but they'll be back soon.",
    "Thomas Edison held more than 1000 patents.",
    "Keep calm and carry on.",
    "Why would anyone leave such a beautiful place?",
    "The recipe calls for 2 cups of flour and 1 egg.",
    "Mount Everest is 8849 meters tall.",
    "Sarah whispered something, and everyone laughed.",
    "The train to Edinburgh leaves from platform 9.",
    "Honestly, I never liked winter very much.",
    "Gabriel Garcia Marquez wrote wonderful novels.",
    "Each student received a certificate and a small gift.",
    "Stop! Don't touch that button.",
    "The price rose by 15 percent in 2021.",
    "Oliver and Sophia are planning a trip to Iceland.",
    "Bright stars filled the clear night sky.",
    "A thousand tiny lights flickered across the valley.",
    "Our flight was delayed by 45 minutes because of fog.",
    "William Shakespeare was born in 1564.",
    "Michelle counted to 20 and then opened her eyes.",
    "Yes, no, maybe: those were the only answers.",
    "The old lighthouse still guides ships home at night.",
    "Listen carefully, because I will only say this once.",
    "Fourteen ducks swam slowly across the pond.",
]

PARAGRAPH = (
    "Long before the first railway crossed the plains, small towns grew wherever water and trade could be found. "
    "Farmers brought grain to the markets each autumn, and merchants from distant cities arrived with cloth, tools, "
    "and news. In 1869, when the tracks finally connected the two coasts, the journey that once took months could be "
    "made in about a week. Some towns flourished almost overnight; others, bypassed by the line, slowly faded away. "
    "Historians still argue about who benefited most, but nobody doubts that the country was changed forever."
)

CORPUS = SENTENCES + [PARAGRAPH]


@dataclass
class Case:
    text: str
    audio: np.ndarray
    sample_rate: int
    truth: dict[int, float]  # token index -> true start (s)


def make_case(text: str) -> Case:
    """Speak ``text`` and take each token's true start from the word event at its first letter."""
    audio, sr, events = espeak.synthesize(text)
    at_position: dict[int, float] = {}
    for ev in events:
        at_position.setdefault(ev.text_position, ev.sample / sr)
    truth = {}
    for i, tok in enumerate(tokenize(text)):
        first = next((p for p in range(tok.char_start, tok.char_end) if text[p].isalnum()), None)
        if tok.spoken and first is not None and first in at_position:
            truth[i] = at_position[first]
    return Case(text, audio, sr, truth)


def evaluate(aligner, cases: list[Case]) -> dict:
    errors: list[float] = []
    signed: list[float] = []
    align_s = cpu_s = audio_s = 0.0
    worst: list[tuple[float, str, str]] = []
    for case in cases:
        t0, c0 = time.perf_counter(), time.thread_time()
        result = align_audio(aligner, case.audio, case.sample_rate, case.text)
        align_s += time.perf_counter() - t0
        cpu_s += time.thread_time() - c0
        audio_s += len(case.audio) / case.sample_rate
        for i, true_start in case.truth.items():
            signed.append(result.words[i].start - true_start)
            err = abs(signed[-1])
            errors.append(err)
            worst.append((err, result.words[i].text, case.text[:40]))
    err = np.array(errors)
    worst.sort(reverse=True)
    return {
        "words": int(len(err)),
        "sentences": len(cases),
        "mean_abs_ms": round(float(err.mean() * 1000), 2) if len(err) else None,
        "median_abs_ms": round(float(np.median(err) * 1000), 2) if len(err) else None,
        "mean_signed_ms": round(float(np.mean(signed) * 1000), 2) if signed else None,
        "within_20ms": round(float((err <= 0.020).mean() * 100), 2) if len(err) else None,
        "within_50ms": round(float((err <= 0.050).mean() * 100), 2) if len(err) else None,
        "align_rtf": round(align_s / audio_s, 4) if audio_s else None,
        # CPU time of the aligning thread: the one-core cost even when other work shares the machine.
        "align_cpu_rtf": round(cpu_s / audio_s, 4) if audio_s else None,
        "audio_seconds": round(audio_s, 2),
        "backend": getattr(aligner, "name", "?"),
        "worst": [{"error_ms": round(e * 1000, 1), "word": w, "sentence": s} for e, w, s in worst[:10]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aligner", default="sphinx", help="auto, ctc, sphinx or estimate (default sphinx)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N sentences (the paragraph is last)")
    parser.add_argument("--json", dest="json_path", help="write the figures to this file")
    parser.add_argument("--threads", type=int, default=1, help="CPU cores to use (default 1, as the target states)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if hasattr(os, "sched_setaffinity") and args.threads == 1:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    corpus = CORPUS[: args.limit] if args.limit else CORPUS
    cases = [make_case(t) for t in corpus]
    aligner = load_aligner(args.aligner)
    align_audio(aligner, cases[0].audio, cases[0].sample_rate, cases[0].text)  # warm up caches
    figures = evaluate(aligner, cases)
    print(f"backend {figures['backend']}: {figures['words']} words in {figures['sentences']} utterances, "
          f"{figures['audio_seconds']} s of audio")
    print(f"mean abs start error {figures['mean_abs_ms']} ms (median {figures['median_abs_ms']} ms)")
    print(f"within 20 ms: {figures['within_20ms']} %   within 50 ms: {figures['within_50ms']} %")
    print(f"align_rtf: {figures['align_rtf']} (wall clock; "
          f"CPU time of the aligning thread: {figures['align_cpu_rtf']})")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
