"""setup_network_venv.py against a temporary directory standing in for the network volume.

Most tests point the builder at a small stand-in project (tests/boot_fixtures:
numpy + packaging, installed from uv's cache in about a second) through the
documented settings F5_APP_DIR and F5_VENV_VERIFY_IMPORTS; the code path is the
one the real lock takes. One slow test builds the real project lock and
verifies torch, f5_tts and runpod import.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
SETUP_VENV = REPO / "setup_network_venv.py"
FIXTURES = Path(__file__).resolve().parent / "boot_fixtures"
SMALL_A = FIXTURES / "small_a"
SMALL_B = FIXTURES / "small_b"
# The container runs setup_network_venv.py with the system python; here, the base interpreter of .venv.
BASE_PYTHON = os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def uv_cache_dir() -> str:
    if os.environ.get("UV_CACHE_DIR"):
        return os.environ["UV_CACHE_DIR"]
    return subprocess.run([os.environ.get("UV", "uv"), "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()


UV_CACHE = uv_cache_dir()


def boot_env(volume: Path | str, local_root: Path, app: Path = SMALL_A, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("F5_", "UV_", "VIRTUAL_ENV", "HF_HOME", "TORCH_HOME", "TORCHINDUCTOR_", "PYTHON"))}
    env.update({
        "NETWORK_VOLUME_PATH": str(volume),
        "F5_APP_DIR": str(app),
        "F5_LOCAL_ROOT": str(local_root),
        "F5_VENV_VERIFY_IMPORTS": "numpy,packaging",
        "F5_VENV_MIN_FREE_MB": "100",
        "UV_CACHE_DIR": UV_CACHE,  # wheels from the developer's cache: no downloads
    })
    env.update(extra)
    return env


def run_boot(env: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([BASE_PYTHON, str(SETUP_VENV), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def exports(proc: subprocess.CompletedProcess) -> dict:
    """The ``export NAME=value`` lines setup_network_venv.py prints for start.sh."""
    import shlex

    result = {}
    for line in proc.stdout.splitlines():
        assert line.startswith("export "), line
        name, _, value = line[len("export "):].partition("=")
        result[name] = shlex.split(value)[0]
    return result


def imports_ok(python: str, modules: str) -> bool:
    return subprocess.run([python, "-c", f"import {modules}"], capture_output=True).returncode == 0


def venvs_dir(volume: Path) -> Path:
    return volume / "f5-worker" / "venvs"


def leftovers(volume: Path) -> list[str]:
    root = venvs_dir(volume)
    return sorted(p.name for p in root.iterdir() if p.name.startswith((".tmp-", ".trash-"))) if root.exists() else []


@pytest.fixture
def area(tmp_path):
    """A volume directory and a container-disk directory; venvs removed afterwards."""
    volume = tmp_path / "volume"
    volume.mkdir()
    local = tmp_path / "local"
    yield volume, local
    shutil.rmtree(tmp_path, ignore_errors=True)


def load_module():
    """setup_network_venv.py as a module (it is a file at the repo root, not a package)."""
    name = "setup_network_venv_under_test"
    spec = importlib.util.spec_from_file_location(name, SETUP_VENV)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ basics


def test_first_boot_builds_second_reuses(area):
    volume, local = area
    first = run_boot(boot_env(volume, local))
    assert first.returncode == 0, first.stderr
    env = exports(first)
    assert env["F5_VENV"].startswith(str(venvs_dir(volume)))
    assert imports_ok(env["F5_VENV_PYTHON"], "numpy, packaging")
    marker = json.loads((Path(env["F5_VENV"]) / ".f5-worker-venv.json").read_text())
    assert marker["key"] == env["F5_VENV_KEY"]
    assert marker["interpreter"] == BASE_PYTHON
    assert set(marker["verified"]["modules"]) == {"numpy", "packaging"}
    # Model caches go to the volume.
    assert env["HF_HOME"] == str(volume / "f5-worker" / "cache" / "huggingface")
    assert env["TORCH_HOME"] == str(volume / "f5-worker" / "cache" / "torch")
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(volume / "f5-worker" / "cache" / "torchinductor")

    second = run_boot(boot_env(volume, local))
    assert second.returncode == 0, second.stderr
    assert exports(second)["F5_VENV"] == env["F5_VENV"]
    assert "phase=create-venv" not in second.stderr
    assert "ready; reusing it" in second.stderr
    assert leftovers(volume) == []


def test_venv_is_relocatable_and_bound_to_its_interpreter(area):
    volume, local = area
    env = exports(run_boot(boot_env(volume, local)))
    cfg = (Path(env["F5_VENV"]) / "pyvenv.cfg").read_text()
    assert "relocatable = true" in cfg
    assert f"home = {os.path.dirname(BASE_PYTHON)}" in cfg


def test_check_reports_without_changing_anything(area):
    volume, local = area
    before = run_boot(boot_env(volume, local), "--check")
    assert before.returncode == 3, before.stdout + before.stderr
    assert "not built" in before.stdout
    assert list(volume.iterdir()) == [], "--check must not write to the volume"

    assert run_boot(boot_env(volume, local)).returncode == 0
    after = run_boot(boot_env(volume, local), "--check")
    assert after.returncode == 0
    assert "READY" in after.stdout


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_key_depends_on_the_lock_content(tmp_path_factory, lock_a, lock_b):
    module = load_module()
    directory = tmp_path_factory.mktemp("locks")
    path_a, path_b = directory / "a.lock", directory / "b.lock"
    path_a.write_bytes(lock_a)
    path_b.write_bytes(lock_b)
    key_a, key_b = module.venv_key(path_a)[0], module.venv_key(path_b)[0]
    assert (key_a == key_b) == (lock_a == lock_b)
    assert key_a == module.venv_key(path_a)[0]


def test_key_depends_on_cuda_flavour_and_interpreter(tmp_path, monkeypatch):
    module = load_module()
    lock = tmp_path / "uv.lock"
    lock.write_text("version = 1\n")
    monkeypatch.delenv("F5_CUDA_FLAVOUR", raising=False)
    monkeypatch.delenv("CUDA_VERSION", raising=False)
    plain, facts = module.venv_key(lock)
    assert facts["cuda"] == "nocuda" and facts["interpreter"] == BASE_PYTHON
    monkeypatch.setenv("CUDA_VERSION", "12.8.1")
    cuda, facts = module.venv_key(lock)
    assert facts["cuda"] == "cu128" and cuda != plain and cuda.startswith("py")
    monkeypatch.setattr(module, "base_interpreter", lambda: Path("/other/python3.11"))
    assert module.venv_key(lock)[0] != cuda


# -------------------------------------------------------------- concurrency


def test_eight_concurrent_boots_build_once(area):
    volume, local = area
    env = boot_env(volume, local)
    procs = [subprocess.Popen([BASE_PYTHON, str(SETUP_VENV)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, _, err in results:
        assert code == 0, err
    builds = sum(err.count("phase=create-venv") for _, _, err in results)
    assert builds == 1, "exactly one worker builds"
    venv_paths = {exports(subprocess.CompletedProcess([], 0, out, err))["F5_VENV"] for _, out, err in results}
    assert len(venv_paths) == 1
    venv = Path(venv_paths.pop())
    assert imports_ok(str(venv / "bin" / "python"), "numpy, packaging")
    assert sum("built by another worker" in err or "ready; reusing it" in err for _, _, err in results) == 7
    assert leftovers(volume) == []
    assert [p.name for p in venvs_dir(volume).iterdir() if not p.name.startswith(".")] == [venv.name]


# Each line is logged before the work it names, so a kill on reading it lands inside that part of the build.
KILL_POINTS = ["phase=create-venv", "phase=export", "phase=install", "phase=verify"]


def boot_killed_at(env: dict, phase: str) -> tuple[int, str]:
    """Start a boot and SIGKILL its whole process group as soon as its log shows ``phase``.

    The builder's own log says when, not a clock. Returns the exit status and everything it logged.
    """
    proc = subprocess.Popen([BASE_PYTHON, str(SETUP_VENV)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = []
    for line in proc.stderr:
        log.append(line)
        if phase in line:
            os.killpg(proc.pid, signal.SIGKILL)  # the container dies: uv children with it
            break
    log.extend(proc.stderr)  # to the end of the stream: all it wrote before it died
    return proc.wait(timeout=30), "".join(log)


@pytest.mark.slow
def test_kill_minus_nine_during_build_never_poisons_the_volume(tmp_path):
    try:
        for phase in KILL_POINTS:
            volume = tmp_path / f"volume-{phase.removeprefix('phase=')}"
            volume.mkdir()
            env = boot_env(volume, tmp_path / "local")
            status, log = boot_killed_at(env, phase)
            # it died of the kill, before it got to the rename into place
            assert status == -signal.SIGKILL and phase in log and "phase=publish" not in log, log
            assert not any(venvs_dir(volume).glob("py*")), f"killed at {phase}: an unfinished venv is in place"

            after = run_boot(env)
            assert after.returncode == 0, f"after a kill at {phase}:\n{after.stderr}"
            assert "waiting for" not in after.stderr, "the killed builder's lock outlived it"
            assert imports_ok(exports(after)["F5_VENV_PYTHON"], "numpy, packaging")
            assert leftovers(volume) == [], f"killed at {phase}: temp dirs left behind"
            shutil.rmtree(volume)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def hold_build_lock(volume, local, hostname: str, pid: int) -> subprocess.Popen:
    """Another 'worker': a process that takes this release's build lock, writes its holder info, and sleeps."""
    key = run_boot(boot_env(volume, local), "--check").stdout.split("venv key:")[1].split()[0]
    locks = venvs_dir(volume) / ".locks"
    locks.mkdir(parents=True)
    holder = subprocess.Popen(
        [BASE_PYTHON, "-c", "import fcntl, os, time\n"
         f"fd = os.open({str(locks / (key + '.build.lock'))!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         f"os.write(fd, b'{{\"hostname\": \"{hostname}\", \"pid\": {pid}, \"since\": 0}}')\n"
         "print('locked', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_lock_of_a_dead_worker_does_not_block(area):
    volume, local = area
    holder = hold_build_lock(volume, local, "dead-worker", 1)
    holder.kill()  # dies holding the lock; the lock file with its holder info stays
    holder.wait()
    result = run_boot(boot_env(volume, local))
    assert result.returncode == 0, result.stderr
    assert "waiting for" not in result.stderr  # logged by the first try that finds the lock held


def test_lock_held_by_a_hung_worker_times_out_and_still_builds(area):
    volume, local = area
    holder = hold_build_lock(volume, local, "hung-worker", 99)
    try:
        result = run_boot(boot_env(volume, local, F5_VENV_LOCK_TIMEOUT_S="2"))
        assert result.returncode == 0, result.stderr
        assert "waiting for worker hung-worker pid 99" in result.stderr
        assert "still held after 2s" in result.stderr
        assert imports_ok(exports(result)["F5_VENV_PYTHON"], "numpy, packaging")
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------- lock changes


def test_changed_lock_gives_a_new_venv(area):
    volume, local = area
    a = exports(run_boot(boot_env(volume, local, app=SMALL_A)))
    b_run = run_boot(boot_env(volume, local, app=SMALL_B, F5_VENV_VERIFY_IMPORTS="numpy,packaging,six"))
    assert b_run.returncode == 0, b_run.stderr
    b = exports(b_run)
    assert a["F5_VENV_KEY"] != b["F5_VENV_KEY"]
    assert imports_ok(b["F5_VENV_PYTHON"], "six")
    assert not imports_ok(a["F5_VENV_PYTHON"], "six"), "the old venv is untouched"
    assert Path(a["F5_VENV"]).is_dir(), "kept: fewer than F5_VENV_KEEP venvs"


def variant_app(tmp_path: Path, n: int) -> Path:
    """A copy of the small project whose lock differs (a TOML comment): a new key."""
    app = tmp_path / f"app{n}"
    shutil.copytree(SMALL_A, app)
    with open(app / "uv.lock", "a") as lock:
        lock.write(f"# variant {n}\n")
    return app


def test_prune_keeps_newest_and_never_one_in_use(area, tmp_path):
    volume, local = area
    prune = {"F5_VENV_KEEP": "1", "F5_VENV_PRUNE_IDLE_HOURS": "0"}
    first = exports(run_boot(boot_env(volume, local, app=variant_app(tmp_path, 1), **prune)))
    # A worker still runs from the first venv: start.sh holds its use lock shared.
    fd = os.open(first["F5_VENV_USE_LOCK"], os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        second_run = run_boot(boot_env(volume, local, app=variant_app(tmp_path, 2), **prune))
        assert second_run.returncode == 0, second_run.stderr
        assert Path(first["F5_VENV"]).is_dir(), "in use: must not be pruned"
        assert f"keeping old venv {first['F5_VENV_KEY']}: in use" in second_run.stderr
    finally:
        os.close(fd)
    second = exports(second_run)
    third_run = run_boot(boot_env(volume, local, app=variant_app(tmp_path, 3), **prune))
    assert third_run.returncode == 0, third_run.stderr
    third = exports(third_run)
    assert not Path(first["F5_VENV"]).exists(), "no longer in use: pruned"
    assert not Path(second["F5_VENV"]).exists()
    assert Path(third["F5_VENV"]).is_dir()
    assert leftovers(volume) == []


def test_prune_spares_recently_used_venvs(area, tmp_path):
    volume, local = area
    first = exports(run_boot(boot_env(volume, local, app=variant_app(tmp_path, 1), F5_VENV_KEEP="1")))
    assert run_boot(boot_env(volume, local, app=variant_app(tmp_path, 2), F5_VENV_KEEP="1")).returncode == 0
    assert Path(first["F5_VENV"]).is_dir(), "used within F5_VENV_PRUNE_IDLE_HOURS (72 h): kept"


def test_unmarked_or_broken_venv_is_rebuilt(area):
    volume, local = area
    env = exports(run_boot(boot_env(volume, local)))
    venv = Path(env["F5_VENV"])
    (venv / ".f5-worker-venv.json").unlink()
    result = run_boot(boot_env(volume, local))
    assert result.returncode == 0, result.stderr
    assert "unusable (no ready marker" in result.stderr
    assert imports_ok(str(venv / "bin" / "python"), "numpy, packaging")

    (venv / "bin" / "python").unlink()
    result = run_boot(boot_env(volume, local))
    assert result.returncode == 0, result.stderr
    assert "does not run" in result.stderr
    assert imports_ok(str(venv / "bin" / "python"), "numpy, packaging")
    assert leftovers(volume) == []


# --------------------------------------------------------- no volume / baked


def test_no_volume_builds_on_the_container_disk(area, tmp_path):
    volume, local = area
    missing = tmp_path / "not-mounted"
    result = run_boot(boot_env(missing, local))
    assert result.returncode == 0, result.stderr
    env = exports(result)
    assert env["F5_VENV"].startswith(str(local / "venvs"))
    assert f"no network volume at {missing}" in result.stderr
    assert "HF_HOME" not in env and not missing.exists()

    disabled = run_boot(boot_env("", local))
    assert disabled.returncode == 0, disabled.stderr
    assert "NETWORK_VOLUME_PATH is empty" in disabled.stderr
    assert exports(disabled)["F5_VENV"] == env["F5_VENV"]


def test_venv_baked_into_the_image_is_used_even_with_a_volume(area):
    volume, local = area
    baked = exports(run_boot(boot_env("", local)))  # what Dockerfile.runpod does with BAKE_VENV=1
    result = run_boot(boot_env(volume, local))
    assert result.returncode == 0, result.stderr
    env = exports(result)
    assert env["F5_VENV"] == baked["F5_VENV"]
    assert "baked into the image" in result.stderr
    assert "phase=create-venv" not in result.stderr
    assert env["HF_HOME"].startswith(str(volume)), "model caches still go to the volume"
    assert not any(venvs_dir(volume).glob("py*"))


# ------------------------------------------------------------------ failures


def test_failed_verification_publishes_nothing(area):
    volume, local = area
    result = run_boot(boot_env(volume, local, F5_VENV_VERIFY_IMPORTS="numpy,not_a_real_module"))
    assert result.returncode == 1
    assert "ERROR: the new venv failed verification: ModuleNotFoundError: No module named " \
           "'not_a_real_module'" in result.stderr
    assert "fix:" in result.stderr and result.stdout == ""
    assert not any(venvs_dir(volume).glob("py*")) and leftovers(volume) == []


def test_missing_uv_is_a_clear_error(area):
    volume, local = area
    result = run_boot(boot_env(volume, local, F5_UV="/nonexistent/uv"))
    assert result.returncode == 1
    assert "ERROR: /nonexistent/uv not found" in result.stderr
    assert "fix: the image must provide uv" in result.stderr


def test_missing_lock_is_a_clear_error(area, tmp_path):
    volume, local = area
    result = run_boot(boot_env(volume, local, app=tmp_path / "empty-app"))
    assert result.returncode == 1
    assert "uv.lock is missing" in result.stderr


def in_private_mount(volume: Path, mount_options: str, env: dict) -> subprocess.CompletedProcess:
    """Run a boot with a tmpfs mounted on ``volume`` in a private mount namespace (gone afterwards)."""
    shell = (f"mount -t tmpfs -o {mount_options} tmpfs {volume} && "
             f"exec {BASE_PYTHON} {SETUP_VENV}")
    return subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", shell], env=env,
                          capture_output=True, text=True, timeout=180)


def can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(not can_unshare(), reason="needs unshare (user + mount namespaces) for tmpfs")


@needs_unshare
def test_read_only_volume_is_a_clear_error(area):
    volume, local = area
    result = in_private_mount(volume, "ro,size=10m", boot_env(volume, local))
    assert result.returncode == 2, result.stderr
    assert f"ERROR: the volume at {volume} is read-only" in result.stderr
    assert "fix: attach the network volume read-write, or set NETWORK_VOLUME_PATH=''" in result.stderr
    assert result.stdout == ""


@needs_unshare
def test_volume_without_room_for_a_venv_is_refused_up_front(area):
    volume, local = area
    result = in_private_mount(volume, "size=4m", boot_env(volume, local, F5_VENV_MIN_FREE_MB="500"))
    assert result.returncode == 2, result.stderr
    assert "MB free; building the venv needs about 500 MB" in result.stderr
    assert "fix: free space" in result.stderr


@needs_unshare
def test_volume_filling_up_mid_install_is_a_clear_error(area):
    volume, local = area
    result = in_private_mount(volume, "size=6m", boot_env(volume, local, F5_VENV_MIN_FREE_MB="0"))
    assert result.returncode == 2, result.stderr
    assert "filled up while installing packages" in result.stderr or "is full" in result.stderr
    assert "fix: free space" in result.stderr
    assert result.stdout == ""


# ---------------------------------------------------------------- real lock


@pytest.mark.slow
def test_real_project_lock_builds_and_imports_torch_f5_tts_runpod(tmp_path):
    """The project's own uv.lock, default verification (torch, f5_tts, runpod)."""
    volume = tmp_path / "volume"
    volume.mkdir()
    env = boot_env(volume, tmp_path / "local", app=REPO, F5_VENV_MIN_FREE_MB="9000")
    env.pop("F5_VENV_VERIFY_IMPORTS")
    try:
        result = run_boot(env, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        built = exports(result)
        marker = json.loads((Path(built["F5_VENV"]) / ".f5-worker-venv.json").read_text())
        assert set(marker["verified"]["modules"]) == {"torch", "f5_tts", "runpod"}
        assert marker["verified"]["modules"]["torch"].startswith("2.9.1")
        check = subprocess.run([built["F5_VENV_PYTHON"], "-c", "import torch, f5_tts, runpod, soundfile, pydantic"],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr

        # A venv built without a GPU is CUDA-checked on its first boot that needs CUDA.
        has_cuda = subprocess.run([built["F5_VENV_PYTHON"], "-c", "import torch; print(torch.cuda.is_available())"],
                                  capture_output=True, text=True).stdout.strip() == "True"
        env["F5_VENV_REQUIRE_CUDA"] = "1"
        gpu_boot = run_boot(env, timeout=600)
        assert "phase=verify CUDA (F5_VENV_REQUIRE_CUDA=1)" in gpu_boot.stderr
        if has_cuda:
            assert gpu_boot.returncode == 0, gpu_boot.stderr[-3000:]
        else:
            assert gpu_boot.returncode == 1
            assert "ERROR: CUDA is required (F5_VENV_REQUIRE_CUDA=1) but torch 2.9.1" in gpu_boot.stderr
            assert "cannot use it (torch.cuda.is_available() is False)" in gpu_boot.stderr
            assert "fix: the host driver is probably older than CUDA" in gpu_boot.stderr
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_venv_running_workers_use_is_never_deleted_to_rebuild_it(area):
    """Its check can fail here for a passing reason (a refused fork, a slow volume); deleting it would pull
    the files from under every worker that runs from it (start.sh holds its use lock shared)."""
    volume, local = area
    env = exports(run_boot(boot_env(volume, local)))
    venv = Path(env["F5_VENV"])
    marker = venv / ".f5-worker-venv.json"
    saved = marker.read_bytes()
    marker.unlink()  # what this boot's check sees; the running worker below is fine
    fd = os.open(env["F5_VENV_USE_LOCK"], os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        result = run_boot(boot_env(volume, local))
        assert result.returncode == 1, result.stderr
        assert "but running workers are using it" in result.stderr and "fix:" in result.stderr
        assert (venv / "bin" / "python").exists(), "in use: must not be deleted"
    finally:
        os.close(fd)
    marker.write_bytes(saved)
    assert run_boot(boot_env(volume, local)).returncode == 0
    marker.unlink()
    result = run_boot(boot_env(volume, local))  # nobody uses it now: rebuilt as before
    assert result.returncode == 0 and "unusable (no ready marker" in result.stderr
    assert leftovers(volume) == []


@needs_unshare
def test_a_full_volume_still_boots_workers_whose_venv_is_ready(area):
    """Caches, voices and results fill the volume too; reusing a ready venv needs no room, only a build does."""
    volume, local = area
    fill = volume / "f5-worker" / "filler"
    shell = (f"mount -t tmpfs -o size=200m tmpfs {volume} && "
             f"{BASE_PYTHON} {SETUP_VENV} > /dev/null && "  # builds the venv on the volume
             f"(dd if=/dev/zero of={fill} bs=1M 2>/dev/null; true) && "
             f"exec {BASE_PYTHON} {SETUP_VENV}")
    result = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", shell],
                            env=boot_env(volume, local), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"WARNING: the volume at {volume} is full" in result.stderr
    assert "is ready; reusing it" in result.stderr
    assert "export F5_VENV_PYTHON=" in result.stdout


@pytest.mark.parametrize("name, value", [
    ("F5_VENV_KEEP", "nan"), ("F5_VENV_KEEP", "inf"), ("F5_VENV_LOCK_TIMEOUT_S", "nan"),
    ("F5_VENV_LOCK_TIMEOUT_S", "-1"), ("F5_VENV_VERIFY_TIMEOUT_S", "inf"), ("F5_VENV_PRUNE_IDLE_HOURS", "-5"),
    ("F5_VENV_MIN_FREE_MB", "nan"),
])
def test_a_boot_number_that_is_no_count_or_length_ends_the_boot_naming_it(area, name, value):
    """F5_VENV_KEEP=nan or inf ended the boot with a Python traceback (int() of it); a lock timeout of nan made a
    worker wait for ever on a lock another worker holds, and a negative one built beside the holder at once; a
    negative idle time pruned every other venv at once, a nan free space skipped the check. Each is now the
    boot's ERROR and fix lines, before anything is touched."""
    volume, local = area
    result = run_boot(boot_env(volume, local, **{name: value}))
    assert result.returncode == 1, result.stderr
    assert f"ERROR: {name}={value!r} is not a number, 0 or more" in result.stderr
    assert f"fix: set {name} to a number, 0 or more, or unset it" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert list(volume.iterdir()) == []


@needs_unshare
def test_a_read_only_volume_stops_the_boot_even_with_its_venv_ready(area):
    """Only a full volume lets a worker whose venv is ready boot on (reusing a venv needs no room). On a
    read-only one the boot said it went on, then failed to open the venv's use lock with a bare OSError and
    the advice that the next boot retries, which it never could."""
    volume, local = area
    shell = (f"mount -t tmpfs -o size=200m tmpfs {volume} && "
             f"{BASE_PYTHON} {SETUP_VENV} > /dev/null 2>&1 && "  # builds the venv on the volume
             f"mount -o remount,ro {volume} && "
             f"exec {BASE_PYTHON} {SETUP_VENV}")
    result = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", shell],
                            env=boot_env(volume, local), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"ERROR: the volume at {volume} is read-only" in result.stderr
    assert "fix: attach the network volume read-write, or set NETWORK_VOLUME_PATH=''" in result.stderr
    assert "goes on" not in result.stderr and result.stdout == ""


@needs_unshare
def test_a_venv_baked_into_the_image_boots_beside_a_read_only_volume(area):
    """The volume then holds only the caches: the boot warns, and the worker runs from the image's venv."""
    volume, local = area
    baked = exports(run_boot(boot_env("", local)))
    result = in_private_mount(volume, "ro,size=10m", boot_env(volume, local))
    assert result.returncode == 0, result.stderr
    assert f"WARNING: the volume at {volume} is read-only" in result.stderr
    assert exports(result)["F5_VENV"] == baked["F5_VENV"]
