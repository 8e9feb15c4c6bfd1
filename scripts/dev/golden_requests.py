#!/usr/bin/env python3
"""For developers: a behaviour-equivalence check. Runs a fixed list of jobs through the real Worker on the
tiny models, with fixed seeds, and writes what each returned as JSON, so that a refactoring can show that
the same requests give the same audio, timings and errors as before it.

Every action is covered: synthesize (plain, each output format, captions, character timings, a target
duration, a speed, a client's clip, a stored voice, another model), scripts (pauses, two stored voices,
segments, short parts joined, a duration spread over parts), streamed jobs (STREAMING=1), align, the voice
actions, list_models, health, and a table of bad inputs. For each result it keeps: every key; the sha256 of
each audio; the words, characters, captions, quality and errors as returned. Wall-clock values (``timing``'s
figures, ``load_seconds``, a voice's ``created`` and ``version``) keep their keys only (``timing``'s as a
sorted list: which stages were timed, not in which order they were summed), and the temporary directory's
path reads ``<tmp>``. A stream's pieces after the first are sized by wall-clock measurements
(tts/chunking.StreamPacer); here they are pinned to ``STREAM_PIECE_S`` so the cut is the same on every run.

Usage:
  golden_requests.py --out before.json                   record
  golden_requests.py --out after.json --compare before.json   record, then list every difference (exit 1)

Changes: writes the file given with --out; the tiny models (unless --models names a folder that has them)
and the voices go to a temporary folder that is deleted at exit.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
STREAM_PIECE_S = 2.5  # a streamed piece after the first holds at most this much speech (pinned pacer)
WALL_CLOCK = {"timing", "load_seconds", "created", "version", "checked_in_s"}  # values vary run to run
AUDIO = {"audio_base64"}

FAST = {"nfe_step": 4, "seed": 7}
PLAIN = "Hello there, this is a test of the worker."
STREAM_TEXT = ("Hello there, my friend. This text goes on for a while, so that it needs more than one piece "
               "to be spoken; and then a few more words.")


def ref_wav_base64() -> tuple[str, str]:
    """f5-tts's own example voice, as a client would send it."""
    from importlib.resources import files

    path = Path(str(files("f5_tts").joinpath("infer/examples/basic/basic_ref_en.wav")))
    return base64.b64encode(path.read_bytes()).decode(), "Some call me nature, others call me mother nature."


