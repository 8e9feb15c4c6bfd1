#!/usr/bin/env python3
"""For developers: benchmark the worker against upstream F5-TTS on the same work, side by side.

Each side runs in its own fresh process, started by this command, so that cold
start (process start -> ready), first-job latency and peak memory are measured
the same way for both:

* ours: ``import runpod_handler`` (the production entry: imports runpod, loads
  the models from the environment), then synthesize jobs through ``Worker.handle``
  (or ``Worker.handle_async`` with asyncio when it exists), one after another and
  then at each concurrency level;
* upstream: ``from f5_tts.api import F5TTS``, ``F5TTS(...)`` on the same
  checkpoint files, then ``F5TTS.infer`` on the same reference, text, NFE and seed.

The RTF ratio comes from job pairs run alternately in our process after our own
figures are taken (ours, then upstream's ``F5TTS.infer``, and again), so that
load from other processes on a shared machine hits both sides alike.

Usage:
    uv run python scripts/bench/bench.py                      # tiny random model (CPU default)
    uv run python scripts/bench/bench.py --random-weights     # full-size F5TTS_v1_Base, random weights
    uv run python scripts/bench/bench.py --nfe 32 --jobs 16 --text-seconds 10 --json bench.json
    uv run python scripts/bench/bench.py --stream --text-seconds 30 --concurrency 1,4 --skip-upstream
                                                              # time to first audio, streamed vs not
    uv run python scripts/bench/bench.py --http --text-seconds 30 --concurrency 1,4 --skip-upstream
                                                              # a stream over the HTTP server vs the queue's

docs/performance.md gives the method and the latest figures.

Changes: writes the --json report and the processes' logs (--log-dir, else a temporary directory);
the model files are written on first use into --models-dir, else data/models/ (tiny: TINY_MODEL_DIR).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REF_WAV = "infer/examples/basic/basic_ref_en.wav"
REF_TEXT = "Some call me nature, others call me mother nature."
PASSAGE = (
    "I don't really care what you call me. I've been a silent spectator, watching species evolve, "
    "empires rise and fall. But always remember, I am mighty and enduring. Respect me and I'll nurture you; "
    "ignore me and you shall face the consequences. The rivers carve the valleys, and the wind shapes the "
    "stones. Every morning the light returns, and every evening it leaves again. Nothing here is in a hurry, "
    "yet everything arrives in time. Listen closely, and you will hear the forest breathing."
)
STAGES = ("reference_ms", "synthesis_ms", "vocoding_ms", "postprocess_ms", "alignment_ms", "retries_ms",
          "captions_ms", "encoding_ms", "total_ms")
# forward passes of the DiT and the vocoder (retries_ms: those of quality-gate re-samplings)
MODEL_COMPUTE_STAGES = ("synthesis_ms", "vocoding_ms", "retries_ms")


# -- shared helpers ------------------------------------------------------------------------------


def ref_wav_path() -> Path:
    from importlib.resources import files

    return Path(str(files("f5_tts").joinpath(REF_WAV)))


def bench_text(seconds: float) -> str:
    """About ``seconds`` of speech: F5-TTS sizes output from the reference's bytes per second.

    Whole words of the passage, cut before the word that would pass the target, then closed with a full stop:
    short of ``seconds`` by less than the passage's longest word and its space, long by at most that stop.
    """
    import soundfile as sf

    ref_seconds = sf.info(str(ref_wav_path())).duration
    bytes_per_second = len((REF_TEXT + " ").encode()) / ref_seconds
    target = max(1, round(seconds * bytes_per_second))
    words, text = (PASSAGE + " ") * (1 + target // len(PASSAGE)), ""
    for word in words.split():
        if len((text + " " + word).encode()) > target and text:
            break
        text = f"{text} {word}".strip()
    return text if text[-1] in ".!?" else text.rstrip(",;") + "."


def percentile(values: list[float], q: float) -> float | None:
    import numpy as np

    return float(np.percentile(values, q)) if values else None


def peak_memory() -> dict:
    import torch

    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            mem_gib = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "memory_gib": mem_gib, "python": platform.python_version(), "gpu": None}
    import torch

    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# -- child: our worker ---------------------------------------------------------------------------


def synth_job(cfg: dict, seed: int) -> dict:
    job = {
        "action": "synthesize",
        "text": cfg["text"],
        "ref_audio_base64": cfg["ref_b64"],
        "ref_text": REF_TEXT,
        "nfe_step": cfg["nfe"],
        "sway_sampling_coef": cfg["sway"],
        "seed": seed,
        "max_retries": cfg["retries"],
    }
    if not cfg["timings"]:
        job.update(word_timings=False, char_timings=False, caption_formats=[])
    return job


def run_job(worker, job: dict) -> dict:
    started = time.perf_counter()
    result = worker.handle(job, job_id=f"bench-{job['seed']}")
    return _record(result, started)


async def run_job_async(worker, job: dict) -> dict:
    started = time.perf_counter()
    result = await worker.handle_async(job, job_id=f"bench-{job['seed']}")
    return _record(result, started)


def _record(result: dict, started: float) -> dict:
    """One job's figures: the handler's own stage timing plus wall time and result serialisation."""
    wall_ms = (time.perf_counter() - started) * 1000
    if "error" in result:
        raise RuntimeError(f"benchmark job failed: {result['error']}")
    t0 = time.perf_counter()
    json.dumps(result)  # RunPod serialises every result; count it as overhead
    json_ms = (time.perf_counter() - t0) * 1000
    timing = {k: float(v) for k, v in result.get("timing", {}).items() if k.endswith("_ms")}
    return {"wall_ms": wall_ms, "json_ms": json_ms, "duration": float(result["duration"]), "timing": timing}


def run_level(worker, cfg: dict, concurrency: int, first_seed: int) -> tuple[list[dict], float]:
    """``max(cfg['jobs'], concurrency)`` jobs, at most ``concurrency`` in flight; records and wall time."""
    jobs = [synth_job(cfg, first_seed + i) for i in range(max(cfg["jobs"], concurrency))]
    started = time.perf_counter()
    if hasattr(worker, "handle_async"):
        async def main():
            gate = asyncio.Semaphore(concurrency)

            async def one(job):
                async with gate:
                    return await run_job_async(worker, job)

            return await asyncio.gather(*(one(j) for j in jobs))

        records = asyncio.run(main())
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            records = list(pool.map(lambda j: run_job(worker, j), jobs))
    return list(records), time.perf_counter() - started


def child_ours(cfg: dict) -> dict:
    import runpod_handler  # the production entry point loads the worker at import

    ready = time.time()
    worker = runpod_handler.WORKER
    aligner = worker.aligner
    out = {"ready_wall": ready, "load_seconds": worker.models.load_seconds, "device": worker.models.device,
           "dtype": str(worker.models.dtype).removeprefix("torch."),
           "aligner": aligner.backend_for("en").name if hasattr(aligner, "backend_for") else aligner.name}
    first = run_job(worker, synth_job(cfg, 0))
    out["first_job_s"] = first["wall_ms"] / 1000
    if cfg["cold_only"]:
        return out
    levels, seed = {}, 1000
    for concurrency in cfg["concurrency"]:
        records, wall = run_level(worker, cfg, concurrency, seed)
        seed += len(records)
        levels[str(concurrency)] = {"records": records, "wall_s": wall}
    out["levels"] = levels
    out["async"] = hasattr(worker, "handle_async")
    out["machine"] = machine()
    out.update(peak_memory())  # before upstream shares the process
    if cfg["stream"]:
        out["stream"] = stream_runs(worker, cfg)
    if cfg["http"]:
        out["http"] = http_runs(worker, cfg)
    if cfg["paired"]:
        out["paired"] = paired_runs(worker, cfg)
    return out


async def stream_job(worker, job: dict) -> dict:
    """One streamed job read as RunPod's streaming handler reads it: time to its first audio, and to its end."""
    started = time.perf_counter()
    first = duration = None
    played_until = stalled = 0.0  # a listener who plays each item as soon as it has come, and the one before ended
    async for item in worker.stream_async({**job, "stream": True}, job_id=f"bench-stream-{job['seed']}"):
        if "error" in item:
            raise RuntimeError(f"benchmark job failed: {item['error']}")
        now = time.perf_counter() - started
        if "audio_base64" in item:
            if first is None:
                first = played_until = now
            stalled += max(0.0, now - played_until)
            played_until = max(played_until, now) + float(item["duration"])
        if item.get("done"):
            duration = float(item["duration"])
    return {"first_audio_s": first, "total_s": time.perf_counter() - started, "duration": duration,
            "stalled_s": stalled}


