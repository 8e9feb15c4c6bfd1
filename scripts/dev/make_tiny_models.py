#!/usr/bin/env python3
"""Write randomly initialised F5-TTS + Vocos checkpoints in the real on-disk format.

Usage: python scripts/dev/make_tiny_models.py [OUT_DIR]   (default: TINY_MODEL_DIR or data/models/tiny)
"""

import sys
from pathlib import Path

from f5_worker.config import get_settings
from f5_worker.tts.tiny_models import ensure_tiny_models


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else get_settings().tiny_models_path
    paths = ensure_tiny_models(root)
    for p in (paths.config_path, paths.ckpt_path, paths.vocab_path, paths.vocoder_dir / "config.yaml",
              paths.vocoder_dir / "pytorch_model.bin"):
        print(p)


if __name__ == "__main__":
    main()