def requests_list() -> list[tuple[str, Any]]:
    """The jobs, in order: each one's name and its input. Voices are uploaded before the jobs that speak them."""
    ref, ref_text = ref_wav_base64()
    short_ref = base64.b64encode(base64.b64decode(ref)[:44 + 24000 * 2 * 2]).decode()  # WAV header + ~2 s
    jobs: list[tuple[str, Any]] = [
        ("health", {"action": "health"}),
        ("list_models", {"action": "list_models"}),
        ("list_voices_empty", {"action": "list_voices"}),
        ("upload_anna", {"action": "upload_voice", "name": "anna", "audio_base64": ref, "ref_text": ref_text}),
        ("upload_bob", {"action": "upload_voice", "name": "bob", "audio_base64": ref,
                        "ref_text": ref_text, "language": "en"}),
        ("upload_amelie_fr", {"action": "upload_voice", "name": "amelie", "audio_base64": ref,
                              "ref_text": ref_text, "model": "tiny-fr", "language": "fr"}),
        ("list_voices", {"action": "list_voices"}),
        ("get_voice", {"action": "get_voice", "name": "anna"}),
        ("get_voice_audio", {"action": "get_voice", "name": "bob", "include_audio": True}),
        # synthesize
        ("plain_defaults", {"text": PLAIN, "seed": 3}),
        ("plain_fast", {"text": PLAIN, **FAST}),
        ("no_timings", {"text": PLAIN, **FAST, "word_timings": False, "caption_formats": [], "max_retries": 0}),
        *[(f"format_{fmt}", {"text": PLAIN, **FAST, "output_format": fmt, "max_retries": 0})
          for fmt in ("wav", "flac", "mp3", "opus", "pcm")],
        ("captions_all", {"text": PLAIN + " And a second sentence, which makes the captions longer still.", **FAST,
                          "caption_formats": ["srt", "vtt", "ass", "csv", "json"], "max_chars_per_line": 20,
                          "max_lines": 1, "max_retries": 1}),
        ("char_timings", {"text": "Dr. Smith paid $5.50 on March 3rd, 2024.", **FAST, "char_timings": True}),
        ("duration", {"text": PLAIN, **FAST, "duration": 3.0, "max_retries": 1}),
        ("speed", {"text": PLAIN, **FAST, "speed": 1.5}),
        ("slow_speed", {"text": PLAIN, **FAST, "speed": 0.5, "max_retries": 0}),
        ("not_normalized", {"text": "Call 555-1234 at 10:30 for $20.", **FAST, "normalize": False}),
        ("remove_silence", {"text": PLAIN, **FAST, "remove_silence": True, "max_retries": 0}),
        ("client_clip", {"text": PLAIN, **FAST, "ref_audio_base64": short_ref, "ref_text": "Some call me nature."}),
        ("stored_voice", {"text": PLAIN, **FAST, "voice": "anna"}),
        ("voice_keeps_model", {"text": "Bonjour, comment allez-vous aujourd'hui ?", **FAST, "voice": "amelie"}),
        ("other_model", {"text": "Ça va très bien, merci.", **FAST, "model": "tiny-fr", "max_retries": 1}),
        ("language_given", {"text": PLAIN, **FAST, "language": "en-US", "max_retries": 0}),
        ("seedless_retries_zero_words", {"text": "Yes.", **FAST, "max_retries": 3}),
        ("long_text", {"text": " ".join([STREAM_TEXT] * 4), **FAST, "max_retries": 0}),
        # scripts
        ("script_pauses", {"text": "First part. [pause:0.5s] Second part, after a pause.<break time=\"300ms\"/>"
                                   " And the third.\n\nA new paragraph.", **FAST}),
        ("script_two_voices", {"text": "[voice:anna] Hello, I am Anna. [voice:bob] And I am Bob. [pause:0.2s]"
                                       " [voice:anna] Nice to meet you.", **FAST, "char_timings": True,
                               "caption_formats": ["srt", "json"]}),
        ("script_default_tag", {"text": "[voice:default] Plain voice. [voice:anna] Anna's turn.", **FAST,
                                "max_retries": 0}),
        ("segments", {"segments": [
            {"text": "Welcome to the show.", "voice": "anna"},
            {"text": "Thanks for having me.", "voice": "bob", "speed": 1.2},
            {"text": "Let us begin [pause:0.3s] right now.", "ref_audio_base64": short_ref,
             "ref_text": "Some call me nature."},
            {"text": "Me again."},
        ], **FAST, "char_timings": True, "caption_formats": ["vtt"]}),
        ("segments_own_voice", {"segments": [{"text": "One."}, {"text": "Two."}], "voice": "anna", **FAST}),
        ("short_parts_joined", {"segments": [{"text": "Yes.", "voice": "anna"}, {"text": "No.", "voice": "anna"},
                                             {"text": "Okay.", "voice": "bob"}, {"text": "Sure.", "voice": "bob"}],
                                **FAST, "max_retries": 2}),
        ("script_duration", {"text": "First part. [pause:0.5s] Second part, a little longer than the first.",
                             **FAST, "duration": 5.0}),
        ("script_retries", {"text": "[voice:anna] Some words. [voice:bob] Other words here. [pause:0.1s]"
                                    " [voice:anna] The end.", **FAST, "max_retries": 3}),
        ("script_no_timings", {"text": "One part. [pause:0.2s] Another.", **FAST, "word_timings": False,
                               "caption_formats": [], "max_retries": 0}),
        ("script_zero_pause", {"text": "Joined<break strength=\"none\"/> words here.", **FAST}),
        # align
        ("align", {"action": "align", "text": ref_text, "audio_base64": ref}),
        ("align_chars_captions", {"action": "align", "text": ref_text, "audio_base64": ref, "char_timings": True,
                                  "caption_formats": ["srt", "vtt", "ass", "csv", "json"], "language": "en"}),
        # streamed
        ("stream_plain", {"text": STREAM_TEXT, "stream": True, **FAST, "max_retries": 0, "char_timings": True}),
        ("stream_flac_retries", {"text": STREAM_TEXT, "stream": True, **FAST, "output_format": "flac",
                                 "max_retries": 2}),
        ("stream_numbers", {"text": "So we raised $5 million in March 15, 2024, and then some more of it.",
                            "stream": True, **FAST, "max_retries": 0}),
        ("stream_script", {"text": "[voice:anna] Hello from Anna, who speaks first. [pause:0.4s] [voice:bob] "
                                   "And Bob answers her.", "stream": True, **FAST, "max_retries": 1,
                           "caption_formats": ["srt", "json"]}),
        ("stream_segments", {"segments": [{"text": "Welcome to the show.", "voice": "anna"},
                                          {"text": "Thanks for having me.", "voice": "bob"}],
                             "stream": True, **FAST, "max_retries": 0}),
        ("stream_no_timings", {"text": STREAM_TEXT, "stream": True, **FAST, "word_timings": False,
                               "caption_formats": [], "max_retries": 0, "output_format": "pcm"}),
        ("stream_other_model", {"text": "Bonjour, ça va? Très bien, merci.", "stream": True, **FAST,
                                "model": "tiny-fr", "max_retries": 0}),
        ("stream_one_word", {"text": "Hello.", "stream": True, **FAST}),
        # the error table
        ("err_not_object", "hello"),
        ("err_unknown_action", {"action": "dance"}),
        ("err_empty_text", {"text": "   "}),
        ("err_no_letters", {"text": "?!"}),
        ("err_unknown_field", {"text": "hi", "colour": "red"}),
        ("err_seed_string", {"text": "hi", "seed": "42"}),
        ("err_speed_range", {"text": "hi", "speed": 5}),
        ("err_flag_string", {"text": "hi", "char_timings": "yes"}),
        ("err_duration_and_speed", {"text": "hi", "duration": 3, "speed": 1.2}),
        ("err_duration_too_short", {"text": PLAIN, **FAST, "duration": 0.2}),
        ("err_duration_no_time", {"text": "A [pause:2s] B", **FAST, "duration": 1.0}),
        ("err_duration_stream", {"text": "hi", "duration": 3, "stream": True}),
        ("err_unknown_voice", {"text": "hi", **FAST, "voice": "nobody"}),
        ("err_unknown_voice_tag", {"text": "Hi. [voice:nobody] There.", **FAST}),
        ("err_unknown_segment_voice", {"segments": [{"text": "Hi.", "voice": "nobody"}], **FAST}),
        ("err_tag_in_segment", {"segments": [{"text": "[voice:anna] Hi."}], **FAST}),
        ("err_bad_pause", {"text": "Hi [pause:abc] there.", **FAST}),
        ("err_unknown_model", {"text": "hi", **FAST, "model": "nope"}),
        ("err_two_sources", {"text": "hi", "voice": "anna", "ref_audio_base64": ref}),
        ("err_ref_text_missing", {"text": "hi", "ref_audio_base64": ref}),
        ("err_bad_base64", {"text": "hi", **FAST, "ref_audio_base64": ref[:5000] + "!", "ref_text": "x"}),
        ("err_not_audio", {"text": "hi", **FAST, "ref_audio_base64": base64.b64encode(b"not audio" * 100).decode(),
                           "ref_text": "x"}),
        ("err_bucket_missing", {"text": "hi", **FAST, "output": "bucket"}),
        ("err_bucket_missing_stream", {"text": "hi", **FAST, "output": "bucket", "stream": True}),
        ("err_too_many_parts", {"text": "a[pause:0s]" * 300, **FAST}),
        ("err_align_no_audio", {"action": "align", "text": "hi"}),
        ("err_align_short", {"action": "align", "text": "hi",
                             "audio_base64": base64.b64encode(base64.b64decode(ref)[:44 + 400]).decode()}),
        ("err_get_missing", {"action": "get_voice", "name": "nobody"}),
        ("err_bad_voice_name", {"action": "upload_voice", "name": "../x", "audio_base64": ref, "ref_text": "x"}),
        ("err_upload_exists", {"action": "upload_voice", "name": "anna", "audio_base64": ref, "ref_text": ref_text}),
        ("err_upload_unknown_model", {"action": "upload_voice", "name": "zed", "audio_base64": ref,
                                      "ref_text": ref_text, "model": "nope"}),
        ("err_bad_language", {"text": "hi", "language": "english!"}),
        # the voice actions, last: deleting
        ("delete_voice", {"action": "delete_voice", "name": "bob"}),
        ("err_deleted_voice", {"text": "hi", **FAST, "voice": "bob"}),
        ("list_voices_after", {"action": "list_voices"}),
    ]
    return jobs


