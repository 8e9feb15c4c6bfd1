"""Synthesis as one service: a synthesize request in, its result (or a streamed job's items) out.

Every front door calls it the same way, with the parsed request and the job: RunPod's queue through the
``synthesize`` action (actions/synthesize.py), and any other that speaks to it directly. It owns what a
synthesize job needs decided before anything is sampled: the script (synthesis/script.py, read once per
job), the model (the job's, else its voices', else the default, through the registry and the pool of loaded
models), the language, and each voice's reference; then the unstreamed path (unstreamed.py) or the streamed
one (streaming.py) speaks it. Nothing in it knows RunPod: a result is a plain dict, a stream plain items.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from f5_worker import audio, delivery
from f5_worker.alignment.aligner import Aligner
from f5_worker.config import Settings
from f5_worker.errors import JobError
from f5_worker.fetch import DownloadLimits
from f5_worker.job import Job
from f5_worker.limits import draw_seed
from f5_worker.schema import ReferenceAudio, SynthesizeRequest
from f5_worker.storage.stores import Stores
from f5_worker.synthesis import streaming, unstreamed
from f5_worker.synthesis.prepared import PreparedJob
from f5_worker.synthesis.script import ResolvedScript, VoiceSource, resolve_script, tag_voice_error
from f5_worker.synthesis.unstreamed import Speech
from f5_worker.text.languages import guess_language
from f5_worker.text.markup import PauseRules
from f5_worker.tts.model_pool import ModelPool
from f5_worker.tts.reference import PreparedReference, ReferencePreparer, prepare_reference
from f5_worker.tts.registry import ModelRegistry
from f5_worker.tts.sampler import SynthesisEngine, SynthesisParams
from f5_worker.voices import VoiceInfo, VoiceStore


class SynthesisService:
    """Speaks synthesize requests on the worker's models, aligner, voices and storage, for its whole life."""

    def __init__(self, settings: Settings, registry: ModelRegistry, pool: ModelPool, aligner: Aligner,
                 voices: VoiceStore, stores: Stores, downloads: DownloadLimits, references: ReferencePreparer):
        """``references``: clips sent with jobs, prepared once and shared by every model."""
        self.settings = settings
        self.registry = registry
        self.pool = pool
        self.aligner = aligner
        self.voices = voices
        self.stores = stores
        self.downloads = downloads
        self.references = references
        self.pause_rules = PauseRules.of(settings)

    def speak(self, request: SynthesizeRequest, job: Job) -> Speech:
        """The job's encoded audio and every other field of its result, not yet delivered: for a front door
        that sends the audio itself (``synthesize`` gives the native result)."""
        resolved, engine = self.resolve(request)
        return unstreamed.speak(self.prepare(request, job, resolved, engine, time.perf_counter()))

    def synthesize(self, request: SynthesizeRequest, job: Job) -> dict:
        """The job's result: the audio (inline as base64, or a link in the bucket), its timings, captions and
        quality, as docs/api.md describes them."""
        speech = self.speak(request, job)
        out = {
            **speech.audio_fields(),
            "seed": speech.seed,
            "chunks": speech.chunks,
            "model": speech.model,
            "language": speech.language,
            **speech.fields,
            "timing": speech.timing,
            "warnings": speech.warnings,
        }
        return delivery.finish_output(
            out, planned=speech.planned, job_id=job.id, stores=self.stores,
            max_inline_bytes=self.settings.max_inline_bytes, audio_bytes=speech.audio, audio_format=speech.format,
            audio_content_type=speech.content_type,
        )

    def stream(self, request: SynthesizeRequest, job: Job) -> Iterator[dict]:
        """A streamed job's items (streaming.py), resolved and checked as the first is asked for."""
        resolved, engine = self.resolve(request)
        started = time.perf_counter()
        if request.output == "bucket":  # refused before any work when there is no bucket
            delivery.plan_output("bucket", estimated_bytes=0, stores=self.stores,
                                 max_inline_bytes=self.settings.max_inline_bytes)
        yield from streaming.stream(self.prepare(request, job, resolved, engine, started))

    def resolve(self, request: SynthesizeRequest) -> tuple[ResolvedScript, SynthesisEngine]:
        """The job's script resolved (script.resolve_script: parsed, and its voices' metadata read, once), and
        the engine of the model it names: the job's ``model``, else the model its voices keep, else the default
        (loaded here when it is not yet)."""
        if request.model is not None:
            self.registry.entry(request.model)  # a name this worker lacks is refused before any voice is read
        resolved = resolve_script(request, self.pause_rules, self.settings.max_segments, self.voices,
                                  self.registry.names(), self.settings.max_script_parts)
        return resolved, self.pool.engine(resolved.model)

    def prepare(self, request: SynthesizeRequest, job: Job, resolved: ResolvedScript, engine: SynthesisEngine,
                started: float) -> PreparedJob:
        """The resolved job ready to sample: its language, each part's reference (each voice loaded once, from
        the metadata the job has read), and its sampling parameters with its seed (drawn where it gives none)."""
        audio.check_encodable(request.output_format, engine.models.sample_rate, engine.models.name)
        language = self.language_for(resolved, engine.models.name)
        t0 = time.perf_counter()
        spoken = resolved.with_references(self._references(request, resolved))
        reference_ms = (time.perf_counter() - t0) * 1000
        seed = request.seed if request.seed is not None else draw_seed()
        params = SynthesisParams(
            nfe_step=request.nfe_step, cfg_strength=request.cfg_strength,
            sway_sampling_coef=request.sway_sampling_coef, speed=request.speed,
            cross_fade_duration=request.cross_fade_duration, remove_silence=request.remove_silence, seed=seed,
            job_started=started,  # the sampler serves older jobs' work first (tts/sampler.py)
        )
        return PreparedJob(request, job, engine, language, spoken.items, spoken.parts, params, started,
                           {"reference_ms": reference_ms}, self.aligner, self.stores, self.settings)

    def _references(self, request: SynthesizeRequest, resolved: ResolvedScript
                    ) -> dict[VoiceSource, PreparedReference]:
        """The prepared reference of each voice the parts speak, in the order they speak."""
        loaded: dict[VoiceSource, PreparedReference] = {}
        for part in resolved.parts:
            if part.source not in loaded:
                try:
                    loaded[part.source] = self.reference_for(part.source, request.target_rms, part.source.prefix,
                                                             resolved.voice_infos.get(part.source.voice))
                except JobError as exc:
                    if part.source.tag_at is None:
                        raise
                    raise tag_voice_error(exc, part.source) from None
        return loaded

    def language_for(self, resolved: ResolvedScript, model: str) -> str:
        """The language that chooses the normalizer and the aligner: as the job says, else the one its voices
        keep (``resolved.language``), else guessed from the words to speak (the parts: tags such as
        ``[voice:anna]`` are no Latin text). The guess only tells writing systems apart (Latin letters read
        as English), so where the model (its registry entry) speaks one language and it is not the guess, the
        model's language is the better one."""
        if resolved.language:
            return resolved.language
        guess = guess_language(" ".join(part.written for part in resolved.parts))
        entry = self.registry.entries.get(model)
        languages = tuple(entry.languages) if entry is not None else ()
        spoken = [tag.lower().split("-")[0] for tag in languages]
        if len(spoken) == 1 and guess.split("-")[0] != spoken[0]:
            return languages[0]
        return guess

    def reference_for(self, source: ReferenceAudio | VoiceSource, target_rms: float | None = None,
                      prefix: str = "", info: VoiceInfo | None = None) -> PreparedReference:
        """The prepared reference for a voice: a stored voice, audio sent with the job, or the default voice.
        ``prefix`` places the source's fields in the request, for errors (``segments.1.``); ``info``: the stored
        voice's metadata where the job has read it already (VoiceStore.load)."""
        target_rms = getattr(source, "target_rms", 0.1) if target_rms is None else target_rms
        if source.voice is not None:
            return self.voices.prepared(
                source.voice, target_rms,
                lambda v: prepare_reference(v.wave, v.sample_rate, v.info.ref_text, target_rms=target_rms,
                                            keep_seconds=self.settings.ref_audio_keep_seconds),
                field=prefix + "voice", info=info,
            )
        if source.ref_audio_url is not None or source.ref_audio_base64 is not None:
            data, field = self.downloads.audio(source.ref_audio_url, source.ref_audio_base64,
                                               url_field=prefix + "ref_audio_url", b64_field=prefix + "ref_audio_base64")
            return self.references.from_bytes(data, source.ref_text, field, target_rms, prefix + "ref_text")
        return self.references.default_voice(target_rms)
