#!/usr/bin/env python3
"""For developers: summarise a job's result, as written with RESULT_DUMP_DIR (`make run` does), and save
its audio and captions as files next to it.

Prints where the audio and the captions are, the first words with their timings, the quality figures and
the time taken. A job that failed prints its error and exits with status 1.

Changes: writes <result>.<audio format> and one <result>.<caption format> file per caption format, beside
the result file (replacing earlier ones); nothing for a failed job or bucket delivery (links are printed).
"""

import argparse
import base64
import json
import sys
from pathlib import Path

SHOWN_WORDS = 8
TINY_MODEL_NOTE = (
    "note: the tiny model has random weights and speaks noise, not the text. An alignment score near 0,\n"
    "      every word flagged, estimated timings and retries are expected with it. For real speech run\n"
    "      DEFAULT_MODEL=F5TTS_v1_Base make run (downloads about 1.4 GB of weights on first use)."
)


def audio_suffix(fmt: str) -> str:
    return {"opus": "ogg", "pcm": "raw"}.get(fmt, fmt)


def save_files(path: Path, result: dict) -> list[str]:
    """The audio and caption files written beside ``path``, as lines of the summary."""
    lines = []
    if result.get("audio_base64"):
        audio = base64.b64decode(result["audio_base64"])
        target = path.with_suffix("." + audio_suffix(result.get("format", "wav")))
        target.write_bytes(audio)
        lines.append(f"audio:     {target} ({len(audio):,} bytes, {result.get('duration', 0):.2f} s, "
                     f"{result.get('format', 'wav')}, {result.get('sample_rate', '?')} Hz)")
    elif result.get("audio_url"):
        lines.append(f"audio:     {result['audio_url']} (a link; download it before it expires)")
    captions = []
    for fmt, text in (result.get("captions") or {}).items():
        target = path.with_suffix(f".{fmt}")
        target.write_text(text, encoding="utf-8")
        captions.append(str(target))
    captions += [f"{fmt}: {url}" for fmt, url in (result.get("caption_urls") or {}).items()]
    lines.append("captions:  " + (", ".join(captions) if captions else "none (ask with caption_formats)"))
    return lines


def summary(path: Path, result: dict) -> str:
    lines = save_files(path, result)
    if "model" in result:
        lines.append(f"model:     {result['model']}, seed {result.get('seed')}, {result.get('chunks', 1)} chunk(s)")
    words = result.get("words") or []
    if words:
        how = "estimated from the text" if result.get("timings_estimated") else f"aligned by {result.get('aligner')}"
        lines.append(f"words:     {len(words)}, timings {how}")
        for w in words[:SHOWN_WORDS]:
            lines.append(f"           {w['start']:7.3f} {w['end']:7.3f}  {w['word']}")
        if len(words) > SHOWN_WORDS:
            lines.append(f"           ... {len(words) - SHOWN_WORDS} more in the captions and the result file")
    quality = result.get("quality")
    if quality:
        lines.append(f"quality:   alignment score {quality.get('alignment_score', 0):.2f}, "
                     f"{len(quality.get('flagged_words', []))} word(s) flagged, {quality.get('retries', 0)} retries")
    timing = result.get("timing") or {}
    if "total_ms" in timing:
        rtf = f", real-time factor {timing['rtf']:.2f}" if "rtf" in timing else ""
        lines.append(f"time:      {timing['total_ms'] / 1000:.2f} s{rtf}")
    for warning in result.get("warnings") or []:
        lines.append(f"warning:   {warning}")
    lines.append(f"result:    {path} (the whole response)")
    if result.get("model") == "tiny":
        lines.append(TINY_MODEL_NOTE)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result", type=Path, help="a result file, e.g. data/results/local_test.json")
    path = parser.parse_args(argv).result
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        parser.error(f"cannot read {path}: {exc}")
    if not isinstance(result, dict):
        parser.error(f"{path} holds no job result (a JSON object)")
    if "error" in result:
        print(f"job failed: {result['error']}")
        return 1
    print(summary(path, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
