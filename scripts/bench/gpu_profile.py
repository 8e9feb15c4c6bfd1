#!/usr/bin/env python3
"""For developers: where one sampling step's GPU time goes: for choosing what to speed up next.

On an H200 a CUDA-graphed step of F5TTS_v1_Base took about 10 ms for about 1.4 TFLOP
(two sequences of ~1450 frames), far under the chip's rate, and batching did not
raise throughput. This times the pieces of one step on the same shapes, each with
CUDA events (median of ``--reps`` after warm-up), and prints the profiler's kernel
table for one masked step:

* the whole DiT step (cfg packed, text cache full): eager without a mask (upstream's
  batch-1 path: flash attention), eager with an all-true mask (what the graphs run: the
  padding mask always applies, f5_worker/tts/attention.py), and graphed;
* attention alone (``scaled_dot_product_attention``) without a mask, with f5-tts's
  expanded boolean mask, with the broadcast mask the worker passes, and in a mask-free
  form that keeps padding out through one more head dimension (a candidate: flash stays
  eligible), with its largest difference from the masked result;
* the position embedding's grouped convolutions, and one linear layer of the blocks;
* the step's arithmetic (``FlopCounterMode``) and the rate the eager and graphed steps reach.

    python3 scripts/bench/gpu_profile.py --random-weights --json $OUT/profile.json   # on the GPU machine
    uv run python scripts/bench/gpu_profile.py --device cpu --frames 96 --reps 1      # smoke run, tiny model

Changes: nothing but the --json report, where told.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def timed(fn, device: str, reps: int) -> float:
    """Median milliseconds of ``fn()`` over ``reps`` calls, after two warm-up calls."""
    import torch

    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        if device.startswith("cuda"):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def load(args):
    from f5_worker.config import Settings
    from f5_worker.tts.loading import load_models

    if args.random_weights:
        from f5_worker.tts.tiny_models import ensure_random_models

        paths = ensure_random_models(Path(args.models_dir), args.config)
        settings = Settings(default_model=args.config, model_ckpt_path=str(paths.ckpt_path),
                            model_vocab_path=str(paths.vocab_path), vocoder_path=str(paths.vocoder_dir))
    else:
        from f5_worker.tts.tiny_models import ensure_tiny_models

        ensure_tiny_models(Path(args.models_dir))
        settings = Settings(default_model="tiny", tiny_model_dir=Path(args.models_dir))
    settings = dataclasses.replace(settings, device=args.device, cuda_graphs=False, hf_offline=True,
                                   network_volume_path=Path("/nonexistent-volume"))
    return load_models(settings)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--random-weights", action="store_true", help="full-size --config with random weights")
    p.add_argument("--config", default="F5TTS_v1_Base")
    p.add_argument("--models-dir", default="/tmp/profile-models")
    p.add_argument("--device", default="cuda")
    p.add_argument("--frames", type=int, default=1450, help="sequence length (reference + generated frames)")
    p.add_argument("--batch", type=int, default=1, help="jobs in the batch (the DiT sees twice this with CFG)")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--json", dest="json_path")
    args = p.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from f5_worker.tts.cuda_graphs import GraphedDiT

    models = load(args)
    dit, dev, dtype = models.cfm.transformer, models.device, models.dtype
    b, n = args.batch, args.frames
    mel = dit.proj_out.out_features
    x = torch.randn(b, n, mel, device=dev, dtype=dtype)
    cond = torch.randn_like(x)
    text = torch.randint(0, 50, (b, n // 6), device=dev)
    time_ = torch.tensor(0.5, device=dev, dtype=dtype)
    all_true = torch.ones(b, n, device=dev, dtype=torch.bool)
    report = {"device": dev, "gpu": torch.cuda.get_device_name() if dev.startswith("cuda") else None,
              "torch": torch.__version__, "model": models.name, "dtype": str(dtype), "batch": b, "frames": n}

    with torch.inference_mode():
        dit(x, cond, text, time_, None, cfg_infer=True, cache=True)  # fill the text cache (mask None)
        report["step_eager_no_mask_ms"] = timed(lambda: dit(x, cond, text, time_, None, cfg_infer=True, cache=True),
                                                dev, args.reps)
        dit.clear_cache()
        dit(x, cond, text, time_, all_true, cfg_infer=True, cache=True)
        report["step_eager_mask_ms"] = timed(lambda: dit(x, cond, text, time_, all_true, cfg_infer=True, cache=True),
                                             dev, args.reps)
        if dev.startswith("cuda"):
            graphed = GraphedDiT(dit)
            report["step_graphed_ms"] = timed(lambda: graphed(x, cond, text, time_, None, cfg_infer=True, cache=True),
                                              dev, args.reps)
        dit.clear_cache()

        block = dit.transformer_blocks[0]
        heads, dim = block.attn.heads, block.attn.inner_dim
        q = torch.randn(2 * b, heads, n, dim // heads, device=dev, dtype=dtype)
        k, v = torch.randn_like(q), torch.randn_like(q)
        expanded = torch.cat((all_true, all_true))[:, None, None, :].expand(2 * b, heads, n, n)
        report["attention_no_mask_ms"] = timed(lambda: F.scaled_dot_product_attention(q, k, v), dev, args.reps)
        report["attention_bool_mask_ms"] = timed(
            lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=expanded), dev, args.reps)
        broadcast = torch.cat((all_true, all_true))[:, None, None, :]
        report["attention_broadcast_mask_ms"] = timed(
            lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=broadcast), dev, args.reps)
        # A candidate for exact padding without a mask (so the flash kernel stays eligible): one more head
        # dimension (8, the kernels' granularity) holding 1 in q and a large negative bias in k for padded
        # keys, 0 for real ones; v gets zeros there. Real scores are unchanged (adding 0), padded ones
        # underflow to exactly 0 after the softmax. Costs 72/64 of the q.k work.
        pad = max(1, n // 20)  # the last 5 % of keys are padding
        keep = torch.ones(2 * b, n, device=dev, dtype=torch.bool)
        keep[:, n - pad:] = False
        head_dim = q.shape[-1]
        extra = torch.zeros(*q.shape[:-1], 8, device=dev, dtype=dtype)
        q_col = torch.cat((q, extra), dim=-1)
        q_col[..., head_dim] = 1.0
        k_col = torch.cat((k, extra), dim=-1)
        k_col[..., head_dim] = torch.where(keep, 0.0, -30000.0)[:, None, :].to(dtype)
        v_col = torch.cat((v, extra), dim=-1)
        scale = head_dim ** -0.5
        report["attention_bias_column_ms"] = timed(
            lambda: F.scaled_dot_product_attention(q_col, k_col, v_col, scale=scale), dev, args.reps)
        masked = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        column = F.scaled_dot_product_attention(q_col, k_col, v_col, scale=scale)[..., :head_dim]
        report["attention_bias_column_max_abs_diff"] = float((masked.float() - column.float()).abs().max())
        hidden = torch.randn(2 * b, n, dit.transformer_blocks[0].attn.to_q.in_features, device=dev, dtype=dtype)
        report["linear_q_ms"] = timed(lambda: block.attn.to_q(hidden), dev, args.reps)
        report["position_conv_ms"] = timed(lambda: dit.input_embed.conv_pos_embed(hidden, all_true.repeat(2, 1)),
                                           dev, args.reps)
        tokens, width = 2 * b * n, hidden.shape[-1]
        report["linear_q_tflops"] = 2 * tokens * width * block.attn.to_q.out_features / report["linear_q_ms"] / 1e9

        from torch.utils.flop_counter import FlopCounterMode

        dit(x, cond, text, time_, all_true, cfg_infer=True, cache=True)  # fill the cache: count a later step
        with FlopCounterMode(display=False) as flops:
            dit(x, cond, text, time_, all_true, cfg_infer=True, cache=True)
        dit.clear_cache()
        report["step_tflop"] = flops.get_total_flops() / 1e12  # matmuls, convolutions, attention (where counted)
        for key in ("step_eager_mask_ms", "step_graphed_ms"):
            if key in report:
                report[key.removesuffix("_ms") + "_tflops"] = report["step_tflop"] / report[key] * 1e3

        activities = [torch.profiler.ProfilerActivity.CPU]
        if dev.startswith("cuda"):
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        dit(x, cond, text, time_, all_true, cfg_infer=True, cache=True)
        with torch.profiler.profile(activities=activities) as prof:
            dit(x, cond, text, time_, all_true, cfg_infer=True, cache=True)
            if dev.startswith("cuda"):
                torch.cuda.synchronize()
        dit.clear_cache()
    sort = "self_cuda_time_total" if dev.startswith("cuda") else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=25)
    print(table)
    for key, value in report.items():
        print(f"{key:28s} {value:.3f}" if isinstance(value, float) else f"{key:28s} {value}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(dict(report, kernel_table=table), indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
