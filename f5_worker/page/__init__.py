"""The page (docs/page.md): a text spoken with each word lit as it is said, served at ``GET /``.

One static page (``index.html``, ``app.js``, ``style.css`` beside this file, shipped in the wheel) that calls
nothing but ``POST /v1/synthesize`` on the server it came from: the worker's own HTTP server (``SERVE=http``)
includes ``router``, and so does ``python -m f5_worker.page --endpoint URL`` (forward.py), which serves the
same page on a laptop and forwards its calls to a deployed endpoint. No build step, nothing fetched from
another site: the Content-Security-Policy below lets the page reach its own server only, so it works offline.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

INDEX = "index.html"
ASSETS = {  # the page's other files, served under /page/, with their content types
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# The page's own server only: no script, style, font or request goes anywhere else. Audio is decoded from the
# answers (blob: and data: URLs for downloads and the clips chosen to upload or align).
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' data: blob:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache",
           "X-Content-Type-Options": "nosniff"}

# The methods of a route that reads: HTTP's servers take HEAD wherever they take GET (RFC 9110, 9.1), and a
# monitor may ask with it (the worker's HTTP server and the forwarder, for their routes and the page's)
GET = ["GET", "HEAD"]

router = APIRouter()


@cache
def read(name: str) -> bytes:
    """One of the page's files, from the installed package (a wheel or the checkout)."""
    return files(__name__).joinpath(name).read_bytes()


@router.api_route("/", methods=GET, include_in_schema=False)
async def index() -> Response:
    return Response(read(INDEX), media_type="text/html; charset=utf-8", headers=HEADERS)


@router.api_route("/page/{name}", methods=GET, include_in_schema=False)
async def asset(name: str) -> Response:
    if name not in ASSETS:
        return JSONResponse({"error": f"page: no file {name[:80]!r}"}, status_code=404)
    return Response(read(name), media_type=ASSETS[name], headers=HEADERS)
