"""The RunPod Hub's name for the worker's entry point, which is runpod_handler.py in the repository root.

The image does not run this file: its start command, scripts/boot/start.sh, runs runpod_handler.py. Run from
a checkout, this runs runpod_handler.py as it is, with the same options (--help lists them).
"""

import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    runpy.run_path(str(ROOT / "runpod_handler.py"), run_name="__main__")
