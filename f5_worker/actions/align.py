"""The ``align`` action: a recording and its transcript in, the timings a synthesis returns out.

For people with human recordings, and for checking the aligner on audio whose
true timings are known.
"""

from __future__ import annotations

from f5_worker import audio, stopping
from f5_worker.alignment.aligner import ALIGN_SAMPLE_RATE, Aligner
from f5_worker.alignment.quality import align_audio
from f5_worker.errors import JobError
from f5_worker.fetch import DownloadLimits
from f5_worker.job import Job
from f5_worker.schema import AlignRequest
from f5_worker.text.languages import guess_language
from f5_worker.timings import quality_field, timing_fields

MAX_ALIGN_AUDIO_SECONDS = 1800.0  # 30 minutes: longer recordings are refused before decoding
# Memory: the recording is decoded, block by block, straight to the aligners' 16 kHz (audio.decode),
# so whatever rate it declares it takes at most 1800 s x 16000 x 4 bytes = 115 MB (docs/api.md).
MIN_ALIGN_AUDIO_SECONDS = 0.1


class AlignAction:
    def __init__(self, aligner: Aligner, downloads: DownloadLimits, *,
                 max_audio_seconds: float = MAX_ALIGN_AUDIO_SECONDS):
        self.aligner = aligner
        self.downloads = downloads
        self.max_audio_seconds = max_audio_seconds

    def __call__(self, request: AlignRequest, job: Job) -> dict:
        data, field = self.downloads.audio(request.audio_url, request.audio_base64)
        decoded = audio.decode(data, field, max_seconds=self.max_audio_seconds, max_rate=ALIGN_SAMPLE_RATE)
        wave, sample_rate = decoded.wave, decoded.sample_rate
        duration = len(wave) / sample_rate
        if duration < MIN_ALIGN_AUDIO_SECONDS:
            raise JobError(field, f"audio is only {duration * 1000:.0f} ms long; nothing to align")
        language = request.language or guess_language(request.text)
        stopping.check("alignment")
        result = align_audio(self.aligner, wave, sample_rate, request.text, language=language)
        out = {"duration": round(duration, 4), "sample_rate": decoded.source_rate, "language": language}
        out.update(timing_fields(result, request, duration))
        out["quality"] = quality_field([(result, duration, 0)])
        out["timing"] = {"align_ms": round(result.align_seconds * 1000, 2)}
        return out
