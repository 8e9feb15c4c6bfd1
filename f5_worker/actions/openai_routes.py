"""OpenAI's routes as queue jobs (``openai_route``): what RunPod hands a queue worker for
``https://api.runpod.ai/v2/<id>/openai/v1/...`` (docs/http.md, "OpenAI routes on a queue endpoint").

The same mapping and the same refusals as the HTTP server's routes (openai_speech.py); only the answer's
form differs, since a queue job's output is JSON: ``/v1/models`` gives OpenAI's list as it is, and
``/v1/audio/speech`` the audio as base64 with its format and content type (the HTTP route's body and
headers, as fields), delivered as every result is (inline, or a bucket link when too big, delivery.py).
A refusal (an ApiError, or a JobError naming a native field) is answered by the worker's error policy as
OpenAI's error object, with the speech request's field names (openai_speech.refusal).
"""

from __future__ import annotations

import base64

from f5_worker import delivery, schema
from f5_worker.errors import JobError
from f5_worker.job import Job
from f5_worker.logs import echo
from f5_worker.openai_speech import ApiError, model_list, speech_input, timestamp_granularities
from f5_worker.schema import OpenAIRouteRequest
from f5_worker.synthesis.service import SynthesisService

SPEECH_ROUTE = "/v1/audio/speech"
MODELS_ROUTE = "/v1/models"
ROUTES = (SPEECH_ROUTE, MODELS_ROUTE)


class OpenAIRoutesAction:
    def __init__(self, service: SynthesisService):
        self.service = service

    def __call__(self, request: OpenAIRouteRequest, job: Job) -> dict:
        if request.openai_route == MODELS_ROUTE:  # a GET: its input, if any, is not read
            return model_list(self.service.registry.names(), self.service.pool.default)
        if request.openai_route == SPEECH_ROUTE:
            return self.speech(request.openai_input or {}, job)
        raise ApiError(404, f"openai_route: {echo(request.openai_route)} is not served here; this worker serves "
                            f"{' and '.join(ROUTES)}", param="openai_route", code="unknown_route")

    def speech(self, body: dict, job: Job) -> dict:
        """A speech request's answer: its audio as base64, with what the HTTP route says in its headers, and
        the words (and characters) ``timestamp_granularities`` asks for, as the HTTP route's JSON answer."""
        native, openai_voice = speech_input(body)
        if body.get("stream_format") == "sse":
            raise ApiError(400, "stream_format: sse is not available on a queue endpoint yet (a queue job answers "
                                "one JSON output); leave stream_format out, or stream from the worker's HTTP "
                                "server (SERVE=http)", param="stream_format", code="unsupported_value")
        if openai_voice is not None and self._stored(openai_voice):  # a stored voice of that name wins
            native["voice"] = openai_voice
        speech = self.service.speak(schema.parse_job(native), job)
        out = {
            "audio_base64": base64.b64encode(speech.audio).decode("ascii"),
            "format": speech.format,
            "content_type": speech.content_type,
            "sample_rate": speech.sample_rate,
            "duration": round(speech.duration, 4),
            "model": speech.model,
            "voice": native.get("voice", "default"),
        }
        if timestamp_granularities(body):
            out.update({name: speech.fields[name] for name in ("words", "chars") if name in speech.fields})
        return delivery.finish_output(
            out, planned=speech.planned, job_id=job.id, stores=self.service.stores,
            max_inline_bytes=self.service.settings.max_inline_bytes, audio_bytes=speech.audio,
            audio_format=speech.format, audio_content_type=speech.content_type)

    def _stored(self, name: str) -> bool:
        try:
            self.service.voices.info(name)
        except JobError:
            return False
        return True
