"""The HTTP server's streamed answers (docs/http.md): a speech's body (speech_stream.py) or a native streamed
job's items as server-sent events, sent by a response that frees the job's slot and stops its job the moment
it ends, whether sent whole, left by its client or cut by a stopping server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from f5_worker.speech_stream import StreamBroken

log = logging.getLogger(__name__)


class JobStream(StreamingResponse):
    """A streamed job's answer: ``first`` (pulled before the answer started, so that a refused job answered
    an error instead), then the rest of ``job``'s items, each as ``to_bytes`` makes it. The moment it ends
    (sent whole, left by its client, which Starlette sees and cancels the body for, cut by a stopping
    server, which cancels it, or broken by its job) ``on_end`` runs and ``job`` is closed, which stops it
    where it is not done (stopping.made_in_thread)."""

    def __init__(self, first: bytes, job: AsyncGenerator, to_bytes: Callable[[object], bytes],
                 on_end: Callable[[], None], **kwargs):
        async def body() -> AsyncIterator[bytes]:
            if first:
                yield first
            async for item in job:
                if chunk := to_bytes(item):
                    yield chunk

        super().__init__(body(), **kwargs)
        self.job, self.on_end = job, on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except StreamBroken as exc:  # returned unfinished, the answer's connection is closed: the body is cut
            log.warning("a streamed answer was cut: %s", exc)
        except asyncio.CancelledError:  # uvicorn's grace period is over: the same, without a traceback in the log
            log.warning("a streamed answer was cut: the server is stopping")
        finally:
            self.on_end()
            await self.body_iterator.aclose()
            await self.job.aclose()
