"""OpenAI's routes as queue jobs (``openai_route``): what RunPod hands a queue worker for
``https://api.runpod.ai/v2/<id>/openai/v1/...`` (docs/http.md, "OpenAI routes on a queue endpoint").

The same mapping and the same refusals as the HTTP server's routes (openai_speech.py); only the answer's
form differs, since a queue job's output is JSON: ``/v1/models`` gives OpenAI's list as it is, and
``/v1/audio/speech`` the audio as base64 with its format and content type (the HTTP route's body and
headers, as fields), delivered as every result is (inline, or a bucket link when too big, delivery.py).
A refusal (an ApiError, or a JobError naming a native field) is answered by the worker's error policy as
OpenAI's error object, with the speech request's field names (openai_speech.refusal).

``stream_format: "sse"`` on a worker that streams (STREAMING=1): OpenAI's speech events, the HTTP route's
own (speech_stream.speech_body), each yielded as one item of text, ``data: {...}\n\n``, as RunPod's
worker-vllm yields its streamed chat completions for RunPod's proxy to pass on as an event stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

from f5_worker import delivery, schema
from f5_worker.job import Job
from f5_worker.logs import echo
from f5_worker.openai_speech import ApiError, choose_voice, model_list, speech_input, timestamp_granularities
from f5_worker.schema import OpenAIRouteRequest
from f5_worker.speech_stream import speech_body, sse
from f5_worker.synthesis.service import SynthesisService

SPEECH_ROUTE = "/v1/audio/speech"
MODELS_ROUTE = "/v1/models"
ROUTES = (SPEECH_ROUTE, MODELS_ROUTE)


def kept_result_full(limit: int) -> ApiError:
    """RunPod keeps every streamed item in the job's result, and a result over its limit (10 MB) is refused
    with the job never completing; text items cannot be kept without their audio as native pieces are
    (delivery.KeptStream). So a stream stops, saying why, once its events pass MAX_INLINE_BYTES."""
    return ApiError(400, f"input: the speech streamed so far fills the {limit / 2**20:.1f} MB RunPod keeps of a "
                         "job's result, so the stream ends here; ask for mp3 or opus (about a fifth of the size), "
                         "a shorter input, or use a load-balancing endpoint (SERVE=http), which keeps nothing",
                    param="input", code="stream_too_long")


class OpenAIRoutesAction:
    def __init__(self, service: SynthesisService, items: Callable[..., Iterator[dict | str]],
                 failure: Callable[[Exception, str | None], dict]):
        """``items``: the worker's parse, dispatch and error policy (Worker.items), which a streamed speech's
        synthesize job runs through, as on the HTTP route; ``failure``: the worker's failure policy
        (Worker.failure), for a failure of the events' own making."""
        self.service, self.items, self.failure = service, items, failure

    def __call__(self, request: OpenAIRouteRequest, job: Job) -> dict | Iterator[str]:
        if request.openai_route == MODELS_ROUTE:  # a GET: its input, if any, is not read
            return model_list(self.service.registry.names(), self.service.pool.default)
        if request.openai_route == SPEECH_ROUTE:
            return self.speech(request.openai_input or {}, job)
        raise ApiError(404, f"openai_route: {echo(request.openai_route)} is not served here; this worker serves "
                            f"{' and '.join(ROUTES)}", param="openai_route", code="unknown_route")

    def speech(self, body: dict, job: Job) -> dict | Iterator[str]:
        """A speech request's answer: its audio as base64, with what the HTTP route says in its headers, and
        the words (and characters) ``timestamp_granularities`` asks for, as the HTTP route's JSON answer; with
        ``stream_format: "sse"``, OpenAI's speech events as text."""
        native, openai_voice = speech_input(body)
        if body.get("stream_format") == "sse":
            job.require_streaming("stream_format")  # refused here, before any work, not in the first item
        voice = choose_voice(self.service.voices, native, openai_voice)
        if body.get("stream_format") == "sse":
            return self._events(native, timestamp_granularities(body), job)
        speech = self.service.speak(schema.parse_job(native), job)
        out = {**speech.audio_fields(), "model": speech.model, "voice": voice}
        if timestamp_granularities(body):
            out.update(speech.timed_words())
        return delivery.finish_output(
            out, planned=speech.planned, job_id=job.id, stores=self.service.stores,
            max_inline_bytes=self.service.settings.max_inline_bytes, audio_bytes=speech.audio,
            audio_format=speech.format, audio_content_type=speech.content_type)

    def _events(self, native: dict, granularities: tuple[str, ...], job: Job) -> Iterator[str]:
        """The events, each its own item (never over RunPod's 1 MB per item: speech_stream.MAX_DELTA_BYTES);
        a job refused before its first piece raises its ApiError, answered as every refusal is."""
        body = speech_body(lambda streamed: self.items(streamed, job.id, streams=True), native, True,
                           granularities, lambda model: self.service.pool.engine(model).models.hop_length,
                           lambda failed: self.failure(failed, job.id))
        kept, limit = 2, self.service.settings.max_inline_bytes  # the kept result: a JSON list of the events
        for event in body:
            if not event:
                continue
            text = event.decode("ascii")  # JSON as json.dumps writes it: ASCII only
            kept += len(json.dumps(text)) + 2
            if kept > limit:
                body.close()  # the job's work stops here
                yield sse({"type": "error", **kept_result_full(limit).openai_body()}).decode("ascii")
                return
            yield text
