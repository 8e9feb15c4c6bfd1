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

# A send that waits longer than this, in seconds, for the client to take what was sent before cuts the stream:
# a client that keeps its connection but reads no more (stuck, or its network gone, which TCP notices only after
# a quarter of an hour) held its job's place, and with MAX_CONCURRENCY of them the worker refused every job.
# A client reading no faster than it plays still takes an item (22 s of speech at most) well within it.
STALLED_CLIENT_S = 120.0


class ClientStalled(Exception):
    """The client took none of the answer for STALLED_CLIENT_S."""


class JobStream(StreamingResponse):
    """A streamed job's answer: ``first`` (pulled before the answer started, so that a refused job answered
    an error instead), then the rest of ``job``'s items, each as ``to_bytes`` makes it. The moment it ends
    (sent whole, left by its client, which Starlette sees and cancels the body for, cut by a stopping
    server, which cancels it, broken by its job, or cut for a client that takes nothing, STALLED_CLIENT_S)
    ``on_end`` runs and ``job`` is closed, which stops it where it is not done (stopping.made_in_thread)."""

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
        stalled_s = STALLED_CLIENT_S

        async def send_unless_stalled(message) -> None:
            try:
                await asyncio.wait_for(send(message), stalled_s)
            except TimeoutError:
                raise ClientStalled from None

        try:
            await super().__call__(scope, receive, send_unless_stalled)
        except StreamBroken as exc:  # returned unfinished, the answer's connection is closed: the body is cut
            log.warning("a streamed answer was cut: %s", exc)
        except ClientStalled:
            log.warning("a streamed answer was cut: its client took none of it for %g s", stalled_s)
        except asyncio.CancelledError:  # uvicorn's grace period is over: the same, without a traceback in the log
            log.warning("a streamed answer was cut: the server is stopping")
        finally:
            self.on_end()
            await self.body_iterator.aclose()
            await self.job.aclose()
