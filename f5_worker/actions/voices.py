"""The voice actions: ``upload_voice``, ``list_voices``, ``get_voice``, ``delete_voice``.

``VoiceActions`` turns a validated request (schema.py) into a result dict using
a ``VoiceStore``, which owns the stored voices (voices.py).
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from f5_worker import audio
from f5_worker.fetch import DownloadLimits
from f5_worker.job import Job
from f5_worker.schema import DeleteVoiceRequest, GetVoiceRequest, ListVoicesRequest, UploadVoiceRequest
from f5_worker.voices import VoiceStore


class VoiceActions:
    """Handlers for the voice actions; each returns the job output."""

    def __init__(self, store: VoiceStore, downloads: DownloadLimits, check_model: Callable[[str], object]):
        """``check_model(name)`` raises JobError("model", ...) for a model this worker does not have."""
        self.store = store
        self.downloads = downloads
        self.check_model = check_model

    def upload(self, request: UploadVoiceRequest, job: Job) -> dict:
        if request.model is not None:
            self.check_model(request.model)  # before the download: a voice for a model nobody serves is a typo
        data, field = self.downloads.audio(request.audio_url, request.audio_base64)
        info = self.store.save(request.name, data, ref_text=request.ref_text, overwrite=request.overwrite,
                               audio_field=field, model=request.model, language=request.language)
        return {"voice": info.public(), "storage": self.store.storage.kind}

    def list(self, request: ListVoicesRequest, job: Job) -> dict:
        voices = [v.public() for v in self.store.list()]
        return {"voices": voices, "count": len(voices), "storage": self.store.storage.kind}

    def get(self, request: GetVoiceRequest, job: Job) -> dict:
        if not request.include_audio:
            return {"voice": self.store.info(request.name).public()}
        voice = self.store.load(request.name, "name")
        wav = audio.encode_audio(voice.wave, voice.sample_rate, "wav")
        return {
            "voice": voice.info.public(),
            "audio_base64": base64.b64encode(wav).decode("ascii"),
            "content_type": "audio/wav",
        }

    def delete(self, request: DeleteVoiceRequest, job: Job) -> dict:
        info = self.store.delete(request.name)  # None: its metadata was damaged, and it is gone all the same
        return {"deleted": request.name, "voice": info.public() if info is not None else None}