STREAMING_OFF = [("err_stream_off", {"text": "hi", **FAST, "stream": True})]  # on a worker without STREAMING


def audio_hash(b64: str, fmt: str | None) -> str:
    """The sha256 of the audio's bytes; of an Ogg Opus file's decoded samples, as its stream serial number is
    drawn at random each time one is written."""
    data = base64.b64decode(b64)
    if fmt != "opus":
        return "sha256:" + hashlib.sha256(data).hexdigest()
    import io

    import soundfile as sf

    return "sha256 of the samples:" + hashlib.sha256(sf.read(io.BytesIO(data), dtype="float32")[0].tobytes()).hexdigest()


def summarised(value: Any, tmp: str, key: str | None = None, fmt: str | None = None) -> Any:
    """A result as compared: audio as its sha256, wall-clock values as their keys, the temporary path as <tmp>."""
    if key in AUDIO and isinstance(value, str):
        return audio_hash(value, fmt)
    if key in WALL_CLOCK:
        return sorted(value) if isinstance(value, dict) else "<wall-clock>"
    if isinstance(value, dict):
        return {k: summarised(v, tmp, k, value.get("format")) for k, v in value.items()}
    if isinstance(value, list):
        return [summarised(v, tmp) for v in value]
    if isinstance(value, str):
        return value.replace(tmp, "<tmp>")
    return value


