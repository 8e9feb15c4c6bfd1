"""The RunPod Hub's name for the worker's entry point, which is runpod_handler.py in the repository root.

The image does not run this file: its start command, scripts/boot/start.sh, runs runpod_handler.py. Run from
a checkout, this replaces itself with runpod_handler.py (same process, same options: --help lists them).
Run as a program of its own, runpod_handler.py has the repository root first on Python's path, as when it
is run directly, so ``f5_worker`` is found without this file editing ``sys.path``, and its spawned alignment
processes start it the same way.
"""

import os
import sys
from pathlib import Path

HANDLER = Path(__file__).resolve().parent.parent / "runpod_handler.py"

if __name__ == "__main__":
    os.execv(sys.executable, [sys.executable, str(HANDLER), *sys.argv[1:]])
