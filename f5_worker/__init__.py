"""f5-worker: F5-TTS voice cloning with forced-aligned timings, served as a RunPod worker."""

__version__ = "0.1.0"
