"""Both storage backends against the same contract: a temp directory and a real SeaweedFS bucket."""

from __future__ import annotations

import contextlib
import socket
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from conftest import free_port
from f5_worker.config import StorageSettings
from f5_worker.storage.base import NotFound, StorageError, check_key
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
def test_unsafe_keys_refused_by_every_operation(storage, key):
    """A key reaches a path on the volume or a bucket's object name: every operation checks it, not only
    writes, or a delete of ``../x`` would remove a file outside the store."""
    operations = {"put": lambda: storage.put(key, b"x"), "get": lambda: storage.get(key),
                  "delete": lambda: storage.delete(key)}
    if hasattr(storage, "exists"):  # the bucket's, behind put_if_absent where conditional writes are missing
        operations["exists"] = lambda: storage.exists(key)
    for name, operation in operations.items():
        with pytest.raises(ValueError, match="unsafe storage key"):
            operation()
            pytest.fail(f"{name} took the unsafe key {key!r}")


def test_a_bucket_lookup_tells_a_stored_key_from_a_missing_one(bucket_env):
    storage = Stores.from_env().bucket
    assert storage.exists("k/missing") is False
    storage.put("k/there", b"x")
    assert storage.exists("k/there") is True
    storage.delete("k/there")
    assert storage.exists("k/there") is False


