#!/usr/bin/env python3
"""For developers: a soak of the worker, to show whether its memory levels off under a long mix of jobs.

Loads the worker once, as the entry point does (Worker.from_env), on the tiny random models (a second tiny
model, French, registered through MODELS), with a temporary volume for stored voices. Then runs jobs one
after another from a fixed rotation of kinds:

  synth     a plain synthesize job with an inline reference (a new clip every job: the reference cache
            fills), in each output format and caption format in turn, with character timings
  voice     a synthesize job with a stored voice
  script    a two-voice script with a pause
  stream    a streamed synthesize job, every item read
  model     a synthesize job on the second model
  language  a synthesize job in German, Spanish or Italian (numbers read out, the dtw aligner)
  upload    upload_voice of a new name, get_voice, then delete_voice (a new voice every time)
  align     align a new recording to its text
  misc      list_voices, list_models and health

(--concurrency of them at a time, through the streaming handler's path, as a STREAMING=1 endpoint serves
every job) and records the process's resident memory (VmRSS, after each job) every --every jobs. The report says
where it levelled off (the mean of the --settle window after the first --warmup jobs), where it ended
(the mean of the last window) and the growth between them. `--kinds upload,align` runs a subset, to find
which kind of job grows.

Changes: writes the --json report; the tiny models go to TINY_MODEL_DIR (else data/models/tiny) on first
use; stored voices and uploads go to a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

KINDS = ("synth", "voice", "script", "stream", "model", "language", "upload", "align", "misc")
REF_WAV = "infer/examples/basic/basic_ref_en.wav"
REF_TEXT = "Some call me nature, others call me mother nature."
TEXTS = ("The rivers carve the valleys, and the wind shapes the stones.",
         "Every morning the light returns, and every evening it leaves again.",
         "Nothing here is in a hurry, yet everything arrives in time.")
LANGUAGE_TEXTS = (("de", "Am 3. Mai kamen 25 Gäste um 14 Uhr."), ("es", "El 3 de mayo llegaron 25 invitados."),
                  ("it", "Il 3 maggio sono arrivati 25 ospiti."))
OUTPUT_FORMATS = ("wav", "mp3", "opus", "flac", "pcm")
CAPTION_FORMATS = (["srt"], ["vtt", "ass"], ["json", "csv"], [])
FAST = {"nfe_step": 4, "max_retries": 0}
WINDOW_JOBS = 100  # the windows the start and end levels are averaged over (jobs)


def vm_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def clip_base64(n: int) -> str:
    """The reference clip, changed by a few samples per job so that every clip is a new one to the caches."""
    import numpy as np
    import soundfile as sf

    wave, sr = sf.read(str(files("f5_tts").joinpath(REF_WAV)), dtype="float32")
    wave = wave.copy()
    wave[: 8] += np.float32(1e-4 * ((n % 997) + 1))
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV")
    return base64.b64encode(buf.getvalue()).decode()


def jobs_for(kind: str, n: int) -> list[dict]:
    text = TEXTS[n % len(TEXTS)]
    seed = {"seed": n}
    if kind == "synth":
        return [{"text": text, "ref_audio_base64": clip_base64(n), "ref_text": REF_TEXT, "char_timings": True,
                 "output_format": OUTPUT_FORMATS[n % len(OUTPUT_FORMATS)],
                 "caption_formats": CAPTION_FORMATS[n % len(CAPTION_FORMATS)], **FAST, **seed}]
    if kind == "voice":
        return [{"text": text, "voice": "soak-a", **FAST, **seed}]
    if kind == "script":
        return [{"text": f"[voice:soak-a] {text} [pause:0.5s] [voice:soak-b] {TEXTS[0]}", **FAST, **seed}]
    if kind == "stream":
        return [{"text": " ".join(TEXTS), "stream": True, **FAST, **seed}]
    if kind == "model":
        return [{"text": "Bonjour, comment allez-vous aujourd'hui ?", "model": "tiny-fr", "language": "fr",
                 **FAST, **seed}]
    if kind == "language":
        language, said = LANGUAGE_TEXTS[n % len(LANGUAGE_TEXTS)]
        return [{"text": said, "language": language, **FAST, **seed}]
    if kind == "upload":
        name = f"soak-up-{n}"
        return [{"action": "upload_voice", "name": name, "audio_base64": clip_base64(n), "ref_text": REF_TEXT},
                {"action": "get_voice", "name": name, "include_audio": True},
                {"action": "delete_voice", "name": name}]
    if kind == "align":
        return [{"action": "align", "audio_base64": clip_base64(n), "text": REF_TEXT}]
    if kind == "misc":
        return [{"action": "list_voices"}, {"action": "list_models"}, {"action": "health"}]
    raise ValueError(kind)


async def soak(worker, kinds: list[str], jobs: int, concurrency: int, every: int):
    """Run the jobs, at most ``concurrency`` at a time, through the streaming handler's path
    (``stream_async``, as STREAMING=1 serves every job), recording the memory every ``every`` jobs."""
    samples: list[tuple[int, float]] = [(0, round(vm_rss_mb(), 1))]
    counts = dict.fromkeys(kinds, 0)
    errors: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    done = 0
    started = time.monotonic()

    async def one(n: int) -> None:
        nonlocal done
        kind = kinds[n % len(kinds)]
        async with gate:
            for job in jobs_for(kind, n):
                items = [item async for item in worker.stream_async(job, job_id=f"soak-{n}")]
                if "error" in items[-1]:
                    errors.append(f"{n} {kind}: {items[-1]['error']}")
        counts[kind] += 1
        done += 1
        if done % every == 0:
            samples.append((done, round(vm_rss_mb(), 1)))
            print(f"{done:6d} jobs  {samples[-1][1]:8.1f} MB  {time.monotonic() - started:7.0f} s", flush=True)

    await asyncio.gather(*(one(n) for n in range(1, jobs + 1)))
    return samples, counts, errors, time.monotonic() - started


def level(samples: list[tuple[int, float]], first: int, last: int) -> float | None:
    inside = [rss for job, rss in samples if first <= job < last]
    return round(sum(inside) / len(inside), 1) if inside else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000, help="jobs to run (default 1000; a kind's steps count as one)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, from {', '.join(KINDS)}")
    parser.add_argument("--concurrency", type=int, default=1, help="jobs at a time (default 1)")
    parser.add_argument("--every", type=int, default=10, help="record the memory every N jobs (default 10)")
    parser.add_argument("--warmup", type=int, default=200, help="jobs before the level is taken (default 200)")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")

    with tempfile.TemporaryDirectory(prefix="f5-soak-") as tmp:
        os.environ.setdefault("DEFAULT_MODEL", "tiny")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ["NETWORK_VOLUME_PATH"] = str(Path(tmp) / "volume")
        os.environ["STREAMING"] = "1"
        (Path(tmp) / "volume").mkdir()
        from f5_worker.config import get_settings
        from f5_worker.tts.tiny_models import ensure_tiny_models, tiny_fr_model_files

        tiny_dir = get_settings().tiny_models_path
        ensure_tiny_models(tiny_dir)
        fr = tiny_fr_model_files(tiny_dir)
        os.environ["MODELS"] = json.dumps([{
            "name": "tiny-fr", "architecture": str(fr.config_path), "checkpoint": str(fr.ckpt_path),
            "vocab": str(fr.vocab_path), "vocoder": str(fr.vocoder_dir), "languages": ["fr"], "license": "none"}])
        from f5_worker.worker import Worker

        worker = Worker.from_env()
        for name in ("soak-a", "soak-b"):
            result = worker.handle({"action": "upload_voice", "name": name, "audio_base64": clip_base64(0),
                                    "ref_text": REF_TEXT})
            if "error" in result:
                raise SystemExit(f"cannot store the soak's voices: {result['error']}")

        samples, counts, errors, seconds = asyncio.run(soak(worker, kinds, args.jobs, args.concurrency, args.every))

    window = min(WINDOW_JOBS, max(args.every, args.jobs // 5))
    settled = level(samples, args.warmup, args.warmup + window)
    final = level(samples, args.jobs - window + 1, args.jobs + 1)
    report = {"jobs": args.jobs, "kinds": counts, "errors": len(errors), "first_errors": errors[:5],
              "start_mb": samples[0][1], "settled_mb": settled, "final_mb": final,
              "growth_after_settling_mb": None if settled is None or final is None else round(final - settled, 1),
              "peak_mb": max(rss for _, rss in samples), "concurrency": args.concurrency,
              "seconds": round(seconds, 1),
              "samples": samples}
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
