"""Both storage backends against the same contract: a temp directory and a real SeaweedFS bucket."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from f5_worker.config import StorageSettings
from f5_worker.storage.base import NotFound, StorageError, check_key
from f5_worker.storage.bucket import BucketStorage
from f5_worker.storage.local import LocalStorage
from f5_worker.storage.stores import Stores


@pytest.fixture(params=["local", "bucket"])
def storage(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    request.getfixturevalue("bucket_env")
    return Stores.from_env().bucket


def test_put_get_list_delete(storage):
    storage.put("voices/anna/voice.json", b'{"a": 1}', "application/json")
    storage.put("voices/anna/audio-1.wav", b"RIFF....", "audio/wav")
    storage.put("voices/bob/voice.json", b"{}", "application/json")
    assert storage.get("voices/anna/voice.json") == b'{"a": 1}'
    listed = storage.list("voices/anna/")
    assert [o.key for o in listed] == ["voices/anna/audio-1.wav", "voices/anna/voice.json"]
    assert [o.size for o in listed] == [8, 8]
    assert len(storage.list("voices/")) == 3
    storage.put("voices/anna/voice.json", b"{}")  # replace
    assert storage.get("voices/anna/voice.json") == b"{}"
    storage.delete("voices/anna/voice.json")
    storage.delete("voices/anna/voice.json")  # deleting twice is fine
    with pytest.raises(NotFound):
        storage.get("voices/anna/voice.json")
    assert [o.key for o in storage.list("voices/")] == ["voices/anna/audio-1.wav", "voices/bob/voice.json"]
    assert storage.list("nothing-here/") == []


def test_put_if_absent_has_one_winner(storage):
    assert storage.put_if_absent("k/x", b"first")
    assert not storage.put_if_absent("k/x", b"second")
    assert storage.get("k/x") == b"first"

    winners, barrier = [], threading.Barrier(6)

    def race(i: int) -> None:
        barrier.wait()
        if storage.put_if_absent("k/race", f"writer {i} ".encode() * 5000):
            winners.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert storage.get("k/race") == f"writer {winners[0]} ".encode() * 5000


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "/abs", "a//b", "a/../b", "a/./b", "", "a/b c", "a\\b", "a/\x00", "a/b\n"]
)
def test_unsafe_keys_refused(storage, key):
    with pytest.raises(ValueError):
        storage.put(key, b"x")


@given(st.text(min_size=1, max_size=40))
def test_check_key_never_lets_a_key_escape(key):
    try:
        check_key(key)
    except ValueError:
        return
    parts = key.split("/")
    assert ".." not in parts and "" not in parts and "." not in parts
    assert not key.startswith("/") and "\\" not in key and "\x00" not in key


def test_local_write_is_atomic_under_concurrent_readers(tmp_path):
    """Readers never see a half-written object while it is replaced."""
    store = LocalStorage(tmp_path)
    a, b = b"a" * 2_000_000, b"b" * 2_000_000
    store.put("x/blob", a)
    stop = threading.Event()
    seen = set()

    def read() -> None:
        while not stop.is_set():
            data = store.get("x/blob")
            seen.add((len(data), data[:1] + data[-1:], data.count(data[:1]) == len(data)))

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(20):
        store.put("x/blob", a if i % 2 else b)
    stop.set()
    reader.join()
    assert seen <= {(2_000_000, b"aa", True), (2_000_000, b"bb", True)}
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["blob"]  # no temp files left


def test_local_url_is_refused(tmp_path):
    with pytest.raises(StorageError, match="configure a bucket"):
        LocalStorage(tmp_path).url("results/x/speech.wav", 60)


def test_presigned_url_serves_content_and_type(bucket_env):
    bucket = Stores.from_env().bucket
    bucket.put("results/job-1/speech.wav", b"RIFFdata", "audio/wav")
    response = requests.get(bucket.url("results/job-1/speech.wav", 120), timeout=10)
    assert response.status_code == 200
    assert response.content == b"RIFFdata"
    assert response.headers["Content-Type"] == "audio/wav"
    expired = bucket.url("results/job-1/speech.wav", 1)
    time.sleep(2.1)
    assert requests.get(expired, timeout=10).status_code == 403


def test_settings_select_backend(tmp_path, monkeypatch, no_bucket_env):
    monkeypatch.setenv("NETWORK_VOLUME_PATH", str(tmp_path))
    settings = StorageSettings.from_env()
    assert settings.volume_mounted and settings.local_root == tmp_path / "f5-worker"
    assert settings.bucket is None and settings.url_expiry_s == 3600
    stores = Stores(settings)
    assert stores.voices is stores.local
    health = stores.health()
    assert health["results"] == "inline only" and health["voices"] == "local"
    assert health["local"]["writable"] and health["local"]["path"] == str(tmp_path / "f5-worker")
    assert not list((tmp_path / "f5-worker").rglob("probe-*"))  # the probe is cleaned up

    monkeypatch.setenv("NETWORK_VOLUME_PATH", str(tmp_path / "absent"))
    assert StorageSettings.from_env().local_root.name == "data"

    monkeypatch.setenv("BUCKET_ENDPOINT_URL", "https://s3.us-west-004.backblazeb2.com/my-voices")
    monkeypatch.setenv("BUCKET_ACCESS_KEY_ID", "id")
    assert "BUCKET_SECRET_ACCESS_KEY not set" in StorageSettings.from_env().bucket_error
    monkeypatch.setenv("BUCKET_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("URL_EXPIRY_S", "600")
    settings = StorageSettings.from_env()
    assert settings.bucket.name == "my-voices"  # from the endpoint's path when BUCKET_NAME is unset
    assert settings.bucket.region == "us-west-004"
    assert settings.bucket.endpoint_url == "https://s3.us-west-004.backblazeb2.com"
    assert settings.url_expiry_s == 600
    assert "secret" not in repr(settings)


def test_bucket_check_reports_problems(bucket_env, seaweed, monkeypatch):
    good = Stores.from_env().check_bucket()
    assert good["reachable"] and good["writable"] and good["error"] is None

    monkeypatch.setenv("BUCKET_NAME", "no-such-bucket-here")
    missing = Stores.from_env().check_bucket()
    assert missing["reachable"] and not missing["writable"] and "does not exist" in missing["error"]

    monkeypatch.setenv("BUCKET_NAME", bucket_env["BUCKET_NAME"])
    monkeypatch.setenv("BUCKET_SECRET_ACCESS_KEY", "wrong")
    denied = Stores.from_env().check_bucket()
    assert not denied["writable"] and denied["error"]

    monkeypatch.setenv("BUCKET_SECRET_ACCESS_KEY", bucket_env["BUCKET_SECRET_ACCESS_KEY"])
    stores = Stores.from_env()
    with seaweed.stopped():
        started = time.monotonic()
        down = stores.health()["bucket"]
        assert time.monotonic() - started < 15
        assert not down["reachable"] and not down["writable"]
        assert seaweed.endpoint in down["error"]
        with pytest.raises(StorageError, match="upload failed on bucket"):
            stores.bucket.put("x/y", b"1")
    assert stores.health()["bucket"]["writable"]  # back after the restart


def test_unreachable_bucket_fails_fast_and_clearly():
    from f5_worker.config import BucketSettings

    port = __import__("conftest_s3")._free_ports(1)[0]
    settings = BucketSettings(f"http://127.0.0.1:{port}", "k", "s", "b-x", max_attempts=1, connect_timeout_s=1)
    bucket = BucketStorage(settings)
    started = time.monotonic()
    with pytest.raises(StorageError, match=f"127.0.0.1:{port}"):
        bucket.get("a/b")
    assert time.monotonic() - started < 5
    assert isinstance(bucket, BucketStorage)


@pytest.mark.parametrize("value, expected", [(None, "/runpod-volume"), ("", None), ("  ", None), ("/mnt/vol", "/mnt/vol")])
def test_network_volume_path_reads_the_same_at_boot_and_in_the_worker(value, expected, monkeypatch, no_bucket_env):
    """NETWORK_VOLUME_PATH="" turns the volume off (e.g. a read-only one) for the venv builder, and now for the
    worker too: it used to read "" as unset and keep voices, model cache and results on /runpod-volume."""
    import importlib.util
    import sys

    from f5_worker.config import get_settings

    if value is None:
        monkeypatch.delenv("NETWORK_VOLUME_PATH", raising=False)
    else:
        monkeypatch.setenv("NETWORK_VOLUME_PATH", value)
    name = "setup_venv_for_volume_test"
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "setup_network_venv.py")
    boot = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, boot)  # its dataclasses look their module up there
    spec.loader.exec_module(boot)
    want = None if expected is None else Path(expected)
    assert boot.Config.from_env().volume == want
    assert get_settings().network_volume_path == want
    if want is None:
        assert not get_settings().volume_mounted and StorageSettings.from_env().local_root == Path("data").resolve()


def test_bucket_settings_it_cannot_use_disable_the_bucket_with_the_reason(monkeypatch, bucket_env):
    """They used to raise while the worker started (after the model load): a worker that never came up."""
    monkeypatch.setenv("BUCKET_READ_TIMEOUT_S", "60s")
    monkeypatch.setenv("BUCKET_MAX_ATTEMPTS", "3.0")
    monkeypatch.setenv("BUCKET_ADDRESSING_STYLE", "Sideways")
    monkeypatch.setenv("URL_EXPIRY_S", "1h")
    settings = StorageSettings.from_env()
    assert settings.bucket is None
    for problem in ("BUCKET_READ_TIMEOUT_S must be a positive number (got '60s')",
                    "BUCKET_MAX_ATTEMPTS must be a positive whole number (got '3.0')",
                    "BUCKET_ADDRESSING_STYLE must be path, virtual or auto (got 'sideways')",
                    "URL_EXPIRY_S must be a positive whole number (got '1h')"):
        assert problem in settings.bucket_error
    assert Stores(settings).health()["results"] == "inline only"
    monkeypatch.setenv("BUCKET_ADDRESSING_STYLE", "Virtual")  # any case
    for name in ("BUCKET_READ_TIMEOUT_S", "BUCKET_MAX_ATTEMPTS", "URL_EXPIRY_S"):
        monkeypatch.delenv(name)
    assert StorageSettings.from_env().bucket.addressing_style == "virtual"
