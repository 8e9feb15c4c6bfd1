"""The HTTP server's bearer token (API_TOKEN, f5_worker/http_auth.py) over real HTTP: ``python runpod_handler.py``
with SERVE=http and API_TOKEN set, on the tiny models, called with the official openai client and plain
requests; and the token kept out of the log, the answers and the settings' repr."""

from __future__ import annotations

import io
import subprocess
import sys

import openai
import pytest
import requests
import soundfile as sf
from test_http_server import FAST

from conftest import REPO_ROOT, free_port, http_server_process

TOKEN = "tok-" + "Zq7" * 10  # what an operator sets as API_TOKEN
WRONG = TOKEN[:-1] + "X"  # one character off


@pytest.fixture(scope="module")
def server(worker_env, tmp_path_factory):
    """``SERVE=http API_TOKEN=... python runpod_handler.py``; yields (base URL, the path of its log). Its /ping,
    which it waits for, is open: it needs no token."""
    with http_server_process(worker_env, tmp_path_factory.mktemp("http-auth"), API_TOKEN=TOKEN) as served:
        yield served.url, served.log_path


def client(server, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=api_key, max_retries=0, timeout=120)


def test_the_openai_client_with_the_token_is_served(server):
    speech = client(server, TOKEN).audio.speech.create(model="tts-1", voice="alloy", input="Hello there.",
                                                       response_format="wav", extra_body=FAST)
    wave, rate = sf.read(io.BytesIO(speech.content))
    assert rate == 24000 and len(wave) > 2400
    assert "tts-1" in [m.id for m in client(server, TOKEN).models.list()]


@pytest.mark.parametrize("call", ["models", "speech"])
def test_the_openai_client_with_another_key_raises_authentication_error(server, call):
    wrong = client(server, WRONG)
    with pytest.raises(openai.AuthenticationError) as caught:
        if call == "models":
            wrong.models.list()
        else:
            wrong.audio.speech.create(model="tts-1", voice="alloy", input="Hello there.", response_format="wav")
    assert caught.value.status_code == 401
    assert caught.value.body == {"message": "the bearer token is not this server's API_TOKEN",
                                 "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
    assert caught.value.response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("headers, problem", [
    ({}, "no bearer token"),
    ({"Authorization": f"Basic {TOKEN}"}, "no bearer token"),  # the right secret in another scheme
    ({"Authorization": "Bearer"}, "no bearer token"),
    ({"Authorization": f"Bearer {WRONG}"}, "is not this server's API_TOKEN"),
    ({"Authorization": f"Bearer {TOKEN[:-1]}"}, "is not this server's API_TOKEN"),  # a prefix of it
    ({"Authorization": f"Bearer {TOKEN}{TOKEN}"}, "is not this server's API_TOKEN"),
], ids=["none", "basic", "empty", "wrong", "prefix", "longer"])
def test_every_route_but_ping_refuses_a_request_without_the_token(server, headers, problem):
    base = server[0]
    refused = [requests.get(base + "/", headers=headers),  # the page too (docs/page.md)
               requests.get(base + "/health", headers=headers),
               requests.post(base + "/v1/synthesize", json={"text": "Hi.", **FAST}, headers=headers),
               requests.get(base + "/v1/models", headers=headers),
               requests.post(base + "/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "Hi."},
                             headers=headers)]
    for native, response in zip([True, True, True, False, False], refused):
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer", response.text
        error = response.json()["error"]
        if native:
            assert error.startswith("authorization: ") and problem in error, error
        else:
            assert problem in error["message"] and error["code"] == "invalid_api_key", error
        assert TOKEN not in response.text
    assert requests.get(base + "/ping", headers=headers).status_code == 200


def test_the_token_opens_the_native_routes(server):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(server[0] + "/health", headers=auth).json()["status"] == "ok"
    result = requests.post(server[0] + "/v1/synthesize", json={"text": "Hi.", **FAST}, headers=auth).json()
    assert result["model"] == "tiny" and result["audio_base64"]


def test_the_token_is_in_no_answer_and_no_log_line(server):
    """A client that puts the token where it does not belong (a URL's query, a field) finds it nowhere."""
    base, log_path = server
    auth = {"Authorization": f"Bearer {TOKEN}"}
    health = requests.get(base + "/health", params={"key": TOKEN}, headers=auth)
    assert health.status_code == 200 and TOKEN not in health.text
    refused = requests.post(base + "/v1/synthesize", json={"text": "Hi.", "voice": TOKEN}, headers=auth)
    assert refused.status_code == 400 and refused.json()["error"].startswith("voice: ")
    assert TOKEN not in refused.text
    log = log_path.read_text(errors="replace")
    assert " INFO f5_worker.worker: job " in log, log[-3000:]  # the worker's own format (logs.SafeFormatter)
    assert "voice='***'" in log and TOKEN not in log and TOKEN[:12] not in log, log[-3000:]


def test_the_worker_log_format_hides_the_token_wherever_it_appears(monkeypatch):
    """Once read, the token is blanked in every record the worker's format writes, whatever put it there."""
    import logging

    from f5_worker import config, logs

    monkeypatch.setenv("API_TOKEN", TOKEN)
    config.get_settings()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.SafeFormatter(logs.LOG_FORMAT))
    log = logging.getLogger("f5_worker.test_token")
    log.addHandler(handler)
    try:
        log.warning("a header: Bearer %s", TOKEN)
        try:
            raise ValueError(f"bad token {TOKEN}")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    assert TOKEN not in stream.getvalue() and stream.getvalue().count("***") == 2, stream.getvalue()
    assert logs.echo({"k": TOKEN}) == "{'k': '***'}"


def test_the_token_is_not_in_the_settings_repr(monkeypatch):
    from f5_worker import config

    monkeypatch.setenv("API_TOKEN", f"  {TOKEN}\n")  # pasted with spaces and a newline
    settings = config.get_settings()
    assert settings.api_token == TOKEN and TOKEN not in repr(settings)


@pytest.mark.parametrize("value", ["short-token-1234", "has spaces in the middle of it", "semi;colon;token;value",
                                   "=leading-equals-sign-token"])
def test_a_token_that_cannot_be_one_is_refused_without_quoting_it(monkeypatch, value):
    from f5_worker import config

    monkeypatch.setenv("API_TOKEN", value[:-1] if value.startswith("short") else value)
    with pytest.raises(config.SettingsError, match="^API_TOKEN must be at least 16 characters") as caught:
        config.get_settings()
    assert value[:8] not in str(caught.value)


def test_a_bad_token_stops_the_server_with_status_2(worker_env, tmp_path):
    env = dict(worker_env, SERVE="http", PORT=str(free_port()), API_TOKEN="too-short-secret"[:-2])
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "runpod_handler.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot start: API_TOKEN must be at least 16 characters" in proc.stderr
    assert "too-short-secr" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
