"""The HTTP server's bearer token (``API_TOKEN``), for hosts outside RunPod.

On RunPod the gateway checks the RunPod API key before a request reaches the worker, so the server is open
there (``API_TOKEN`` unset). Anywhere else the token is what stands between the internet and the GPU: with
it set, every route but ``/ping`` (RunPod's health checks carry no token) needs ``Authorization: Bearer
<API_TOKEN>``, checked before any work, the body unread. The comparison takes the same time however much of
the token a guess gets right (``hmac.compare_digest``). A refusal is a 401 with ``WWW-Authenticate: Bearer``,
in the route's own error form: OpenAI's error object on OpenAI's routes (so its SDKs raise
AuthenticationError), ``{"error": "authorization: ..."}`` on the native ones. No message quotes a token.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.params import Depends as Dependency
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from f5_worker.openai_speech import ApiError

OPEN_PATHS = frozenset({"/ping"})  # RunPod's health checks send no token
OPENAI_PATHS = ("/v1/audio/", "/v1/models")  # OpenAI's routes: their refusals are OpenAI's error object
CHALLENGE = {"WWW-Authenticate": "Bearer"}


class TokenRefused(Exception):
    """A request without this server's token; ``openai``: refused in OpenAI's error form."""

    def __init__(self, message: str, openai: bool):
        super().__init__(message)
        self.error = ApiError(401, message, param="authorization" if not openai else None, code="invalid_api_key")
        self.openai = openai


def token_dependencies(token: str | None) -> list[Dependency]:
    """The app's dependencies for ``token``: none when it is unset (open)."""
    if not token:
        return []
    expected = token.encode()
    bearer = HTTPBearer(auto_error=False)  # no header, or another scheme: None, refused below in the route's form

    async def check(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        path = request.url.path
        if path in OPEN_PATHS:
            return
        openai = path.startswith(OPENAI_PATHS)
        if credentials is None:
            raise TokenRefused("no bearer token: send the header Authorization: Bearer <API_TOKEN>", openai)
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise TokenRefused("the bearer token is not this server's API_TOKEN", openai)

    return [Depends(check)]


async def refused(request: Request, exc: TokenRefused) -> JSONResponse:
    """The app's handler of TokenRefused: 401, the challenge, the route's error form."""
    body = exc.error.openai_body() if exc.openai else exc.error.native_body()
    return JSONResponse(body, status_code=401, headers=CHALLENGE)


EXCEPTION_HANDLERS = {TokenRefused: refused}
