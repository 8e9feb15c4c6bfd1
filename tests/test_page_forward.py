"""The page's forwarder (f5_worker/page/forward.py, ``python -m f5_worker.page --endpoint``) over real HTTP:
to the worker's HTTP server (a load-balancing endpoint: the same paths, with the key), and to runpod's own
local queue server (``--rp_serve_api`` with STREAMING=1: /runsync, and /run with /stream re-emitted as SSE)."""

from __future__ import annotations

import base64
import io
import json
import sys

import pytest
import requests
import soundfile as sf

from conftest import REPO_ROOT, SERVER_START_S, free_port, running, serving, wait_for
from f5_worker.page import CONTENT_SECURITY_POLICY
from f5_worker.page.forward import Endpoint, Refused, create_app

pytestmark = pytest.mark.slow

KEY = "test-key-7f3a"
FAST = {"nfe_step": 4, "seed": 1}


def sse_items(response: requests.Response) -> list[dict]:
    assert response.headers["content-type"].startswith("text/event-stream"), response.headers
    blocks = [b for b in response.text.split("\n\n") if b.strip()]
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks), blocks[:2]
    return [json.loads(b.removeprefix("data: ")) for b in blocks]


def check_stream(items: list[dict]) -> None:
    """A stream as the HTTP server sends it: pieces in order, end to end, each decoding to its duration; done last."""
    *pieces, last = items
    assert last["done"] is True and last["pieces"] == len(pieces) >= 1
    offset = 0.0
    for seq, item in enumerate(pieces):
        assert item["seq"] == seq and abs(item["offset"] - offset) < 1e-6
        wave, rate = sf.read(io.BytesIO(base64.b64decode(item["audio_base64"])))
        assert abs(len(wave) / rate - item["duration"]) < 1 / rate
        offset += item["duration"]
    assert abs(offset - last["duration"]) < 1e-6


def check_streamed_job(base: str) -> None:
    """A streamed job through the page at ``base`` comes as the HTTP server's events, and one refused before it
    starts comes as plain JSON (a 400), not as an event stream."""
    answer = requests.post(base + "/v1/synthesize", timeout=120, stream=True,
                           json={"text": "Hello there, my friend. This is streamed to you.", "stream": True, **FAST})
    assert answer.status_code == 200
    check_stream(sse_items(answer))
    refused = requests.post(base + "/v1/synthesize", json={"text": "Hi [paws]", "stream": True}, timeout=60)
    assert refused.status_code == 400 and refused.headers["content-type"] == "application/json"
    assert refused.json()["error"].startswith("text: unknown tag '[paws]'")


# -- a load-balancing endpoint: the worker's HTTP server -----------------------------------------------------


@pytest.fixture(scope="module")
def worker_server(worker):
    """The worker's HTTP server app, in this process, noting the Authorization header of each request."""
    from f5_worker.http_server import create_app as worker_app

    app = worker_app(worker=worker)
    seen: list[tuple[str, str | None]] = []

    @app.middleware("http")
    async def note_the_key(request, call_next):
        seen.append((request.url.path, request.headers.get("authorization")))
        return await call_next(request)

    with serving(app) as (url, _):
        yield url, seen


@pytest.fixture(scope="module")
def forwarded(worker_server):
    """The forwarder to the worker's HTTP server, with a key; (its URL, the worker's URL, what the worker saw)."""
    url, seen = worker_server
    with serving(create_app(Endpoint.parse(url, api_key=KEY))) as (forwarder, _):
        yield forwarder, url, seen


