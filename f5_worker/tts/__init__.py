"""F5-TTS itself: its weights found and loaded, references prepared, text chunked, and the sampler that owns the GPU."""
