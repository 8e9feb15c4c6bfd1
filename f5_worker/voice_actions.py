"""The voice actions a job can ask for: ``upload_voice``, ``list_voices``, ``get_voice``, ``delete_voice``.

Request models register themselves with ``schema`` (so the handler keeps one
dispatch table); ``VoiceActions`` turns a validated request into a result dict
using a ``VoiceStore``.
"""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import Field, model_validator

from f5_worker import audio
from f5_worker.errors import JobError
from f5_worker.fetch import audio_bytes
from f5_worker.schema import _Request, register_action
from f5_worker.voices import VoiceStore, check_voice_name


class _Named(_Request):
    name: str

    @model_validator(mode="after")
    def _safe_name(self):
        check_voice_name(self.name, "name")
        return self


class UploadVoiceRequest(_Named):
    action: Literal["upload_voice"]
    audio_url: str | None = Field(None, min_length=1, max_length=4096)
    audio_base64: str | None = Field(None, min_length=1)
    ref_text: str | None = Field(None, max_length=1000)
    overwrite: bool = False

    @model_validator(mode="after")
    def _one_audio(self):
        if (self.audio_url is None) == (self.audio_base64 is None):
            raise JobError("audio_url", "give exactly one of audio_url or audio_base64")
        return self


class ListVoicesRequest(_Request):
    action: Literal["list_voices"]


class GetVoiceRequest(_Named):
    action: Literal["get_voice"]
    include_audio: bool = False


class DeleteVoiceRequest(_Named):
    action: Literal["delete_voice"]


for _name, _model in (("upload_voice", UploadVoiceRequest), ("list_voices", ListVoicesRequest),
                      ("get_voice", GetVoiceRequest), ("delete_voice", DeleteVoiceRequest)):
    register_action(_name, _model)


class VoiceActions:
    """Handlers for the voice actions; each returns the job output."""

    def __init__(self, store: VoiceStore, *, max_download_bytes: int, download_timeout_s: float):
        self.store = store
        self.max_download_bytes = max_download_bytes
        self.download_timeout_s = download_timeout_s

    def handlers(self) -> dict:
        return {
            "upload_voice": self.upload,
            "list_voices": self.list,
            "get_voice": self.get,
            "delete_voice": self.delete,
        }

    def upload(self, request: UploadVoiceRequest, job_id: str | None = None) -> dict:
        data, field = audio_bytes(request.audio_url, request.audio_base64, url_field="audio_url",
                                  b64_field="audio_base64", max_bytes=self.max_download_bytes,
                                  timeout_s=self.download_timeout_s)
        info = self.store.save(request.name, data, ref_text=request.ref_text, overwrite=request.overwrite,
                               audio_field=field)
        return {"voice": info.public(), "storage": self.store.storage.kind}

    def list(self, request: ListVoicesRequest, job_id: str | None = None) -> dict:
        voices = [v.public() for v in self.store.list()]
        return {"voices": voices, "count": len(voices), "storage": self.store.storage.kind}

    def get(self, request: GetVoiceRequest, job_id: str | None = None) -> dict:
        if not request.include_audio:
            return {"voice": self.store.info(request.name).public()}
        voice = self.store.load(request.name, "name")
        wav = audio.encode_audio(voice.wave, voice.sample_rate, "wav")
        return {
            "voice": voice.info.public(),
            "audio_base64": base64.b64encode(wav).decode("ascii"),
            "content_type": "audio/wav",
        }

    def delete(self, request: DeleteVoiceRequest, job_id: str | None = None) -> dict:
        info = self.store.delete(request.name)
        return {"deleted": info.name, "voice": info.public()}
