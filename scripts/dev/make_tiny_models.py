#!/usr/bin/env python3
"""For developers: write randomly initialised F5-TTS + Vocos checkpoints in the real on-disk format, for
tests and offline demos (DEFAULT_MODEL=tiny loads them). The tiny model speaks noise.

Changes: writes the five model files into the directory given (created if missing) and prints their paths;
an existing set of the current version is left as it is.
"""

import argparse
from pathlib import Path

from f5_worker.config import get_settings
from f5_worker.tts.tiny_models import ensure_tiny_models


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", nargs="?", type=Path,
                        help="where to write them (default: TINY_MODEL_DIR, or data/models/tiny)")
    args = parser.parse_args(argv)
    paths = ensure_tiny_models(args.out_dir or get_settings().tiny_models_path)
    for p in (paths.config_path, paths.ckpt_path, paths.vocab_path, paths.vocoder_dir / "config.yaml",
              paths.vocoder_dir / "pytorch_model.bin"):
        print(p)


if __name__ == "__main__":
    main()