def stream_runs(worker, cfg: dict) -> dict:
    """At each concurrency, rounds of that many streamed jobs and that many unstreamed ones, alternately (so
    load from other processes hits both alike): the streamed jobs' first audio and end, the others' latency."""
    async def together(coroutines):
        return await asyncio.gather(*coroutines)

    levels, seed = {}, 3000
    for concurrency in cfg["concurrency"]:
        streamed, plain = [], []
        for _ in range(max(1, cfg["jobs"] // concurrency)):
            jobs = [synth_job(cfg, seed + i) for i in range(concurrency)]
            seed += concurrency
            streamed += asyncio.run(together(stream_job(worker, j) for j in jobs))
            plain += asyncio.run(together(run_job_async(worker, j) for j in jobs))
        levels[str(concurrency)] = {"streamed": streamed, "unstreamed": plain}
    return levels


def http_stream_job(url: str, job: dict) -> dict:
    """One streamed job over the HTTP server (``POST /v1/synthesize`` with ``stream: true``, its items as
    server-sent events), read as a client reads it: time to its first audio byte, and to its last item."""
    import httpx  # its lines come as the bytes do (requests' wait for a whole block of 512)

    started = time.perf_counter()
    first = duration = None
    with httpx.stream("POST", url, json={**job, "stream": True}, timeout=3600) as response:
        if response.status_code != 200:
            raise RuntimeError(f"benchmark job failed: {response.status_code} {response.read()[:300]!r}")
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            item = json.loads(line[len("data: "):])
            if "error" in item:
                raise RuntimeError(f"benchmark job failed: {item['error']}")
            if first is None and "audio_base64" in item:
                first = time.perf_counter() - started
            if item.get("done"):
                duration = float(item["duration"])
    return {"first_audio_s": first, "total_s": time.perf_counter() - started, "duration": duration}


def http_runs(worker, cfg: dict) -> dict:
    """The worker's HTTP server (SERVE=http's app, over this process's worker, on a local port) and, at each
    concurrency, rounds of that many streamed jobs over HTTP and that many through RunPod's streaming handler
    path (``Worker.stream_async``), alternately, so load from other processes hits both alike."""
    import threading

    import uvicorn

    from f5_worker.http_server import create_app, listening_sockets

    server = uvicorn.Server(uvicorn.Config(create_app(worker=worker), log_config=None))
    sockets = listening_sockets(0, host="127.0.0.1")
    url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/v1/synthesize"
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    async def together(coroutines):
        return await asyncio.gather(*coroutines)

    levels, seed = {}, 5000
    try:
        for concurrency in cfg["concurrency"]:
            over_http, queue = [], []
            for _ in range(max(1, cfg["jobs"] // concurrency)):
                jobs = [synth_job(cfg, seed + i) for i in range(concurrency)]
                seed += concurrency
                with ThreadPoolExecutor(concurrency) as pool:
                    over_http += list(pool.map(lambda j: http_stream_job(url, j), jobs))
                queue += asyncio.run(together(stream_job(worker, j) for j in jobs))
            levels[str(concurrency)] = {"http": over_http, "queue": queue}
    finally:
        server.should_exit = True
        thread.join(60)
    return levels


def paired_runs(worker, cfg: dict) -> dict:
    """Ours and upstream's ``F5TTS.infer`` alternately in one process, so machine load hits both alike."""
    from contextlib import redirect_stdout

    with redirect_stdout(sys.stderr):
        notes = _torchaudio_load_fallback()
        tts = _upstream_tts(cfg)
        ours, upstream = [], []
        for i in range(cfg["upstream_jobs"]):
            job = synth_job(cfg, 2000 + i)
            if hasattr(worker, "handle_async"):
                ours.append(asyncio.run(run_job_async(worker, job)))
            else:
                ours.append(run_job(worker, job))
            upstream.append(_upstream_infer(tts, cfg, 2000 + i))
    return {"ours": ours, "upstream": upstream, "notes": notes}


# -- child: upstream F5TTS.infer -----------------------------------------------------------------


def child_upstream(cfg: dict) -> dict:
    from contextlib import redirect_stdout

    with redirect_stdout(sys.stderr):  # upstream prints progress; keep it in the log
        tts = _upstream_tts(cfg)
        ready = time.time()
        notes = _torchaudio_load_fallback()  # after ready: part of our setup, not of upstream's cold start
        out = {"ready_wall": ready, "device": tts.device, "notes": notes}
        out["first_job_s"] = _upstream_infer(tts, cfg, 0)["wall_ms"] / 1000
        if not cfg["cold_only"]:
            started = time.perf_counter()
            out["records"] = [_upstream_infer(tts, cfg, 1000 + i) for i in range(cfg["upstream_jobs"])]
            out["wall_s"] = time.perf_counter() - started
    out.update(peak_memory())
    return out


def _upstream_tts(cfg: dict):
    from f5_tts.api import F5TTS

    return F5TTS(model=cfg["upstream_model"], ckpt_file=cfg["ckpt"], vocab_file=cfg["vocab"],
                 vocoder_local_path=cfg["vocoder_dir"], device=cfg["device"])


def _upstream_infer(tts, cfg: dict, seed: int) -> dict:
    started = time.perf_counter()
    wave, sr, _ = tts.infer(str(ref_wav_path()), REF_TEXT, cfg["text"], show_info=lambda *a, **k: None,
                            progress=None, nfe_step=cfg["nfe"], sway_sampling_coef=cfg["sway"], seed=seed)
    return {"wall_ms": (time.perf_counter() - started) * 1000, "duration": len(wave) / sr}


def _torchaudio_load_fallback() -> list[str]:
    """Let upstream's ``torchaudio.load`` read WAV files when torchcodec cannot load.

    torchaudio 2.9 decodes only through torchcodec, which needs FFmpeg libraries;
    where they are missing, upstream's ``infer`` fails before sampling. Then we give
    ``torchaudio.load`` the soundfile decoding older torchaudio versions used (same
    tensor layout and scaling) and say so in the report.
    """
    import torchaudio

    try:
        torchaudio.load(str(ref_wav_path()))
        return []
    except (ImportError, OSError, RuntimeError) as exc:  # torchcodec missing or unable to load its libraries
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"

    import soundfile as sf
    import torch

    def load(path, *args, **kwargs):
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return torch.from_numpy(data.T.copy()), sr

    torchaudio.load = load
    return [f"torchaudio.load fell back to soundfile ({reason})"]


# -- parent: orchestration and report ------------------------------------------------------------


def spawn(side: str, cfg: dict, env: dict, log_dir: Path, cold_only: bool, timeout: float) -> dict:
    """Start a fresh interpreter for one side; cold start is measured from just before it starts."""
    result_file = log_dir / f"{side}-{time.monotonic_ns()}.json"
    child_cfg = dict(cfg, cold_only=cold_only, result_file=str(result_file))
    cfg_file = result_file.with_suffix(".config.json")
    cfg_file.write_text(json.dumps(child_cfg))
    child_env = dict(env, F5_BENCH_CHILD=str(cfg_file), F5_BENCH_SIDE=side)
    log_path = log_dir / f"{side}.log"
    with open(log_path, "a") as log:
        started = time.time()
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve())], env=child_env, cwd=str(REPO_ROOT),
                              stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    if proc.returncode != 0 or not result_file.is_file():
        tail = log_path.read_text()[-3000:]
        raise SystemExit(f"{side} benchmark process failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    out = json.loads(result_file.read_text())
    out["cold_start_s"] = out["ready_wall"] - started
    return out


def model_setup(args) -> tuple[dict, dict]:
    """The model files for both sides, and the environment our worker reads them from."""
    from importlib.resources import files

    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.setdefault("NETWORK_VOLUME_PATH", str(Path(tempfile.gettempdir()) / "f5-bench-no-volume"))
    if args.device != "auto":
        env["DEVICE"] = args.device
    if args.random_weights:
        from f5_worker.tts.tiny_models import ensure_random_models

        root = Path(args.models_dir or REPO_ROOT / "data" / "models" / f"random-{args.config}")
        paths = ensure_random_models(root, args.config)
        env.update(DEFAULT_MODEL=args.config, MODEL_CKPT_PATH=str(paths.ckpt_path),
                   MODEL_VOCAB_PATH=str(paths.vocab_path), VOCODER_PATH=str(paths.vocoder_dir))
        if args.ctc:  # ALIGNER=ctc with random weights where prefetch_models.py --english-ctc puts the real ones
            from f5_worker.tts.tiny_models import ensure_random_ctc

            ensure_random_ctc(root / "torch")
            env.update(TORCH_HOME=str(root / "torch"), ALIGNER="ctc")
        upstream_model = args.config
    else:
        from f5_worker.config import get_settings
        from f5_worker.tts.tiny_models import ensure_tiny_models

        root = Path(args.models_dir) if args.models_dir else get_settings().tiny_models_path
        paths = ensure_tiny_models(root)
        env.update(DEFAULT_MODEL="tiny", TINY_MODEL_DIR=str(root))
        # F5TTS() reads configs/<model>.yaml inside the f5_tts package; a relative name reaches our config
        # file without changing upstream's code path.
        configs = Path(str(files("f5_tts").joinpath("configs")))
        upstream_model = os.path.relpath(paths.config_path.with_suffix(""), configs)
    files_cfg = {"ckpt": str(paths.ckpt_path), "vocab": str(paths.vocab_path), "vocoder_dir": str(paths.vocoder_dir),
                 "upstream_model": upstream_model, "model_name": paths.name}
    return files_cfg, env


def stage_stats(records: list[dict]) -> dict:
    stats = {}
    for stage in STAGES:
        values = [r["timing"][stage] for r in records if stage in r["timing"]]
        if values:
            stats[stage] = {"p50": percentile(values, 50), "p95": percentile(values, 95)}
    for name in ("wall_ms", "json_ms"):
        values = [r[name] for r in records]
        stats[name] = {"p50": percentile(values, 50), "p95": percentile(values, 95)}
    return stats


def overhead(record: dict) -> tuple[float, float]:
    """Time outside model forward passes: (share of the job's time, seconds per audio second)."""
    job_ms = record["wall_ms"] + record["json_ms"]
    compute_ms = sum(record["timing"].get(s, 0.0) for s in MODEL_COMPUTE_STAGES)
    outside = max(0.0, job_ms - compute_ms)
    return outside / job_ms, outside / 1000 / record["duration"]


def build_report(args, cfg: dict, ours: dict, upstream: dict | None, extra_cold: dict) -> dict:
    level_one = ours["levels"][str(cfg["concurrency"][0])]["records"]
    paired = ours.get("paired")
    # RTF side by side: from the interleaved runs when there are some, else from the single-stream level
    rtf_records = paired["ours"] if paired else level_one
    rtfs = [r["wall_ms"] / 1000 / r["duration"] for r in rtf_records]
    # stage latency and overhead: every job that ran alone (the first level and the paired runs)
    single = level_one + (paired["ours"] if paired else [])
    shares, per_audio = zip(*(overhead(r) for r in single))
    report = {
        "model": cfg["model_name"],
        "random_weights": args.random_weights,
        "device": ours["device"],
        "dtype": ours["dtype"],
        "nfe": cfg["nfe"],
        "sway_sampling_coef": cfg["sway"],
        "jobs": cfg["jobs"],
        "word_timings_and_captions": cfg["timings"],
        "aligner": ours["aligner"],
        "max_retries": cfg["retries"],
        "text_chars": len(cfg["text"]),
        "audio_seconds": percentile([r["duration"] for r in single], 50),
        "rtf": percentile(rtfs, 50),
        "rtf_p95": percentile(rtfs, 95),
        "rtf_single_stream_level": percentile([r["wall_ms"] / 1000 / r["duration"] for r in level_one], 50),
        "single_stream_jobs": len(single),
        "overhead_fraction": percentile(list(shares), 50),
        "overhead_per_audio_second": percentile(list(per_audio), 50),
        "overhead_per_audio_second_p95": percentile(list(per_audio), 95),
        "latency_ms": stage_stats(single),
        "throughput": {c: sum(r["duration"] for r in lvl["records"]) / lvl["wall_s"]
                       for c, lvl in ours["levels"].items()},
        "handler": "handle_async (asyncio)" if ours["async"] else "handle (thread pool)",
        "cold_start_s": min(extra_cold["ours"]),
        "cold_start_samples_s": extra_cold["ours"],
        "model_load_s": ours["load_seconds"],
        "first_job_s": ours["first_job_s"],
        "peak_rss_mb": ours["peak_rss_mb"],
        "peak_gpu_mb": ours.get("peak_gpu_mb"),
        "machine": ours["machine"],
    }
    if upstream is not None:
        up_records = paired["upstream"]
        up_rtfs = [r["wall_ms"] / 1000 / r["duration"] for r in up_records]
        report.update({
            "upstream_rtf": percentile(up_rtfs, 50),
            "upstream_rtf_p95": percentile(up_rtfs, 95),
            "upstream_audio_seconds": percentile([r["duration"] for r in up_records], 50),
            "upstream_latency_ms": {"p50": percentile([r["wall_ms"] for r in up_records], 50),
                                    "p95": percentile([r["wall_ms"] for r in up_records], 95)},
            "upstream_throughput": sum(r["duration"] for r in up_records) / sum(r["wall_ms"] / 1000 for r in up_records),
            "paired_throughput": sum(r["duration"] for r in paired["ours"]) / sum(r["wall_ms"] / 1000 for r in paired["ours"]),
            "upstream_cold_start_s": min(extra_cold["upstream"]),
            "upstream_cold_start_samples_s": extra_cold["upstream"],
            "upstream_first_job_s": upstream["first_job_s"],
            "upstream_peak_rss_mb": upstream["peak_rss_mb"],
            "upstream_peak_gpu_mb": upstream.get("peak_gpu_mb"),
            "upstream_notes": paired.get("notes", []),
        })
        report["speedup_rtf"] = report["upstream_rtf"] / report["rtf"]
        report["speedup_throughput"] = report["paired_throughput"] / report["upstream_throughput"]
        report["cold_start_ratio"] = report["cold_start_s"] / report["upstream_cold_start_s"]
    else:
        report.update(upstream_rtf=None, upstream_cold_start_s=None)
    if "stream" in ours:
        report["stream"] = {}
        for c, level in ours["stream"].items():
            first = percentile([r["first_audio_s"] for r in level["streamed"]], 50)
            total = percentile([r["total_s"] for r in level["streamed"]], 50)
            unstreamed = percentile([r["wall_ms"] / 1000 for r in level["unstreamed"]], 50)
            report["stream"][c] = {
                "jobs": len(level["streamed"]),
                "first_audio_s": first,
                "first_audio_p95_s": percentile([r["first_audio_s"] for r in level["streamed"]], 95),
                "streamed_total_s": total,
                "unstreamed_s": unstreamed,
                "first_audio_ratio": first / unstreamed,
                "total_ratio": total / unstreamed,
                "stalled_s": percentile([r["stalled_s"] for r in level["streamed"]], 50),
                "stalled_p95_s": percentile([r["stalled_s"] for r in level["streamed"]], 95),
            }
    if "http" in ours:
        report["http"] = {}
        for c, level in ours["http"].items():
            http_first = percentile([r["first_audio_s"] for r in level["http"]], 50)
            queue_first = percentile([r["first_audio_s"] for r in level["queue"]], 50)
            report["http"][c] = {
                "jobs": len(level["http"]),
                "http_first_audio_s": http_first,
                "http_first_audio_p95_s": percentile([r["first_audio_s"] for r in level["http"]], 95),
                "http_total_s": percentile([r["total_s"] for r in level["http"]], 50),
                "queue_first_audio_s": queue_first,
                "queue_first_audio_p95_s": percentile([r["first_audio_s"] for r in level["queue"]], 95),
                "queue_total_s": percentile([r["total_s"] for r in level["queue"]], 50),
                "first_audio_ratio": http_first / queue_first,
            }
    return report


def print_report(r: dict) -> None:
    def f(v, fmt="{:.3f}"):
        if v is None:
            width = fmt[fmt.index(">") + 1:fmt.index(".")] if ">" in fmt else "1"
            return "-".rjust(int(width))
        return fmt.format(v)

    m = r["machine"]
    print(f"\nmachine: {m['cpu']}, {m['usable_cores']} cores, {m['memory_gib']} GiB, gpu={m['gpu']}, "
          f"torch {m.get('torch')} ({m.get('torch_threads')} threads)")
    print(f"model {r['model']} on {r['device']} ({r['dtype']}), NFE {r['nfe']}, sway {r['sway_sampling_coef']}, "
          f"{r['jobs']} jobs of ~{f(r['audio_seconds'], '{:.1f}')} s audio ({r['text_chars']} chars), {r['handler']}")
    if r["word_timings_and_captions"]:
        print(f"word timings and captions aligned by: {r['aligner']}")
    print(f"\nstage latency, {r['single_stream_jobs']} jobs run alone (ms)  p50        p95")
    for stage, s in r["latency_ms"].items():
        print(f"  {stage:<36}{f(s['p50'], '{:>9.1f}')}  {f(s['p95'], '{:>9.1f}')}")
    print(f"\n{'':<28}{'ours':>12}{'upstream':>12}{'ratio':>10}")
    rows = [
        ("audio per job (s)", r["audio_seconds"], r.get("upstream_audio_seconds"), None, ""),
        ("RTF (p50)", r["rtf"], r.get("upstream_rtf"), r.get("speedup_rtf"), "x upstream speed"),
        ("throughput, 1 stream (s/s)", r.get("paired_throughput"), r.get("upstream_throughput"),
         r.get("speedup_throughput"), "x upstream"),
        ("cold start (s)", r["cold_start_s"], r.get("upstream_cold_start_s"), r.get("cold_start_ratio"), "of upstream"),
        ("first job (s)", r["first_job_s"], r.get("upstream_first_job_s"), None, ""),
        ("peak RSS (MB)", r["peak_rss_mb"], r.get("upstream_peak_rss_mb"), None, ""),
        ("peak GPU (MB)", r["peak_gpu_mb"], r.get("upstream_peak_gpu_mb"), None, ""),
    ]
    for name, ours, up, ratio, unit in rows:
        print(f"  {name:<26}{f(ours, '{:>12.3f}')}{f(up, '{:>12.3f}')}{f(ratio, '{:>9.2f}')} {unit if ratio else ''}")
    for note in r.get("upstream_notes") or []:
        print(f"  upstream note: {note}")
    print("\nthroughput by concurrency (audio s / wall s): "
          + ", ".join(f"{c}: {v:.2f}" for c, v in r["throughput"].items()))
    print(f"overhead outside model compute: {f(r['overhead_fraction'] * 100, '{:.1f}')} % of job time, "
          f"{f(r['overhead_per_audio_second'], '{:.4f}')} x audio duration (target <= 0.05)")
    for c, st in (r.get("stream") or {}).items():
        print(f"streamed, concurrency {c} ({st['jobs']} jobs, p50): first audio {st['first_audio_s']:.3f} s = "
              f"{st['first_audio_ratio']:.2f} x the unstreamed job's {st['unstreamed_s']:.3f} s; whole stream "
              f"{st['streamed_total_s']:.3f} s = {st['total_ratio']:.2f} x; playback stalled "
              f"{st['stalled_s']:.3f} s (p95 {st['stalled_p95_s']:.3f} s)")
    for c, h in (r.get("http") or {}).items():
        print(f"streamed over HTTP, concurrency {c} ({h['jobs']} jobs, p50): first audio {h['http_first_audio_s']:.3f} s, "
              f"whole {h['http_total_s']:.3f} s; through the queue's handler: first audio "
              f"{h['queue_first_audio_s']:.3f} s, whole {h['queue_total_s']:.3f} s ({h['first_audio_ratio']:.2f} x)")
    print(f"cold start samples: ours {[round(x, 2) for x in r['cold_start_samples_s']]}, "
          f"upstream {[round(x, 2) for x in r.get('upstream_cold_start_samples_s') or []]}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", choices=["tiny"], help="the tiny random model (default)")
    p.add_argument("--random-weights", action="store_true",
                   help="full-size architecture (--config) with random weights instead of the tiny model")
    p.add_argument("--config", default="F5TTS_v1_Base", help="f5_tts config for --random-weights")
    p.add_argument("--models-dir", help="where the model files are (written on first use)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1...")
    p.add_argument("--nfe", type=int, default=32, help="sampling steps (NFE), both sides")
    p.add_argument("--sway", type=float, default=-1.0, help="sway sampling coefficient, both sides")
    p.add_argument("--jobs", type=int, default=4,
                   help="jobs per concurrency level (at least as many as the level's concurrency)")
    p.add_argument("--upstream-jobs", type=int,
                   help="job pairs (ours, upstream) run alternately in one process for the RTF ratio (default: --jobs)")
    p.add_argument("--concurrency", default="1,4,16", help="comma-separated concurrency levels; the first should be 1: "
                   "its jobs and the paired runs give the per-stage latency and overhead")
    p.add_argument("--text-seconds", type=float, default=10.0, help="approximate length of each utterance")
    p.add_argument("--cold-starts", type=int, default=2, help="cold start samples per side (the minimum counts)")
    p.add_argument("--retries", type=int, default=0,
                   help="max_retries per job (default 0: random-weight speech is noise and would always be "
                        "re-sampled by the alignment quality gate; upstream has no such gate)")
    p.add_argument("--no-timings", action="store_true",
                   help="jobs without word timings and captions (no alignment), i.e. exactly upstream's work")
    p.add_argument("--ctc", action="store_true",
                   help="with --random-weights: align English with the CTC aligner on the worker's device "
                        "(ALIGNER=ctc, random weights) instead of the default, sphinx in CPU processes")
    p.add_argument("--skip-upstream", action="store_true", help="measure only our worker")
    p.add_argument("--stream", action="store_true",
                   help="also run each concurrency level's jobs streamed, alternating with unstreamed ones: "
                        "first_audio_s, and both as ratios to the unstreamed job's latency")
    p.add_argument("--http", action="store_true",
                   help="also run each concurrency level's jobs streamed over the HTTP server (SERVE=http's app, "
                        "in our process), alternating with the same jobs streamed through RunPod's streaming "
                        "handler path: time to the first audio byte and to the whole (levels up to "
                        "MAX_CONCURRENCY, default 4; past it the server answers 429)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed per benchmark process")
    p.add_argument("--log-dir", help="where the benchmark processes' logs go (default: a temporary dir)")
    p.add_argument("--json", dest="json_path", help="write the figures to this file")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    files_cfg, env = model_setup(args)
    if args.stream or args.http:
        env = dict(env, STREAMING="1")  # the queue's handler streams only where the endpoint lets it
    concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    cfg = dict(files_cfg, nfe=args.nfe, sway=args.sway, jobs=args.jobs, concurrency=concurrency,
               upstream_jobs=args.upstream_jobs or args.jobs, text=bench_text(args.text_seconds),
               paired=not args.skip_upstream, stream=args.stream, http=args.http, retries=args.retries, timings=not args.no_timings,
               ref_b64=base64.b64encode(ref_wav_path().read_bytes()).decode(),
               device=None if args.device == "auto" else args.device)
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="f5-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"benchmark logs: {log_dir}", file=sys.stderr)

    ours = spawn("ours", cfg, env, log_dir, cold_only=False, timeout=args.timeout)
    # upstream's own process: cold start, first job, memory; its warm RTF comes from the paired runs
    upstream = None if args.skip_upstream else spawn("upstream", cfg, env, log_dir, True, args.timeout)
    cold = {"ours": [ours["cold_start_s"]], "upstream": [upstream["cold_start_s"]] if upstream else []}
    for _ in range(max(0, args.cold_starts - 1)):  # alternate the sides so that load noise hits both
        cold["ours"].append(spawn("ours", cfg, env, log_dir, True, args.timeout)["cold_start_s"])
        if upstream:
            cold["upstream"].append(spawn("upstream", cfg, env, log_dir, True, args.timeout)["cold_start_s"])

    report = build_report(args, cfg, ours, upstream, cold)
    print_report(report)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
    return report


def child_main() -> None:
    cfg = json.loads(Path(os.environ["F5_BENCH_CHILD"]).read_text())
    side = os.environ["F5_BENCH_SIDE"]
    out = child_ours(cfg) if side == "ours" else child_upstream(cfg)
    Path(cfg["result_file"]).write_text(json.dumps(out))


if __name__ == "__main__":
    if "F5_BENCH_CHILD" in os.environ:
        child_main()
    else:
        main()
