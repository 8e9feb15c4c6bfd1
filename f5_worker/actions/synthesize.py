"""The ``synthesize`` action: text in the reference's voice, with its timings, captions and quality.

The work is the synthesis service's (synthesis/service.py), which any front door may call; the action hands
it the request and the job, and takes back a result, or a streamed job's items (``stream: true``).
"""

from __future__ import annotations

from collections.abc import Iterator

from f5_worker.job import Job
from f5_worker.schema import SynthesizeRequest
from f5_worker.synthesis.service import SynthesisService


class SynthesizeAction:
    def __init__(self, service: SynthesisService):
        self.service = service

    def __call__(self, request: SynthesizeRequest, job: Job) -> dict | Iterator[dict]:
        return self.service.stream(request, job) if request.stream else self.service.synthesize(request, job)
