#!/usr/bin/env python3
"""Summarise a job result JSON (as written with RESULT_DUMP_DIR) and save its audio next to it."""

import argparse
import base64
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("result", type=Path, help="a result file, e.g. data/results/local_test.json")
    path = parser.parse_args(argv).result
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        parser.error(f"cannot read {path}: {exc}")
    if "error" in result:
        print(f"job failed: {result['error']}")
        return 1
    audio = base64.b64decode(result.pop("audio_base64", ""))
    target = Path(path).with_suffix("." + result.get("format", "wav").replace("opus", "ogg"))
    target.write_bytes(audio)
    for key in ("captions",):
        if key in result:
            result[key] = {fmt: f"<{len(text)} chars>" for fmt, text in result[key].items()}
    if "words" in result:
        result["words"] = result["words"][:5] + ([f"... {len(result['words']) - 5} more"] if len(result["words"]) > 5 else [])
    result.pop("chars", None)
    print(json.dumps(result, indent=2))
    print(f"audio: {target} ({len(audio)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
