#!/usr/bin/env python3
"""Build or activate the worker's Python venv, crash-safe on a shared network volume.

Runs before any venv exists, so it uses the standard library only.

Every worker of a RunPod endpoint mounts the same network volume, often booting
at the same moment. The venv (torch, f5-tts, runpod: ~8 GB) lives on that volume
so the image stays small. This program makes sure that:

* a venv is keyed by a hash of ``uv.lock``, the interpreter (version and path),
  the platform and the CUDA flavour, so images never share an incompatible venv;
* one worker builds while the others wait on an exclusive file lock
  (``fcntl.flock``, released by the kernel when the holder dies);
* the build happens in a private temporary directory, is verified (imports,
  CUDA when a GPU is present), gets its ready marker, and only then is renamed
  into place atomically, so a killed build never leaves a venv anyone would use;
* old venvs are pruned (keeping the newest N, never one in use);
* every failure is a clear message and a non-zero exit.

Output: ``export NAME=value`` lines on stdout (``eval`` them, as
``scripts/boot/start.sh`` does); the log goes to stderr. ``--check`` reports the
state without changing anything. docs/configuration.md lists the settings.

Changes: builds the venv under <NETWORK_VOLUME_PATH>/f5-worker/venvs (F5_LOCAL_ROOT without a volume)
when none is ready for this uv.lock, deletes dead builders' leftovers and prunes old unused venvs there;
nothing with --check. Exit status: 0 ready, 1 build or tool failure, 2 volume unusable, 3 (--check) not
built yet.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

# Bump when the way a venv is built changes, so old builds are not reused.
BUILDER_VERSION = "1"
MARKER_NAME = ".f5-worker-venv.json"
LAST_USED_NAME = ".f5-worker-last-used"
DEFAULT_VERIFY_IMPORTS = "torch,f5_tts,runpod"

EXIT_ERROR = 1          # build or verification failed, or a tool is missing
EXIT_VOLUME = 2         # the volume is unusable (read-only, full, not a directory)
EXIT_NOT_READY = 3      # --check only: no ready venv for this image yet

_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[setup-venv +{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


class BootError(Exception):
    """A failure with what went wrong and what to do about it."""

    def __init__(self, problem: str, fix: str, code: int = EXIT_ERROR, *, full: bool = False):
        super().__init__(problem)
        self.problem = problem
        self.fix = fix
        self.code = code
        self.full = full  # the volume is out of room: a boot that need not build may go on


# --------------------------------------------------------------------- settings


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _env_float(name: str, default: float) -> float:
    """A count, a length of time or a size: a finite number, 0 or more (nan would make a wait endless)."""
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not 0 <= value < float("inf"):
        raise BootError(f"{name}={raw!r} is not a number, 0 or more", f"set {name} to a number, 0 or more, or unset it")
    return value


@dataclass(frozen=True)
class Config:
    """Every knob, from the environment (docs/configuration.md)."""

    volume: Path | None          # None: NETWORK_VOLUME_PATH set to "" (volume disabled)
    app_dir: Path
    local_root: Path
    verify_imports: tuple[str, ...]
    require_cuda: str             # auto | 1 | 0
    keep: int
    prune_idle_s: float
    lock_timeout_s: float
    verify_timeout_s: float
    min_free_mb: float
    uv: str

    @classmethod
    def from_env(cls) -> Config:
        raw_volume = os.environ.get("NETWORK_VOLUME_PATH", "/runpod-volume").strip()
        imports = tuple(m.strip() for m in _env("F5_VENV_VERIFY_IMPORTS", DEFAULT_VERIFY_IMPORTS).split(",") if m.strip())
        require_cuda = _env("F5_VENV_REQUIRE_CUDA", "auto").lower()
        if require_cuda not in ("auto", "1", "0"):
            raise BootError(f"F5_VENV_REQUIRE_CUDA={require_cuda!r} is not auto, 1 or 0", "use auto, 1 or 0")
        return cls(
            volume=Path(raw_volume) if raw_volume else None,
            app_dir=Path(_env("F5_APP_DIR", str(Path(__file__).resolve().parent))),
            local_root=Path(_env("F5_LOCAL_ROOT", "/opt/f5-worker")),
            verify_imports=imports,
            require_cuda=require_cuda,
            keep=max(1, int(_env_float("F5_VENV_KEEP", 3))),
            prune_idle_s=_env_float("F5_VENV_PRUNE_IDLE_HOURS", 72) * 3600,
            lock_timeout_s=_env_float("F5_VENV_LOCK_TIMEOUT_S", 2400),
            verify_timeout_s=_env_float("F5_VENV_VERIFY_TIMEOUT_S", 900),
            min_free_mb=_env_float("F5_VENV_MIN_FREE_MB", 12000),
            uv=_env("F5_UV", shutil.which("uv") or os.environ.get("UV") or "uv"),  # uv run sets $UV
        )


# ------------------------------------------------------------------ venv key


def base_interpreter() -> Path:
    """The real interpreter the venv will link to (not a venv's python symlink)."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable))


def cuda_flavour() -> str:
    """The image's CUDA flavour, e.g. ``cu128``; ``nocuda`` on images without CUDA."""
    explicit = os.environ.get("F5_CUDA_FLAVOUR", "").strip()
    if explicit:
        return explicit
    version = os.environ.get("CUDA_VERSION", "").strip()  # set by nvidia/cuda base images
    if version:
        parts = version.split(".")
        return "cu" + "".join(parts[:2])
    return "nocuda"


def venv_key(lock_path: Path) -> tuple[str, dict]:
    """A short, readable key and the facts it hashes."""
    lock_sha = hashlib.sha256(lock_path.read_bytes()).hexdigest()
    libc = "-".join(platform.libc_ver()) or "unknown-libc"
    facts = {
        "builder": BUILDER_VERSION,
        "lock_sha256": lock_sha,
        "python": platform.python_implementation() + "-" + platform.python_version(),
        "interpreter": str(base_interpreter()),
        "platform": sysconfig.get_platform(),
        "libc": libc,
        "cuda": cuda_flavour(),
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    py = "py" + "".join(platform.python_version_tuple()[:2])
    return f"{py}-{facts['cuda']}-{digest}", facts


# ------------------------------------------------------------- owner tokens


def host_tag() -> str:
    """Who can see whose pids: the hostname plus the pid namespace (containers may share a hostname)."""
    try:
        pid_namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}|{pid_namespace}".encode()).hexdigest()[:8]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_is_gone(name: str, age_s: float, stale_after_s: float) -> bool:
    """Whether a ``.tmp-*``/``.trash-*`` dir named ``...--<pid>-<host>`` has no live owner.

    Same host: the owner pid is checked. Another host (another container):
    its pid cannot be seen, so the directory counts as abandoned once it is
    older than ``stale_after_s``.
    """
    try:
        pid_s, host = name.rsplit("--", 1)[1].split("-", 1)
        pid = int(pid_s)
    except (IndexError, ValueError):
        return age_s > stale_after_s
    if host == host_tag():
        return not pid_alive(pid)
    return age_s > stale_after_s


def owner_suffix() -> str:
    return f"--{os.getpid()}-{host_tag()}"


# ------------------------------------------------------------------- locks


class FileLock:
    """``fcntl.flock`` on a lock file; the kernel drops it when the holder dies."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None
        self.supported = True

    def acquire(self, shared: bool, timeout_s: float, what: str) -> bool:
        """Take the lock; False after timeout_s, or when the filesystem has no locks."""
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = time.monotonic() + timeout_s
        next_note = time.monotonic() + 15
        waited = False
        while True:
            try:
                fcntl.flock(self.fd, mode)
                if waited:
                    log(f"{what}: lock acquired")
                return True
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    log(f"{what}: filesystem has no file locks ({exc.strerror}); going on without one "
                        "(safe: builds go to private directories and are renamed into place atomically)")
                    self.supported = False
                    return False
                raise
            now = time.monotonic()
            if timeout_s > 0 and (not waited or now >= next_note):
                log(f"{what}: waiting for {self.holder()}")
                next_note = now + 30
                waited = True
            if now >= deadline:
                return False
            time.sleep(0.25)

    def holder(self) -> str:
        """Who holds the lock, as written by them (for the log)."""
        try:
            info = json.loads(self.path.read_text() or "{}")
            since = time.strftime("%H:%M:%S", time.gmtime(info["since"]))
            return f"worker {info['hostname']} pid {info['pid']} (building since {since} UTC)"
        except (OSError, ValueError, KeyError, TypeError):
            return "another worker"

    def write_holder(self) -> None:
        if self.fd is None:
            return
        info = json.dumps({"hostname": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, info.encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


# --------------------------------------------------------------- the layout


@dataclass(frozen=True)
class Layout:
    """Where things live under one root (the volume's ``f5-worker/`` or local disk)."""

    root: Path
    on_volume: bool

    @property
    def venvs(self) -> Path:
        return self.root / "venvs"

    @property
    def locks(self) -> Path:
        return self.venvs / ".locks"

    @property
    def uv_cache(self) -> Path:
        return self.root / "uv-cache"

    @property
    def hf_home(self) -> Path:
        return self.root / "cache" / "huggingface"

    @property
    def torch_home(self) -> Path:
        return self.root / "cache" / "torch"

    @property
    def inductor_cache(self) -> Path:
        return self.root / "cache" / "torchinductor"

    def venv(self, key: str) -> Path:
        return self.venvs / key

    def build_lock(self, key: str) -> Path:
        return self.locks / f"{key}.build.lock"

    def use_lock(self, key: str) -> Path:
        return self.locks / f"{key}.use.lock"


def read_marker(venv: Path) -> dict | None:
    try:
        return json.loads((venv / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None


def quick_check(venv: Path, key: str) -> str | None:
    """Why this venv can't be used by this interpreter, or None if it can."""
    marker = read_marker(venv)
    if marker is None:
        return f"no ready marker {MARKER_NAME}"
    if marker.get("key") != key:
        return f"marker key {marker.get('key')!r} != {key!r}"
    if marker.get("interpreter") != str(base_interpreter()):
        return f"built for interpreter {marker.get('interpreter')}, not {base_interpreter()}"
    python = venv / "bin" / "python"
    try:
        run = subprocess.run([str(python), "-c", "import sys; print(sys.prefix)"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python} does not run: {exc}"
    if run.returncode != 0:
        return f"{python} does not run: {run.stderr.strip()[-300:]}"
    return None


def record_verification(venv: Path, report: dict) -> None:
    """Update the marker's verification report (write aside, then rename: never half a marker)."""
    marker = read_marker(venv) or {}
    marker["verified"] = report
    aside = venv / f"{MARKER_NAME}{owner_suffix()}"
    with contextlib.suppress(OSError):
        aside.write_text(json.dumps(marker, indent=1))
        os.replace(aside, venv / MARKER_NAME)


def touch_last_used(venv: Path) -> None:
    with contextlib.suppress(OSError):
        (venv / LAST_USED_NAME).write_text(json.dumps(
            {"hostname": socket.gethostname(), "pid": os.getpid(), "at": time.time()}))


def last_used(venv: Path) -> float:
    for name in (LAST_USED_NAME, MARKER_NAME):
        with contextlib.suppress(OSError):
            return (venv / name).stat().st_mtime
    with contextlib.suppress(OSError):
        return venv.stat().st_mtime
    return 0.0


def move_aside(path: Path) -> Path | None:
    """Rename a directory to ``.trash-*`` (atomic: nobody can start using it after this)."""
    trash = path.parent / f".trash-{path.name}{owner_suffix()}"
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log(f"could not move {path} aside ({exc.strerror}); leaving it")
        return None
    return trash


# ------------------------------------------------------------------ volume


def volume_error(exc: OSError, where: Path, doing: str) -> BootError:
    """Turn a write failure on the volume into a message that says what to do."""
    if exc.errno == errno.EROFS:
        return BootError(
            f"the volume at {where} is read-only ({doing}: {exc.strerror})",
            "attach the network volume read-write, or set NETWORK_VOLUME_PATH='' to build the venv "
            "on the container disk instead", EXIT_VOLUME)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BootError(
            f"the volume at {where} is full ({doing}: {exc.strerror})",
            f"free space (old venvs under {where}/f5-worker/venvs, see `setup_network_venv.py --check`) "
            "or grow the network volume", EXIT_VOLUME, full=True)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return BootError(
            f"no permission to write to {where} ({doing}: {exc.strerror})",
            "run the worker as a user that may write to the volume, or fix the volume's permissions",
            EXIT_VOLUME)
    return BootError(f"cannot use {where} ({doing}: {exc.strerror or exc})",
                     "check that the volume is mounted and healthy", EXIT_VOLUME)


def prepare_root(layout: Layout, label: Path) -> None:
    """Create the directories and prove the root is writable (a clear error if not)."""
    try:
        for directory in (layout.venvs, layout.locks, layout.uv_cache, layout.hf_home, layout.torch_home):
            directory.mkdir(parents=True, exist_ok=True)
        probe = layout.venvs / f".write-probe{owner_suffix()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise volume_error(exc, label, f"writing {layout.root}") from None


def check_free_space(layout: Layout, cfg: Config, label: Path) -> None:
    if cfg.min_free_mb <= 0:
        return
    stat = os.statvfs(layout.venvs)
    free_mb = stat.f_bavail * stat.f_frsize / 2**20
    if free_mb < cfg.min_free_mb:
        raise BootError(
            f"the volume at {label} has {free_mb:.0f} MB free; building the venv needs about "
            f"{cfg.min_free_mb:.0f} MB (F5_VENV_MIN_FREE_MB)",
            f"free space (old venvs under {layout.venvs}, see `setup_network_venv.py --check`) or grow the volume",
            EXIT_VOLUME)


# ------------------------------------------------------------------- build


def run_logged(cmd: list[str], env: dict, what: str) -> tuple[int, list[str]]:
    """Run a tool, streaming its output into the log; returns (exit code, last lines)."""
    tail: collections.deque[str] = collections.deque(maxlen=60)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    except FileNotFoundError:
        raise BootError(f"{cmd[0]} not found ({what})",
                        "the image must provide uv (Dockerfile.runpod installs it); or set F5_UV to its path") from None
    installed = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail.append(line)
        if line.startswith(" + "):
            installed += 1  # one line per package: counted, not echoed
            continue
        print(f"    {line}", file=sys.stderr, flush=True)
    code = proc.wait()
    if installed:
        log(f"{what}: {installed} packages installed")
    return code, list(tail)


def uv_env(cfg: Config, layout: Layout) -> dict:
    env = dict(os.environ)
    env.setdefault("UV_CACHE_DIR", str(layout.uv_cache))
    env["UV_PYTHON_DOWNLOADS"] = "never"  # the venv must use the image's interpreter
    env["UV_NO_PROGRESS"] = "1"
    env.pop("VIRTUAL_ENV", None)
    if "UV_LINK_MODE" not in env:
        # Hard links from the cache are instant, but only within one mount
        # (bind mounts of one filesystem count as two) on filesystems that have them.
        env["UV_LINK_MODE"] = "hardlink" if can_hardlink(Path(env["UV_CACHE_DIR"]), layout.venvs) else "copy"
    return env


def can_hardlink(source_dir: Path, target_dir: Path) -> bool:
    """Try it: make a file in source_dir and link it into target_dir."""
    source = source_dir / f".link-probe{owner_suffix()}"
    target = target_dir / f".link-probe{owner_suffix()}"
    try:
        source_dir.mkdir(parents=True, exist_ok=True)
        source.write_bytes(b"")
        os.link(source, target)
        return True
    except OSError:
        return False
    finally:
        for path in (source, target):
            with contextlib.suppress(OSError):
                path.unlink()


def failure_hint(tail: list[str], layout: Layout) -> BootError | None:
    text = "\n".join(tail)
    if "No space left on device" in text or "os error 28" in text or "Disk quota exceeded" in text:
        return BootError(f"the disk under {layout.root} filled up while installing packages",
                         f"free space (old venvs under {layout.venvs}) or grow the volume", EXIT_VOLUME)
    if "Read-only file system" in text or "os error 30" in text:
        return BootError(f"{layout.root} became read-only while installing packages",
                         "attach the network volume read-write", EXIT_VOLUME)
    return None


def gpu_present() -> str | None:
    """What shows a GPU is attached (a device node), or None."""
    nodes = sorted(str(p) for p in Path("/dev").glob("nvidia[0-9]*")) + ["/dev/nvidiactl"]
    for node in nodes:
        if os.path.exists(node):
            return node
    return None


def cuda_required(cfg: Config) -> str | None:
    """Why the venv's torch must see CUDA here (a GPU, or F5_VENV_REQUIRE_CUDA=1), or None."""
    if cfg.require_cuda == "1":
        return "F5_VENV_REQUIRE_CUDA=1"
    if cfg.require_cuda == "auto":
        return gpu_present()
    return None


def cuda_verified(venv: Path) -> bool:
    marker = read_marker(venv) or {}
    return bool(((marker.get("verified") or {}).get("cuda") or {}).get("available"))


VERIFY_SCRIPT = r"""
import importlib, json, sys
report = {"modules": {}, "python": sys.version.split()[0], "prefix": sys.prefix}
for name in sys.argv[1].split(","):
    if name:
        module = importlib.import_module(name)
        report["modules"][name] = str(getattr(module, "__version__", "?"))
if "torch" in sys.modules:
    import torch
    available = torch.cuda.is_available()
    report["cuda"] = {"available": available, "torch_cuda": torch.version.cuda,
                      "devices": torch.cuda.device_count() if available else 0}
print("VERIFY-REPORT " + json.dumps(report))
"""


def verify(venv: Path, cfg: Config) -> dict:
    """Import the must-have modules with the new venv's python; check CUDA if a GPU is present."""
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["VIRTUAL_ENV"] = str(venv)
    try:
        run = subprocess.run([str(python), "-c", VERIFY_SCRIPT, ",".join(cfg.verify_imports)],
                             capture_output=True, text=True, timeout=cfg.verify_timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise BootError(f"verifying the new venv took over {cfg.verify_timeout_s:.0f}s (importing "
                        f"{', '.join(cfg.verify_imports)})",
                        "check the volume's speed; raise F5_VENV_VERIFY_TIMEOUT_S if it is just slow") from None
    report = None
    for line in run.stdout.splitlines():
        if line.startswith("VERIFY-REPORT "):
            report = json.loads(line[len("VERIFY-REPORT "):])
    if run.returncode != 0 or report is None:
        lines = [line for line in run.stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit code {run.returncode}"
        for line in lines[-15:]:
            print(f"    {line}", file=sys.stderr)
        raise BootError(
            f"the new venv failed verification: {last}",
            "the lock installs an incomplete or broken environment: fix pyproject.toml/uv.lock "
            "(`uv lock`) and rebuild the image. Nothing was published; the next boot retries from scratch.")
    cuda = report.get("cuda")
    need_cuda = cuda_required(cfg)
    if need_cuda and cuda is not None and not cuda["available"]:
        raise BootError(
            f"CUDA is required ({need_cuda}) but torch {report['modules'].get('torch')} "
            f"built for CUDA {cuda['torch_cuda']} cannot use it (torch.cuda.is_available() is False)",
            f"the host driver is probably older than CUDA {cuda['torch_cuda']}: restrict the endpoint to "
            "GPUs whose CUDA version is at least that (allowedCudaVersions), or set F5_VENV_REQUIRE_CUDA=0 "
            "to accept a CPU-only venv")
    if need_cuda and cuda is None:
        log("GPU present but torch is not in F5_VENV_VERIFY_IMPORTS; CUDA not checked")
    return report


def build(key: str, facts: dict, layout: Layout, cfg: Config, label: Path) -> None:
    """Build, verify and publish ``venvs/<key>``; the caller holds the build lock."""
    lock_file = cfg.app_dir / "uv.lock"
    if not (cfg.app_dir / "pyproject.toml").is_file():
        raise BootError(f"{cfg.app_dir / 'pyproject.toml'} is missing",
                        "set F5_APP_DIR to the directory holding pyproject.toml and uv.lock")
    check_free_space(layout, cfg, label)
    tmp = layout.venvs / f".tmp-{key}{owner_suffix()}"
    final = layout.venv(key)
    env = uv_env(cfg, layout)
    started = time.monotonic()
    log(f"phase=create-venv building {final.name} in {tmp.name} (uv cache {env['UV_CACHE_DIR']}, "
        f"link mode {env['UV_LINK_MODE']})")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        code, tail = run_logged([cfg.uv, "venv", "--quiet", "--relocatable", "--python", str(base_interpreter()),
                                 str(tmp)], env, "uv venv")
        if code != 0:
            raise failure_hint(tail, layout) or BootError(
                f"`uv venv` failed (exit {code}): {tail[-1] if tail else ''}",
                f"the interpreter {base_interpreter()} must be Python 3.11 or 3.12; see the uv output above")
        requirements = tmp / ".requirements.txt"
        log("phase=export requirements from uv.lock")
        code, tail = run_logged([cfg.uv, "export", "--quiet", "--frozen", "--no-dev", "--no-hashes",
                                 "--no-emit-project", "--project", str(cfg.app_dir), "-o", str(requirements)],
                                env, "uv export")
        if code != 0:
            raise failure_hint(tail, layout) or BootError(
                f"`uv export --frozen` of {lock_file} failed (exit {code}): {tail[-1] if tail else ''}",
                "the image's uv.lock does not match pyproject.toml or uv is too old for it: run `uv lock` "
                "and rebuild the image")
        log("phase=install packages into the new venv")
        code, tail = run_logged([cfg.uv, "pip", "sync", "--python", str(tmp / "bin" / "python"),
                                 str(requirements)], env, "uv pip sync")
        if code != 0:
            raise failure_hint(tail, layout) or BootError(
                f"installing the locked packages failed (exit {code}): {tail[-1] if tail else ''}",
                "see the uv output above: a network error (PyPI unreachable) is retried by the next boot; "
                "a resolution error means uv.lock needs `uv lock`")
        log("phase=verify imports " + ", ".join(cfg.verify_imports))
        report = verify(tmp, cfg)
        marker = {"key": key, **facts, "built_at": time.time(), "built_by": socket.gethostname(),
                  "build_seconds": round(time.monotonic() - started, 1), "verified": report}
        (tmp / MARKER_NAME).write_text(json.dumps(marker, indent=1))
        log("phase=publish rename into place")
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and quick_check(final, key) is None:
                log(f"{final.name} was published by another worker meanwhile; using it")
                shutil.rmtree(tmp, ignore_errors=True)
                return
            raise
        log(f"built {final.name} in {time.monotonic() - started:.1f}s")
    except BootError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise volume_error(exc, label, "building the venv") from None


def collect_garbage(layout: Layout, key: str, cfg: Config) -> None:
    """Delete temp and trash dirs whose owner died (killed builds, interrupted prunes)."""
    stale_after = max(cfg.lock_timeout_s * 2, 3600)
    now = time.time()
    for entry in layout.venvs.iterdir():
        if not (entry.name.startswith(".tmp-") or entry.name.startswith(".trash-")):
            continue
        try:
            age = now - entry.stat().st_mtime
        except OSError:
            continue
        if owner_is_gone(entry.name, age, stale_after):
            log(f"removing leftover {entry.name} (its owner is gone)")
            shutil.rmtree(entry, ignore_errors=True)


def prune(layout: Layout, key: str, cfg: Config) -> None:
    """Keep the newest N venvs (by last use); delete older ones that nobody uses."""
    venvs = [p for p in layout.venvs.iterdir() if p.is_dir() and not p.name.startswith(".")]
    venvs.sort(key=last_used, reverse=True)
    keep = {p.name for p in venvs[:cfg.keep]} | {key}
    now = time.time()
    for venv in venvs:
        if venv.name in keep:
            continue
        idle = now - last_used(venv)
        if idle < cfg.prune_idle_s:
            continue
        lock = FileLock(layout.use_lock(venv.name))
        trash = None
        try:
            # A worker using that venv holds the use lock shared for its whole life.
            if not lock.acquire(shared=False, timeout_s=0, what=f"prune {venv.name}") and lock.supported:
                log(f"keeping old venv {venv.name}: in use")
                continue
            if time.time() - last_used(venv) < cfg.prune_idle_s:
                continue  # activated while we were taking the lock
            log(f"pruning old venv {venv.name} (idle {idle / 3600:.1f} h)")
            trash = move_aside(venv)
        except OSError as exc:
            log(f"could not prune {venv.name}: {exc}")
        finally:
            lock.release()
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)  # slow on a network volume: not under the lock


# --------------------------------------------------------------- activation


def ensure_cuda(venv: Path, cfg: Config) -> None:
    """A venv built where no GPU was (an image build, a CPU worker) is CUDA-checked once where one is."""
    reason = cuda_required(cfg)
    if reason and "torch" in cfg.verify_imports and not cuda_verified(venv):
        log(f"phase=verify CUDA ({reason}): the venv was built without a GPU")
        record_verification(venv, verify(venv, cfg))


def move_aside_unused(venv: Path, layout: Layout, key: str, problem: str) -> None:
    """Remove a venv that fails its check here, unless running workers use it (their start.sh holds its
    use lock shared): it evidently works for them, and the check may have failed for a passing reason
    (a fork refused, a slow volume). Deleting it would pull the files from under every one of them."""
    use = FileLock(layout.use_lock(key))
    if not use.acquire(shared=False, timeout_s=0, what="use lock, to rebuild") and use.supported:
        raise BootError(
            f"venv {venv.name} does not work here ({problem}), but running workers are using it",
            "this boot stops rather than delete it under them; if it persists once they have stopped, "
            "the next boot rebuilds it")
    try:
        log(f"venv {venv.name} is unusable ({problem}); moving it aside and rebuilding")
        trash = move_aside(venv)
    finally:
        use.release()
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)  # slow on a network volume: not under the lock


def activate(layout: Layout, key: str, facts: dict, label: Path, cfg: Config) -> Path:
    """Return the ready venv for this key on this layout, building it if needed."""
    venv = layout.venv(key)
    use = FileLock(layout.use_lock(key))
    try:
        # Shared use lock first, then look: a pruner (exclusive) can't remove it under us.
        use.acquire(shared=True, timeout_s=120, what="use lock")
        problem = quick_check(venv, key) if venv.exists() else "not built yet"
        if problem is None:
            log(f"venv {venv.name} is ready; reusing it")
            ensure_cuda(venv, cfg)
            touch_last_used(venv)
            return venv
    finally:
        use.release()

    build_lock = FileLock(layout.build_lock(key))
    try:
        got = build_lock.acquire(shared=False, timeout_s=cfg.lock_timeout_s, what="build lock")
        if got:
            build_lock.write_holder()
        elif build_lock.supported:
            log(f"build lock still held after {cfg.lock_timeout_s:.0f}s by {build_lock.holder()}; building "
                "without it (safe: private temp dir, atomic rename)")
        # A worker that waited uses what the builder published.
        problem = quick_check(venv, key) if venv.exists() else "not built yet"
        if problem is None:
            log(f"venv {venv.name} was built by another worker; using it")
            ensure_cuda(venv, cfg)
        else:
            if venv.exists():
                move_aside_unused(venv, layout, key, problem)
            collect_garbage(layout, key, cfg)
            build(key, facts, layout, cfg, label)
        touch_last_used(venv)
        return venv
    except OSError as exc:
        raise volume_error(exc, label, "building the venv") from None
    finally:
        build_lock.release()


def choose_layout(cfg: Config, key: str) -> tuple[Layout, Path]:
    """The volume when mounted; else the container disk (where a baked venv may be)."""
    local = Layout(cfg.local_root, on_volume=False)
    if cfg.volume is not None and cfg.volume.is_dir():
        if quick_check(local.venv(key), key) is None:
            log(f"using the venv baked into the image at {local.venv(key)} (volume only for caches)")
            return local, cfg.local_root
        return Layout(cfg.volume / "f5-worker", on_volume=True), cfg.volume
    if cfg.volume is None:
        log("NETWORK_VOLUME_PATH is empty: using the container disk")
    else:
        log(f"no network volume at {cfg.volume}: using the container disk at {cfg.local_root}")
    return local, cfg.local_root


def env_exports(venv: Path, layout: Layout, cfg: Config, key: str, volume_layout: Layout | None) -> dict:
    caches = volume_layout or layout
    exports = {
        "F5_VENV": str(venv),
        "F5_VENV_PYTHON": str(venv / "bin" / "python"),
        "F5_VENV_KEY": key,
        "F5_VENV_USE_LOCK": str(layout.use_lock(key)),
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        # The venv holds the dependencies only (it is shared by every image with this uv.lock); the
        # worker's own code is the image's, so its python finds f5_worker there, whatever it runs.
        "PYTHONPATH": os.pathsep.join(p for p in (str(cfg.app_dir), os.environ.get("PYTHONPATH", "")) if p),
    }
    # Model caches on the volume when there is one, unless the deployer chose otherwise. TORCH_COMPILE's
    # compiled kernels too: a later boot reuses them instead of compiling again (inductor writes atomically).
    if volume_layout is not None:
        for name, path in (("HF_HOME", caches.hf_home), ("TORCH_HOME", caches.torch_home),
                           ("TORCHINDUCTOR_CACHE_DIR", caches.inductor_cache)):
            exports[name] = _env(name, str(path))  # spaces alone count as unset, as the worker reads them
    return exports


def boot(cfg: Config) -> dict:
    lock_file = cfg.app_dir / "uv.lock"
    if not lock_file.is_file():
        raise BootError(f"{lock_file} is missing",
                        "the image must contain uv.lock next to pyproject.toml (F5_APP_DIR points at them)")
    key, facts = venv_key(lock_file)
    log(f"venv key {key} (python {facts['python']} at {facts['interpreter']}, {facts['platform']}, "
        f"{facts['cuda']}, lock {facts['lock_sha256'][:12]})")
    layout, label = choose_layout(cfg, key)
    volume_layout = Layout(cfg.volume / "f5-worker", True) if cfg.volume is not None and cfg.volume.is_dir() else None
    if volume_layout is not None and volume_layout != layout:
        try:
            prepare_root(volume_layout, cfg.volume)  # caches still go to the volume
        except BootError as exc:  # the venv is the image's, ready: the volume would hold caches only
            if exc.code != EXIT_VOLUME:
                raise
            log(f"WARNING: {exc.problem}; the venv {key} is baked into the image, so this boot goes on. "
                f"fix: {exc.fix}")
    try:
        prepare_root(layout, label)
    except BootError as exc:
        # A full volume (model caches, voices and results fill it too) must not stop workers whose venv
        # is ready: reusing it writes nothing that matters. Only a build needs the room. A read-only one
        # stops them: the venv's use lock (held by every worker running from it) cannot be opened there.
        if not exc.full or quick_check(layout.venv(key), key) is not None:
            raise
        log(f"WARNING: {exc.problem}; the venv {key} is ready, so this boot goes on. fix: {exc.fix}")
    venv = activate(layout, key, facts, label, cfg)
    try:
        collect_garbage(layout, key, cfg)
        prune(layout, key, cfg)
    except OSError as exc:
        log(f"cleanup skipped: {exc}")
    return env_exports(venv, layout, cfg, key, volume_layout)


# -------------------------------------------------------------------- check


def check(cfg: Config) -> int:
    """Report the state of the volume and venvs; change nothing."""
    lock_file = cfg.app_dir / "uv.lock"
    print(f"app dir:        {cfg.app_dir}")
    if not lock_file.is_file():
        print(f"uv.lock:        MISSING at {lock_file}")
        return EXIT_ERROR
    key, facts = venv_key(lock_file)
    print(f"venv key:       {key}")
    for name, value in facts.items():
        print(f"  {name + ':':14s}{value}")
    if cfg.volume is not None and cfg.volume.is_dir():
        root = cfg.volume / "f5-worker"
        writable = os.access(cfg.volume, os.W_OK) and not (os.statvfs(cfg.volume).f_flag & os.ST_RDONLY)
        free = os.statvfs(cfg.volume)
        print(f"volume:         {cfg.volume} (mounted, {'writable' if writable else 'READ-ONLY'}, "
              f"{free.f_bavail * free.f_frsize / 2**30:.1f} GiB free)")
    else:
        root = cfg.local_root
        print(f"volume:         none at {cfg.volume}; container disk {cfg.local_root}")
    layout = Layout(root, cfg.volume is not None and root != cfg.local_root)
    local_ready = quick_check(Layout(cfg.local_root, False).venv(key), key) is None
    venv = layout.venv(key)
    ready = local_ready or (venv.exists() and quick_check(venv, key) is None)
    print(f"this image:     {venv} -> {'READY' if ready else 'not built'}"
          + (f" (baked into the image at {cfg.local_root})" if local_ready else ""))
    build_lock = layout.build_lock(key)
    if build_lock.exists():
        fd = os.open(build_lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            held = False
        except OSError:
            held = True
        finally:
            os.close(fd)
        if held:
            print(f"build lock:     HELD by {FileLock(build_lock).holder()}")
    if layout.venvs.is_dir():
        now = time.time()
        for entry in sorted(layout.venvs.iterdir()):
            if entry.name == ".locks":
                continue
            if entry.name.startswith("."):
                print(f"  leftover:     {entry.name} (removed by the next build)")
                continue
            state = "ready" if read_marker(entry) else "NO MARKER"
            print(f"  venv:         {entry.name} ({state}, last used {(now - last_used(entry)) / 3600:.1f} h ago)")
    return 0 if ready else EXIT_NOT_READY


# --------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report the state; change nothing")
    args = parser.parse_args(argv)
    try:
        cfg = Config.from_env()
        if args.check:
            return check(cfg)
        exports = boot(cfg)
    except BootError as exc:
        log(f"ERROR: {exc.problem}")
        log(f"  fix: {exc.fix}")
        return exc.code
    except OSError as exc:
        log(f"ERROR: {exc}")
        log("  fix: see the message above; nothing was published, the next boot retries")
        return EXIT_ERROR
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}")
    log(f"done in {time.monotonic() - _T0:.1f}s: {exports['F5_VENV_PYTHON']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