def record(result: Any, tmp: str) -> dict:
    items = result if isinstance(result, list) else [result]
    return {"keys": [sorted(item) for item in items], "result": summarised(result, tmp)}


def run(models_dir: Path | None, tmp: str) -> dict:
    models = models_dir or Path(tmp) / "models"
    from f5_worker.tts.tiny_models import ensure_tiny_models, tiny_fr_model_files

    ensure_tiny_models(models)
    fr = tiny_fr_model_files(models)
    entry = {"name": "tiny-fr", "architecture": str(fr.config_path), "checkpoint": str(fr.ckpt_path),
             "vocab": str(fr.vocab_path), "vocoder": str(fr.vocoder_dir), "languages": ["fr"], "license": "none"}
    volume = Path(tmp) / "volume"
    volume.mkdir()
    for name in [n for n in os.environ if n.startswith(("BUCKET_", "RUNPOD_"))]:
        del os.environ[name]
    os.environ.update(DEFAULT_MODEL="tiny", TINY_MODEL_DIR=str(models), NETWORK_VOLUME_PATH=str(volume),
                      HF_HUB_OFFLINE="1", HF_HOME=str(Path(tmp) / "hf"), STREAMING="1", MODELS=json.dumps([entry]),
                      DEVICE="cpu", ALIGNER="auto", MAX_BATCH_JOBS="1", CAPTION_SPEAKER_PREFIX="1")

    import dataclasses

    from f5_worker.tts.chunking import StreamPacer
    from f5_worker.worker import Worker

    StreamPacer.next_seconds = lambda self, now, ref_seconds: min(self.max_seconds, STREAM_PIECE_S)
    worker = Worker.from_env()
    out: dict = {}
    for n, (name, job) in enumerate(requests_list()):
        out[name] = record(worker.handle(job, job_id=f"golden-{n}"), tmp)
        print(f"{name}: {'error: ' + out[name]['result']['error'] if 'error' in out[name]['keys'][-1] else 'ok'}",
              file=sys.stderr)
    worker.settings = dataclasses.replace(worker.settings, streaming=False)
    for name, job in STREAMING_OFF:
        out[name] = record(worker.handle(job, job_id=name), tmp)
    return out


def differences(before: Any, after: Any, where: str = "") -> list[str]:
    if type(before) is not type(after):
        return [f"{where}: {before!r:.200} -> {after!r:.200}"]
    if isinstance(before, dict):
        found = [f"{where}.{k}: only before" for k in before.keys() - after.keys()]
        found += [f"{where}.{k}: only after" for k in after.keys() - before.keys()]
        if list(before) != list(after) and not found:
            found.append(f"{where}: keys in another order")
        for k in before.keys() & after.keys():
            found += differences(before[k], after[k], f"{where}.{k}")
        return found
    if isinstance(before, list):
        if len(before) != len(after):
            return [f"{where}: {len(before)} items -> {len(after)}"]
        return [d for i, (b, a) in enumerate(zip(before, after)) for d in differences(b, a, f"{where}[{i}]")]
    return [] if before == after else [f"{where}: {before!r:.200} -> {after!r:.200}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where to write the results (JSON)")
    parser.add_argument("--compare", type=Path, help="a file written before: list every difference from it")
    parser.add_argument("--models", type=Path, help="a folder for the tiny models, kept between runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(REPO))
    tmp = tempfile.mkdtemp(prefix="golden-")
    try:
        results = run(args.models, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False, sort_keys=False) + "\n")
    print(f"{len(results)} jobs written to {args.out}")
    if args.compare is None:
        return 0
    found = differences(json.loads(args.compare.read_text()), json.loads(args.out.read_text()))
    for line in found:
        print(line)
    print(f"{len(found)} difference(s) from {args.compare}" if found else f"identical to {args.compare}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