def test_a_lookup_the_bucket_refuses_is_an_error_not_a_missing_key(bucket_env, monkeypatch):
    """Only a 404 means absent. A refused lookup read as "absent" would let put_if_absent overwrite a voice
    and report a stored voice as missing."""
    monkeypatch.setenv("BUCKET_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(StorageError, match="lookup failed on bucket"):
        Stores.from_env().bucket.exists("k/any")


@given(st.text(min_size=1, max_size=40))
def test_check_key_never_lets_a_key_escape(key):
    try:
        check_key(key)
    except ValueError:
        return
    parts = key.split("/")
    assert ".." not in parts and "" not in parts and "." not in parts
    assert not key.startswith("/") and "\\" not in key and "\x00" not in key


def test_local_write_is_atomic_under_concurrent_readers(tmp_path, monkeypatch):
    """A reader that comes while a replacement is half written sees the whole old object, never a mix.

    The write is held half-way (at the file layer, under the store) until the reader is done, so the
    two really overlap on every run instead of when the scheduler happens to interleave them.
    """
    import builtins

    import f5_worker.storage.local as storage_module

    store = LocalStorage(tmp_path)
    old, new = b"a" * 200_000, b"b" * 200_000
    store.put("x/blob", old)
    half_written, read_done = threading.Event(), threading.Event()
    paused_writes: list[str] = []

    class HalfThenWait:
        """A file being written that stops after half of the data until the reader has read."""

        def __init__(self, fh):
            self._fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._fh.__exit__(*exc)

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def write(self, data):
            half = len(data) // 2
            self._fh.write(data[:half])
            self._fh.flush()
            paused_writes.append(self._fh.name)
            half_written.set()
            assert read_done.wait(timeout=60), "the reader never read"  # a guard against hanging only
            return half + self._fh.write(data[half:])

    def pausing_open(file, mode="r", *args, **kwargs):
        fh = builtins.open(file, mode, *args, **kwargs)
        return HalfThenWait(fh) if "w" in mode else fh

    seen: list[bytes] = []

    def read() -> None:
        assert half_written.wait(timeout=60)
        try:
            seen.append(store.get("x/blob"))
        finally:
            read_done.set()

    reader = threading.Thread(target=read)
    reader.start()
    monkeypatch.setattr(storage_module, "open", pausing_open, raising=False)
    try:
        store.put("x/blob", new)
    finally:
        half_written.set()  # neither side waits on the other if something failed
        read_done.set()
        monkeypatch.undo()
        reader.join(timeout=60)
    assert len(paused_writes) == 1  # the read happened while the replacement was half on disk
    assert seen == [old]
    assert store.get("x/blob") == new
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["blob"]  # no temp files left


def test_local_url_is_refused(tmp_path):
    with pytest.raises(StorageError, match="configure a bucket"):
        LocalStorage(tmp_path).url("results/x/speech.wav", 60)


def test_presigned_url_serves_content_and_type_until_it_expires(bucket_env, monkeypatch):
    bucket = Stores.from_env().bucket
    bucket.put("results/job-1/speech.wav", b"RIFFdata", "audio/wav")
    response = requests.get(bucket.url("results/job-1/speech.wav", 120), timeout=10)
    assert response.status_code == 200
    assert response.content == b"RIFFdata"
    assert response.headers["Content-Type"] == "audio/wav"
    # Links signed two hours ago (the signer's clock set back): the one valid for an hour has expired, the one
    # valid for three has not, so it is expires_s that decides.
    import botocore.auth

    signed_at = botocore.auth.get_current_datetime() - timedelta(hours=2)
    with monkeypatch.context() as clock:
        clock.setattr(botocore.auth, "get_current_datetime", lambda *args, **kwargs: signed_at)
        expired = bucket.url("results/job-1/speech.wav", 3600)
        alive = bucket.url("results/job-1/speech.wav", 3 * 3600)
    response = requests.get(expired, timeout=10)
    assert response.status_code == 403 and b"expired" in response.content.lower()
    assert requests.get(alive, timeout=10).content == b"RIFFdata"


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
    probes = count_requests(stores.bucket._probe)
    with seaweed.stopped():
        down = stores.health()["bucket"]
        assert probes == [1]  # health answers after one try, without the retries a job's request gets
        assert not down["reachable"] and not down["writable"]
        assert seaweed.endpoint in down["error"]
        with pytest.raises(StorageError, match="upload failed on bucket"):
            stores.bucket.put("x/y", b"1")
    assert stores.health()["bucket"]["writable"]  # back after the restart


def count_requests(client) -> list[int]:
    """The number of HTTP requests ``client`` sends, one entry per API call (retries add to the last)."""
    calls: list[int] = []
    client.meta.events.register("before-call.s3", lambda **kwargs: calls.append(0))
    client.meta.events.register("before-send.s3", lambda **kwargs: calls.__setitem__(-1, calls[-1] + 1))
    return calls


def test_the_bucket_named_by_the_environment_holds_the_voices_and_fails_clearly(tmp_path, monkeypatch, no_bucket_env):
    """With a volume there too, BUCKET_* still win; an unreachable bucket is then an error naming it,
    after exactly BUCKET_MAX_ATTEMPTS tries, not a silent fall back to the volume."""
    port = free_port()
    monkeypatch.setenv("NETWORK_VOLUME_PATH", str(tmp_path))
    for name, value in (("BUCKET_ENDPOINT_URL", f"http://127.0.0.1:{port}"), ("BUCKET_ACCESS_KEY_ID", "k"),
                        ("BUCKET_SECRET_ACCESS_KEY", "s"), ("BUCKET_NAME", "b-x"), ("BUCKET_MAX_ATTEMPTS", "2"),
                        ("BUCKET_CONNECT_TIMEOUT_S", "1")):
        monkeypatch.setenv(name, value)
    stores = Stores.from_env()
    assert stores.settings.volume_mounted
    assert stores.voices is stores.bucket and stores.voices.kind == "bucket"
    assert stores.voices.location == f"bucket 'b-x' at http://127.0.0.1:{port}"
    requests_sent = count_requests(stores.bucket._client)
    with pytest.raises(StorageError, match=f"^download failed on bucket 'b-x' at http://127.0.0.1:{port} "):
        stores.voices.get("a/b")
    assert requests_sent == [2]
    health = stores.health()
    assert health["voices"] == "bucket" and not health["bucket"]["reachable"]
    assert not (tmp_path / "f5-worker").exists()  # nothing went to the volume instead


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


@pytest.mark.parametrize("name, value, problem", [
    ("URL_EXPIRY_S", "604801", "URL_EXPIRY_S must be at most 604800 (got '604801')"),
    ("BUCKET_TIMEOUT_S", "1e20", "BUCKET_TIMEOUT_S must be at most 86400 (got '1e20')"),
])
def test_a_link_life_or_bucket_wait_past_what_works_disables_the_bucket(monkeypatch, name, value, problem):
    """A link signed for more than 7 days is one S3 refuses (Signature Version 4's limit): every result link
    was broken, while ``expires_in`` promised its life. A wait of 1e20 s overflows the platform's timers, so
    every bucket call failed with ``OverflowError``. Both are unusable settings, as ``URL_EXPIRY_S=1h`` is."""
    for key, setting in {"BUCKET_ENDPOINT_URL": "http://127.0.0.1:9/voices", "BUCKET_ACCESS_KEY_ID": "key-id",
                         "BUCKET_SECRET_ACCESS_KEY": "key-secret", name: value}.items():
        monkeypatch.setenv(key, setting)
    settings = StorageSettings.from_env()
    assert settings.bucket is None and problem in settings.bucket_error
    monkeypatch.setenv(name, "604800" if name == "URL_EXPIRY_S" else "86400")  # the longest that works
    assert StorageSettings.from_env().bucket is not None


@contextlib.contextmanager
def frozen_server(*, accepts: bool = True):
    """A bucket endpoint like a stopped (SIGSTOP) server: the kernel completes every connection, nothing
    ever answers. Closing it at the end resets those connections, so no client thread is left waiting.

    With ``accepts=False`` its queue of connections is full (a server stopped long enough), so the kernel
    drops every new handshake and a client waits at connecting instead of at reading."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64 if accepts else 0)
        if not accepts:
            filler.connect(listener.getsockname())  # the only connection a backlog of 0 queues
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.timeout(60)  # a hang guard: before the deadline, each call took attempts x read timeout
def test_a_frozen_bucket_fails_each_call_at_its_deadline_and_health_answers_fast(monkeypatch, no_bucket_env, tmp_path):
    with frozen_server() as endpoint:
        for name, value in {"BUCKET_ENDPOINT_URL": endpoint, "BUCKET_ACCESS_KEY_ID": "k",
                            "BUCKET_SECRET_ACCESS_KEY": "s", "BUCKET_NAME": "voices", "BUCKET_MAX_ATTEMPTS": "2",
                            "BUCKET_CONNECT_TIMEOUT_S": "5", "BUCKET_READ_TIMEOUT_S": "20",
                            "BUCKET_TIMEOUT_S": "0.5"}.items():
            monkeypatch.setenv(name, value)
        stores = Stores.from_env(network_volume_path=tmp_path / "absent")
        for call, action in ((lambda b: b.get("voices/a/voice.json"), "download"),
                             (lambda b: b.put("voices/a/x.wav", b"x" * 100_000), "upload"),
                             (lambda b: b.list("voices/"), "listing")):
            with pytest.raises(StorageError, match=rf"^{action} failed on bucket 'voices' .*\(no answer within 0.5 s\)"):
                call(stores.bucket)
        bucket = stores.health()["bucket"]
        assert not bucket["reachable"] and "no answer within 2 s" in bucket["error"], bucket


@pytest.mark.timeout(60)
@pytest.mark.parametrize("accepts", [True, False], ids=["reading", "connecting"])
def test_a_call_given_up_on_ends_its_thread_soon_after_its_deadline(monkeypatch, no_bucket_env, tmp_path, accepts):
    """The job stops waiting at the deadline, but the call's thread goes on holding a connection and one of
    ``MAX_CALLS`` slots until botocore gives up: at the configured timeouts (60 s here) unless they are
    capped just past the deadline. A frozen bucket would then fill the slots and starve later calls."""
    import time

    with frozen_server(accepts=accepts) as endpoint:
        for name, value in {"BUCKET_ENDPOINT_URL": endpoint, "BUCKET_ACCESS_KEY_ID": "k",
                            "BUCKET_SECRET_ACCESS_KEY": "s", "BUCKET_NAME": "voices", "BUCKET_MAX_ATTEMPTS": "1",
                            "BUCKET_CONNECT_TIMEOUT_S": "60", "BUCKET_READ_TIMEOUT_S": "60",
                            "BUCKET_TIMEOUT_S": "1"}.items():
            monkeypatch.setenv(name, value)
        bucket = Stores.from_env(network_volume_path=tmp_path / "absent").bucket
        before = set(threading.enumerate())
        started = time.monotonic()
        with pytest.raises(StorageError, match=r"^download failed on bucket 'voices' .*\(no answer within 1 s\)"):
            bucket.get("voices/a/voice.json")
        calls = [t for t in threading.enumerate() if t not in before]  # the call's, if it is still running
        for thread in calls:  # a hang guard, far from both the deadline (1 s) and botocore's own timeouts (60 s)
            thread.join(timeout=max(0.0, started + 15 - time.monotonic()))
        assert not any(t.is_alive() for t in calls), "the call's thread outlived its deadline by 14 s"


# A worker's last bucket call: an upload that fails at its deadline, then the worker's main returns.
UPLOAD_THEN_EXIT = """
from f5_worker.storage.base import StorageError
from f5_worker.storage.stores import Stores
try:
    Stores.from_env(network_volume_path=None).bucket.put("results/job-1/audio.wav", b"x" * 100_000)
except StorageError as exc:
    print(exc, flush=True)
"""


@pytest.mark.timeout(60)
def test_a_call_given_up_on_does_not_hold_the_process_exit(monkeypatch, no_bucket_env):
    """RunPod kills a worker that outlives its grace period after SIGTERM; an abandoned call's thread used to
    be joined at exit, holding the process for attempts x timeouts past the call's deadline: 20 x 1.5 s and
    botocore's back-off between them here, so the bound on the exit is a hang guard, not a speed claim."""
    import subprocess
    import sys
    import time

    with frozen_server() as endpoint:
        for name, value in {"BUCKET_ENDPOINT_URL": endpoint, "BUCKET_ACCESS_KEY_ID": "k",
                            "BUCKET_SECRET_ACCESS_KEY": "s", "BUCKET_NAME": "voices", "BUCKET_MAX_ATTEMPTS": "20",
                            "BUCKET_READ_TIMEOUT_S": "20", "BUCKET_TIMEOUT_S": "0.5"}.items():
            monkeypatch.setenv(name, value)
        worker = subprocess.Popen([sys.executable, "-c", UPLOAD_THEN_EXIT], cwd=Path(__file__).resolve().parents[1],
                                  stdout=subprocess.PIPE, text=True)
        with worker:
            error = worker.stdout.readline()
            failed = time.monotonic()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                pytest.fail(f"the process was still running {time.monotonic() - failed:.0f} s after its last call "
                            "failed: the abandoned call's thread holds its exit")
    assert error.startswith("upload failed on bucket 'voices'") and "(no answer within 0.5 s)" in error, error
    assert worker.returncode == 0