def test_the_page_is_served_by_the_worker_and_by_the_forwarder(forwarded):
    forwarder, worker_url, _ = forwarded
    for base in (worker_url, forwarder):
        index = requests.get(base + "/")
        assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
        assert index.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
            asset = requests.get(f"{base}/page/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
            assert f"page/{name}" in index.text
            assert KEY not in asset.text
        assert KEY not in index.text
        missing = requests.get(base + "/page/secrets.txt")
        assert missing.status_code == 404 and missing.json() == {"error": "page: no file 'secrets.txt'"}
    # nothing the page loads comes from another site
    script = requests.get(forwarder + "/page/app.js").text
    assert "http://" not in script and "https://" not in script


def test_a_load_balancing_endpoint_gets_the_same_calls_with_the_key(forwarded):
    forwarder, worker_url, seen = forwarded
    seen.clear()
    post = lambda base, body: requests.post(base + "/v1/synthesize", json=body, timeout=120)  # noqa: E731
    assert post(forwarder, {"action": "list_models"}).json() == post(worker_url, {"action": "list_models"}).json()
    result = post(forwarder, {"text": "Hello there.", **FAST})
    assert result.status_code == 200
    wave, rate = sf.read(io.BytesIO(base64.b64decode(result.json()["audio_base64"])))
    assert rate == 24000 and abs(len(wave) / rate - result.json()["duration"]) < 1 / rate
    refused = post(forwarder, {"text": "Hello.", "speed": 9})
    assert refused.status_code == 400 and refused.json() == {"error": "speed: must be less than or equal to 3"}
    assert requests.get(forwarder + "/health").json()["status"] == "ok"
    assert "tiny" in [m["id"] for m in requests.get(forwarder + "/v1/models").json()["data"]]
    through = [(path, key) for path, key in seen if key is not None]
    assert [path for path, _ in through] == ["/v1/synthesize"] * 3 + ["/health", "/v1/models"]
    assert {key for _, key in through} == {f"Bearer {KEY}"}
    assert len(seen) == len(through) + 1  # the one call made directly, without a key


def test_the_forwarder_answers_head_wherever_it_answers_get(forwarded):
    """As the worker's own server does (RFC 9110, 9.1): the routes it passes on took GET only, HEAD was 405."""
    forwarder = forwarded[0]
    for path in ("/ping", "/health", "/v1/models", "/", "/page/app.js"):
        got, head = requests.get(forwarder + path, timeout=60), requests.head(forwarder + path, timeout=60)
        assert head.status_code == got.status_code == 200 and head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path


def test_a_streamed_job_passes_through_as_its_events(forwarded):
    check_streamed_job(forwarded[0])


def test_a_503_asks_the_page_to_wait_as_the_http_server_does():
    """A job refused for the worker's storage failing or for being stopped is a 503; the HTTP server asks its
    client to come back in UNAVAILABLE_RETRY_AFTER_S, and the forwarder answered the same 503 without
    ``Retry-After``, from a queue endpoint's job and (dropping the worker's header) from an HTTP one."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from f5_worker.errors import UNAVAILABLE_RETRY_AFTER_S

    endpoint = FastAPI()  # an endpoint whose worker cannot reach its bucket, over real HTTP
    failing = "storage: cannot reach the bucket"

    @endpoint.post("/runsync")
    def runsync() -> dict:
        return {"id": "j1", "status": "COMPLETED", "output": {"error": failing}}

    @endpoint.post("/v1/synthesize")
    def synthesize() -> JSONResponse:
        return JSONResponse({"error": failing}, status_code=503, headers={"Retry-After": "7"})

    with serving(endpoint) as (url, _):
        for kind, wait in (("queue", UNAVAILABLE_RETRY_AFTER_S), ("http", 7)):
            with serving(create_app(Endpoint.parse(url, kind))) as (forwarder, _):
                answer = requests.post(forwarder + "/v1/synthesize", json={"text": "Hi"}, timeout=60)
            assert (answer.status_code, answer.json()) == (503, {"error": failing}), kind
            assert answer.headers.get("retry-after") == str(wait), kind
    assert "retry-after" not in Refused(400, "text: too long").response().headers


def test_what_goes_wrong_on_the_way_names_the_endpoint(worker_server):
    url, _ = worker_server
    closed = f"http://127.0.0.1:{free_port()}"
    with serving(create_app(Endpoint.parse(closed))) as (forwarder, _):
        answer = requests.post(forwarder + "/v1/synthesize", json={"action": "list_voices"}, timeout=60)
    assert answer.status_code == 502 and answer.json()["error"].startswith(f"endpoint: cannot reach {closed}")
    with serving(create_app(Endpoint.parse(url, "queue"))) as (forwarder, _):  # an HTTP server is no queue endpoint
        answer = requests.post(forwarder + "/v1/synthesize", json={"action": "list_voices"}, timeout=60)
        assert answer.status_code == 404
        assert answer.json()["error"].startswith("endpoint: RunPod answered 404 (Not Found)")
        body = requests.post(forwarder + "/v1/synthesize", data="[1]", headers={"Content-Type": "application/json"})
        assert body.status_code == 400 and body.json() == {"error": "input: must be a JSON object"}
        deep = requests.post(forwarder + "/v1/synthesize", data="[" * 100_000 + "]" * 100_000,
                             headers={"Content-Type": "application/json"})
        assert deep.status_code == 400 and deep.json()["error"].startswith("input: the body is not valid JSON")


@pytest.mark.parametrize("url, kind, expected", [
    ("https://api.runpod.ai/v2/abc123", "auto", ("https://api.runpod.ai/v2/abc123", "queue")),
    ("https://api.runpod.ai/v2/abc123/", "auto", ("https://api.runpod.ai/v2/abc123", "queue")),
    ("https://abc123.api.runpod.ai", "auto", ("https://abc123.api.runpod.ai", "http")),
    ("http://localhost:8000/", "auto", ("http://localhost:8000", "http")),
    ("http://localhost:8000", "queue", ("http://localhost:8000", "queue")),
])
def test_the_kind_of_endpoint_is_told_by_its_url(url, kind, expected):
    endpoint = Endpoint.parse(url, kind, KEY)
    assert (endpoint.url, endpoint.kind) == expected and endpoint.headers == {"Authorization": f"Bearer {KEY}"}
    assert KEY not in repr(endpoint)


@pytest.mark.parametrize("url, words", [
    ("ftp://example.com", "must be an http(s) URL"),
    ("https://user:secret@api.runpod.ai/v2/x", "must not hold a user name or password"),
    ("https://api.runpod.ai/v2/x?key=1", "must not hold a query"),
])
def test_an_endpoint_url_that_cannot_be_used_is_refused(url, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")) as caught:
        Endpoint.parse(url)
    assert "secret" not in str(caught.value)


# -- a queue endpoint: runpod's local API server, and the command ---------------------------------------------


@pytest.fixture(scope="module")
def queue_page(worker_env, tmp_path_factory):
    """``runpod_handler.py --rp_serve_api`` (STREAMING=1), and ``python -m f5_worker.page --endpoint <it>
    --kind queue``, the key in RUNPOD_API_KEY; the page's URL."""
    workdir = tmp_path_factory.mktemp("queue-page")
    queue_port, page_port = free_port(), free_port()
    queue_args = [sys.executable, str(REPO_ROOT / "runpod_handler.py"), "--rp_serve_api", "--rp_api_host", "127.0.0.1",
                  "--rp_api_port", str(queue_port)]
    page_args = [sys.executable, "-m", "f5_worker.page", "--endpoint", f"http://127.0.0.1:{queue_port}", "--kind",
                 "queue", "--port", str(page_port)]
    queue_env = dict(worker_env, STREAMING="1", ALIGNER="estimate")
    page_env = dict(worker_env, RUNPOD_API_KEY=KEY, PYTHONPATH=str(REPO_ROOT))
    with running(queue_args, queue_env, workdir, "queue.log") as (queue, queue_log), \
            running(page_args, page_env, workdir, "page.log") as (page, page_log):
        wait_for(f"http://127.0.0.1:{queue_port}/docs", 200, SERVER_START_S, queue, queue_log)
        wait_for(f"http://127.0.0.1:{page_port}/", 200, SERVER_START_S, page, page_log)
        yield f"http://127.0.0.1:{page_port}"
    assert KEY not in page_log.read_text(errors="replace")


def test_a_queue_endpoint_answers_through_runsync(queue_page):
    post = lambda body: requests.post(queue_page + "/v1/synthesize", json=body, timeout=120)  # noqa: E731
    assert post({"action": "list_voices"}).json()["voices"] == []  # STREAMING=1's list of one, unwrapped
    result = post({"text": "Hello there.", **FAST})
    assert result.status_code == 200, result.text
    wave, rate = sf.read(io.BytesIO(base64.b64decode(result.json()["audio_base64"])))
    assert abs(len(wave) / rate - result.json()["duration"]) < 1 / rate
    refused = post({"text": "Hello.", "speed": 9})
    assert refused.status_code == 400 and refused.json() == {"error": "speed: must be less than or equal to 3"}
    assert "page/app.js" in requests.get(queue_page + "/").text


def test_a_queue_endpoints_stream_is_sent_on_as_events(queue_page):
    check_streamed_job(queue_page)
